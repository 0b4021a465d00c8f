import { open, type FileHandle } from 'node:fs/promises';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { dataMap, intersectRanges, type ByteRange } from '../adapters/data-map.js';
import {
  descriptorTableOffset,
  Ext4FormatError,
  freeRuns,
  parseGroupDescriptors,
  parseSuperblock,
  SUPERBLOCK_BYTES,
  SUPERBLOCK_OFFSET,
} from '../formats/ext4.js';
import { isZero } from '../formats/zero.js';

const debug = createDebug('c2v:disk');
const CHUNK_BYTES = 1 << 20;

export interface ZerofreeResult {
  /** Bytes of free blocks the filesystem has. */
  freeBytes: number;
  /** Of those, the bytes that hold data in the disk file (not holes), which were read. */
  checkedBytes: number;
  /** Free blocks that held anything but zeros, now zeroed. */
  zeroedBlocks: number;
}

/**
 * c2v's own zerofree: every free block of the root filesystem that is not all zeros is overwritten with zeros,
 * so the VMDK skips it. Unlike zerofree(8), which reads every free block, this reads only the free blocks that
 * hold data in the sparse disk file (the block bitmaps intersected with the file's data map): the holes read as
 * zeros anyway. On a filesystem mke2fs has just written into a fresh sparse file that is almost nothing, and a
 * 64 GiB disk costs what a 1 GiB one does.
 */
export async function zerofreeRoot(diskPath: string, offsetBytes: number): Promise<ZerofreeResult> {
  const fh = await open(diskPath, 'r+');
  try {
    const fileSize = (await fh.stat()).size;
    const free = await freeByteRanges(fh, offsetBytes);
    const data = (await dataMap(diskPath, fileSize)).ranges;
    const blockSize = free.blockSize;
    let checkedBytes = 0;
    let zeroedBlocks = 0;
    const buf = Buffer.alloc(CHUNK_BYTES);
    const zeros = Buffer.alloc(CHUNK_BYTES);
    for (const r of intersectRanges(free.ranges, data)) {
      // Whole filesystem blocks: the free range is block-aligned, the file's extents may not be.
      const start = offsetBytes + Math.floor((r.start - offsetBytes) / blockSize) * blockSize;
      const end = offsetBytes + Math.ceil((r.end - offsetBytes) / blockSize) * blockSize;
      for (let pos = start; pos < end; pos += CHUNK_BYTES) {
        const len = Math.min(CHUNK_BYTES, end - pos);
        await readFully(fh, buf, len, pos);
        checkedBytes += len;
        // Runs of dirty blocks become one write each.
        let runStart = -1;
        for (let off = 0; off <= len; off += blockSize) {
          const dirty = off < len && !isZero(buf.subarray(off, off + blockSize));
          if (dirty && runStart < 0) runStart = off;
          if (!dirty && runStart >= 0) {
            await fh.write(zeros, 0, off - runStart, pos + runStart);
            zeroedBlocks += (off - runStart) / blockSize;
            runStart = -1;
          }
        }
      }
    }
    debug('zerofree: %d bytes free, %d read, %d blocks zeroed', free.bytes, checkedBytes, zeroedBlocks);
    return { freeBytes: free.bytes, checkedBytes, zeroedBlocks };
  } catch (e) {
    if (e instanceof Ext4FormatError) throw new C2vError('internal', `the root filesystem c2v wrote cannot be read back: ${e.message}`, { cause: e });
    throw e;
  } finally {
    await fh.close();
  }
}

/** The free blocks of the filesystem at offsetBytes, as merged byte ranges of the disk file. */
async function freeByteRanges(fh: FileHandle, offsetBytes: number): Promise<{ ranges: ByteRange[]; bytes: number; blockSize: number }> {
  const sb = parseSuperblock(await readAt(fh, SUPERBLOCK_BYTES, offsetBytes + SUPERBLOCK_OFFSET));
  const groups = parseGroupDescriptors(sb, await readAt(fh, sb.groupCount * sb.descSize, offsetBytes + descriptorTableOffset(sb)));
  const ranges: ByteRange[] = [];
  let bytes = 0;
  for (const g of groups) {
    // A BLOCK_UNINIT group never had a block allocated: nothing but its metadata was written there.
    if (g.bitmapBlock === undefined) continue;
    const bitmap = await readAt(fh, sb.blockSize, offsetBytes + g.bitmapBlock * sb.blockSize);
    for (const run of freeRuns(sb, g.group, bitmap)) {
      const start = offsetBytes + run.start * sb.blockSize;
      const end = offsetBytes + run.end * sb.blockSize;
      bytes += end - start;
      const last = ranges[ranges.length - 1];
      if (last && last.end === start) last.end = end;
      else ranges.push({ start, end });
    }
  }
  return { ranges, bytes, blockSize: sb.blockSize };
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  await readFully(fh, buf, length, position);
  return buf;
}

/** Fills buf[0, length) from position; past the end of the file it stays zero (the file is sparse at its tail). */
async function readFully(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) {
      buf.fill(0, done, length);
      return;
    }
    done += bytesRead;
  }
}
