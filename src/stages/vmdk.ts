/**
 * The "write VMDK" stage: a raw disk image in, a streamOptimized VMDK out (formats/vmdk.ts lays the file out,
 * adapters/deflate-pool.ts compresses its grains).
 */
import createDebug from 'debug';
import type { DataMap } from '../adapters/data-map.js';
import type { DeflateEngine } from '../adapters/deflate-pool.js';
import { StagedWriter } from '../adapters/staged-writer.js';
import { writeNewFile } from '../adapters/output-file.js';
import { StreamOptimizedEncoder, type VmdkOptions } from '../formats/vmdk.js';
import type { ManifestDigest } from '../formats/manifest.js';
import { streamGrains } from './grain-stream.js';

export { grainRuns, type GrainRun } from './grain-stream.js';

const debug = createDebug('c2v:disk');

export interface VmdkWriteOptions extends VmdkOptions {
  /** Deflate engine; default libdeflate in worker threads (see adapters/deflate-pool.ts). */
  engine?: DeflateEngine;
  /** Deflate worker threads; default one per core. */
  threads?: number;
  /** Read only the data regions of the raw file (default), or every byte of it (false: for comparison). */
  mapData?: boolean;
  /** Called as grains are written: bytes of the raw file's data regions done, of the total to read. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface VmdkFileOptions extends VmdkWriteOptions {
  /** The algorithm the written file is hashed with: the manifest's, so the file is never read again for it. */
  digest: ManifestDigest;
}

export interface VmdkStreamResult {
  /** Grains stored (non-zero). */
  grains: number;
  /** Bytes of the raw file read: its data regions, rounded out to grains. */
  readBytes: number;
  /** How the data regions were found. */
  mapMethod: DataMap['method'];
  engine: DeflateEngine;
}

/**
 * Encodes the raw disk at rawPath as a streamOptimized VMDK, handing the file's bytes to `sink` front to back.
 * Only the data regions of the raw file are read, in 1 MiB chunks that deflate workers compress (skipping zero
 * grains) while the next chunks are read; results are emitted in grain order, so the bytes never depend on
 * timing or thread count. A raw file shorter than the capacity reads as zeros past its end; a longer one is
 * refused, since its tail would be silently lost.
 */
export async function streamVmdk(rawPath: string, opts: VmdkWriteOptions, sink: (chunk: Buffer) => Promise<void>): Promise<VmdkStreamResult> {
  const enc = new StreamOptimizedEncoder(opts);
  for (const b of enc.start()) await sink(b);
  const result = await streamGrains(
    rawPath,
    { capacityBytes: opts.capacityBytes, level: enc.options.compressLevel, engine: opts.engine, threads: opts.threads, mapData: opts.mapData, onProgress: opts.onProgress, what: 'VMDK' },
    async (grain, zlib) => {
      for (const b of enc.grain(grain, zlib)) await sink(b);
    },
  );
  for (const b of enc.finish()) await sink(b);
  return { grains: enc.grains, ...result };
}

/**
 * Writes the raw disk at rawPath as a streamOptimized VMDK at outPath, hashing the bytes as they are written so
 * the manifest never has to read the output again. A failed write leaves no partial file.
 */
export async function writeVmdk(rawPath: string, outPath: string, opts: VmdkFileOptions): Promise<{ bytes: number; digest: string } & VmdkStreamResult> {
  // Option errors surface before the output file exists; an oversized raw file removes it again.
  new StreamOptimizedEncoder(opts);
  debug('vmdk %s <- %s (%d bytes)', outPath, rawPath, opts.capacityBytes);
  return writeNewFile(outPath, async (fh) => {
    const writer = new StagedWriter(fh, 0, { hash: opts.digest });
    const result = await streamVmdk(rawPath, opts, (chunk) => writer.write(chunk));
    const digest = (await writer.finish())!;
    debug('vmdk %s: %d bytes, %s %s', outPath, writer.bytes, opts.digest, digest);
    return { bytes: writer.bytes, digest, ...result };
  });
}
