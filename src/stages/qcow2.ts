/**
 * The "write qcow2" stage: a raw disk image in, a compressed qcow2 (v3) out. formats/qcow2.ts lays the file out;
 * the grains are compressed by the same deflate pool as the VMDK's (adapters/deflate-pool.ts), since a qcow2
 * cluster is a VMDK grain (64 KiB).
 */
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import type { DataMap } from '../adapters/data-map.js';
import type { DeflateEngine } from '../adapters/deflate-pool.js';
import { StagedWriter, writeAll } from '../adapters/staged-writer.js';
import { writeNewFile } from '../adapters/output-file.js';
import { CLUSTER_BYTES, encodeHeader, Qcow2Builder, rawDeflate } from '../formats/qcow2.js';
import { streamGrains } from './grain-stream.js';

const debug = createDebug('c2v:disk');

export interface Qcow2WriteOptions {
  capacityBytes: number;
  /** Deflate level 1..9. */
  compressLevel: number;
  /** Deflate engine; default libdeflate in worker threads (see adapters/deflate-pool.ts). */
  engine?: DeflateEngine;
  /** Deflate worker threads; default one per core. */
  threads?: number;
  /** Called as clusters are written: bytes of the raw file's data regions done, of the total to read. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface Qcow2WriteResult {
  /** Bytes of the qcow2 file. */
  bytes: number;
  /** Compressed clusters stored (non-zero grains). */
  clusters: number;
  /** Bytes of the raw file read: its data regions, rounded out to clusters. */
  readBytes: number;
  mapMethod: DataMap['method'];
  engine: DeflateEngine;
}

/**
 * Writes the raw disk at rawPath as a compressed qcow2 at outPath in one pass: compressed clusters back to back
 * in guest order from the second cluster on, then the tables, then the header into the first cluster. Only the
 * data regions of the raw file are read; deflate workers compress 1 MiB chunks while the next ones are read, and
 * results are written in guest order, so the bytes never depend on timing or thread count. Zero clusters are
 * not stored (unallocated, they read as zeros). A raw file shorter than the capacity reads as zeros past its
 * end; a longer one is refused. A failed write leaves no partial file.
 *
 * A cluster that does not compress stays a compressed cluster (stored deflate blocks, a few bytes over 64 KiB)
 * rather than becoming a plain one as in QEMU: a plain cluster must be cluster-aligned, and the padding before
 * it would cost more than those few bytes.
 */
export async function writeQcow2(rawPath: string, outPath: string, opts: Qcow2WriteOptions): Promise<Qcow2WriteResult> {
  // Option errors surface before the output file exists; an oversized raw file removes it again.
  const image = new Qcow2Builder(opts.capacityBytes);
  const level = opts.compressLevel;
  if (!Number.isInteger(level) || level < 1 || level > 9) {
    throw new C2vError('input', `invalid qcow2 options: compressLevel must be an integer 1..9 (got ${level})`);
  }
  return writeNewFile(outPath, async (out) => {
    // The header cluster is written last, once the table offsets are known.
    const writer = new StagedWriter(out, CLUSTER_BYTES);
    const read = await streamGrains(
      rawPath,
      { capacityBytes: opts.capacityBytes, level, engine: opts.engine, threads: opts.threads, onProgress: opts.onProgress, what: 'qcow2' },
      async (grain, zlib) => {
        const data = rawDeflate(zlib);
        image.addCompressed(grain, CLUSTER_BYTES + writer.bytes, data.length);
        await writer.write(data);
      },
    );

    const tail = image.finish(CLUSTER_BYTES + writer.bytes);
    for (const b of tail.chunks()) await writer.write(b);
    await writer.finish();
    if (CLUSTER_BYTES + writer.bytes !== tail.fileBytes) {
      throw new C2vError('internal', `qcow2 layout expected ${tail.fileBytes} bytes, wrote ${CLUSTER_BYTES + writer.bytes}`);
    }
    await writeAll(out, encodeHeader(tail.header), 0);
    debug('qcow2 %s: %d bytes, %d compressed clusters, %d refcount blocks', outPath, tail.fileBytes, image.clusters, tail.plan.blocks);
    return { bytes: tail.fileBytes, clusters: image.clusters, ...read };
  });
}
