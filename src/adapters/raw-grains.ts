import { createHash } from 'node:crypto';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { encodeStreamOptimized, GRAIN_BYTES, isZero, type Grain, type VmdkOptions } from '../formats/vmdk.js';

const debug = createDebug('c2v:disk');

const READ_CHUNK_BYTES = 4 * 1024 * 1024;
const WRITE_CHUNK_BYTES = 4 * 1024 * 1024;

/** Fills buf from position; returns how many bytes the file had there (short only at end of file). */
async function readFully(fh: FileHandle, buf: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * The non-zero grains of a raw disk image (or of a byte window of one), in index order. Reads go through two
 * reusable chunk buffers, the next chunk being read while the current one is scanned; only non-zero grains are
 * copied out, so a mostly empty sparse disk costs little memory. Bytes past the end of the file read as zeros,
 * like a hole.
 */
export async function* readGrains(
  path: string,
  offsetBytes = 0,
  lengthBytes?: number,
  grainBytes: number = GRAIN_BYTES,
): AsyncGenerator<Grain> {
  if (!Number.isSafeInteger(grainBytes) || grainBytes <= 0) throw new RangeError(`grainBytes must be positive (got ${grainBytes})`);
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0) throw new RangeError(`offsetBytes must be >= 0 (got ${offsetBytes})`);
  const fh = await open(path, 'r');
  try {
    const length = lengthBytes ?? Math.max(0, (await fh.stat()).size - offsetBytes);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`lengthBytes must be >= 0 (got ${length})`);
    const chunkBytes = Math.max(1, Math.floor(READ_CHUNK_BYTES / grainBytes)) * grainBytes;
    const buffers = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];

    const readChunk = async (slot: number, start: number): Promise<number> => {
      const want = Math.min(chunkBytes, length - start);
      const got = await readFully(fh, buffers[slot], want, offsetBytes + start);
      buffers[slot].fill(0, got, want);
      return want;
    };

    let slot = 0;
    let start = 0;
    let pending: Promise<number> | undefined = length > 0 ? readChunk(slot, 0) : undefined;
    while (pending) {
      const filled = await pending;
      const buf = buffers[slot];
      const next = start + filled;
      pending = next < length ? readChunk(1 - slot, next) : undefined;
      // If the consumer stops early, the read-ahead must not reject unobserved after the file is closed.
      pending?.catch(() => undefined);
      const firstIndex = start / grainBytes;
      for (let off = 0; off < filled; off += grainBytes) {
        const grain = buf.subarray(off, Math.min(filled, off + grainBytes));
        if (!isZero(grain)) yield { index: firstIndex + off / grainBytes, data: Buffer.from(grain) };
      }
      slot = 1 - slot;
      start = next;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Stages output writes in one reusable buffer so the many small pieces of the stream (markers, 512-byte padded
 * grains) become few large writes.
 */
class StagedWriter {
  private readonly stage = Buffer.allocUnsafe(WRITE_CHUNK_BYTES);
  private used = 0;
  private position = 0;

  constructor(private readonly fh: FileHandle) {}

  async write(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const n = chunk.copy(this.stage, this.used, off);
      this.used += n;
      off += n;
      if (this.used === this.stage.length) await this.flush();
    }
  }

  async flush(): Promise<void> {
    let done = 0;
    while (done < this.used) {
      const { bytesWritten } = await this.fh.write(this.stage, done, this.used - done, this.position + done);
      done += bytesWritten;
    }
    this.position += this.used;
    this.used = 0;
  }
}

/**
 * Writes the raw disk at rawPath as a streamOptimized VMDK at outPath, hashing the bytes as they are written so
 * the manifest never has to read the output again. A raw file shorter than the capacity reads as zeros past its
 * end; a longer one is refused, since its tail would be silently lost. A failed write leaves no partial file.
 */
export async function writeVmdk(rawPath: string, outPath: string, opts: VmdkOptions): Promise<{ bytes: number; sha256: string }> {
  const rawSize = (await stat(rawPath)).size;
  if (rawSize > opts.capacityBytes) {
    throw new C2vError('input', `raw disk ${rawPath} (${rawSize} bytes) is larger than the VMDK capacity (${opts.capacityBytes} bytes)`);
  }
  debug('vmdk %s <- %s (%d bytes)', outPath, rawPath, opts.capacityBytes);
  const hash = createHash('sha256');
  let bytes = 0;
  const fh = await open(outPath, 'w');
  try {
    const writer = new StagedWriter(fh);
    for await (const chunk of encodeStreamOptimized(readGrains(rawPath, 0, rawSize), opts)) {
      hash.update(chunk);
      bytes += chunk.length;
      await writer.write(chunk);
    }
    await writer.flush();
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(outPath, { force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new C2vError('space', `no space left on the device while writing ${outPath}`, { cause: e });
    }
    throw e;
  }
  const sha256 = hash.digest('hex');
  debug('vmdk %s: %d bytes, sha256 %s', outPath, bytes, sha256);
  return { bytes, sha256 };
}
