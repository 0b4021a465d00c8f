/**
 * The "write VMDK" stage: a raw disk image in, a streamOptimized VMDK out (formats/vmdk.ts lays the file out,
 * adapters/deflate-pool.ts compresses its grains).
 */
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { dataMap, type ByteRange, type DataMap } from '../adapters/data-map.js';
import { createGrainCompressor, type CompressedChunk, type DeflateEngine } from '../adapters/deflate-pool.js';
import { StagedWriter } from '../adapters/staged-writer.js';
import { GRAIN_BYTES, StreamOptimizedEncoder, type VmdkOptions } from '../formats/vmdk.js';
import type { ManifestDigest } from '../formats/manifest.js';

const debug = createDebug('c2v:disk');

/** Grains per read and per task handed to a deflate worker: 1 MiB. */
const CHUNK_GRAINS = 16;

/** A run of consecutive grains: [first, first + count). */
export interface GrainRun {
  first: number;
  count: number;
}

/** The grains that hold any byte of the ranges, as merged runs, in ascending order. */
export function grainRuns(ranges: readonly ByteRange[], grainBytes: number = GRAIN_BYTES): GrainRun[] {
  const runs: GrainRun[] = [];
  for (const r of ranges) {
    if (r.end <= r.start) continue;
    const first = Math.floor(r.start / grainBytes);
    const end = Math.ceil(r.end / grainBytes);
    const last = runs[runs.length - 1];
    if (last && first <= last.first + last.count) last.count = Math.max(last.count, end - last.first);
    else runs.push({ first, count: end - first });
  }
  return runs;
}

/** Runs cut into pieces of at most `max` grains. */
function* chunksOf(runs: readonly GrainRun[], max: number): Generator<GrainRun> {
  for (const run of runs) {
    for (let i = 0; i < run.count; i += max) yield { first: run.first + i, count: Math.min(max, run.count - i) };
  }
}

/** Fills buf[0, length) from position; returns how many bytes the file had there (short only at end of file). */
async function readFully(fh: FileHandle, buf: Uint8Array, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

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
  const rawSize = (await stat(rawPath)).size;
  if (rawSize > opts.capacityBytes) {
    throw new C2vError('input', `raw disk ${rawPath} (${rawSize} bytes) is larger than the VMDK capacity (${opts.capacityBytes} bytes)`);
  }
  const map: DataMap = opts.mapData === false ? { ranges: rawSize > 0 ? [{ start: 0, end: rawSize }] : [], method: 'none' } : await dataMap(rawPath, rawSize);
  const runs = grainRuns(map.ranges);
  const readBytes = runs.reduce((n, r) => n + r.count, 0) * GRAIN_BYTES;
  debug('vmdk <- %s: %d data ranges (%s), %d bytes to read of %d', rawPath, map.ranges.length, map.method, readBytes, rawSize);

  const compressor = await createGrainCompressor({
    level: enc.options.compressLevel,
    maxChunkGrains: CHUNK_GRAINS,
    engine: opts.engine,
    threads: opts.threads,
  });
  const fh = await open(rawPath, 'r');
  const queue: { first: number; count: number; done: Promise<CompressedChunk> }[] = [];
  try {
    for (const b of enc.start()) await sink(b);
    let doneBytes = 0;
    const emit = async (item: (typeof queue)[number]): Promise<void> => {
      const chunk = await item.done;
      for (const g of chunk.grains) for (const b of enc.grain(item.first + g.offset, g.data)) await sink(b);
      // The sink has copied the bytes by now: the buffers can carry another chunk.
      compressor.release(chunk);
      doneBytes += item.count * GRAIN_BYTES;
      opts.onProgress?.(doneBytes, readBytes);
    };
    for (const chunk of chunksOf(runs, CHUNK_GRAINS)) {
      const buf = compressor.chunkBuffer(chunk.count);
      const position = chunk.first * GRAIN_BYTES;
      const got = await readFully(fh, buf, Math.min(buf.length, rawSize - position), position);
      // A reused buffer holds an older chunk: bytes past the end of the file must read as zeros.
      buf.fill(0, got);
      const done = compressor.compress(buf);
      // Awaited in order below; until then a rejection must not count as unhandled.
      done.catch(() => undefined);
      queue.push({ first: chunk.first, count: chunk.count, done });
      while (queue.length >= compressor.parallelism) await emit(queue.shift()!);
    }
    while (queue.length > 0) await emit(queue.shift()!);
    for (const b of enc.finish()) await sink(b);
  } finally {
    await compressor.close();
    await fh.close();
  }
  return { grains: enc.grains, readBytes, mapMethod: map.method, engine: compressor.engine };
}

/**
 * Writes the raw disk at rawPath as a streamOptimized VMDK at outPath, hashing the bytes as they are written so
 * the manifest never has to read the output again. A failed write leaves no partial file.
 */
export async function writeVmdk(rawPath: string, outPath: string, opts: VmdkFileOptions): Promise<{ bytes: number; digest: string } & VmdkStreamResult> {
  // Option errors (and an oversized raw file) surface before the output file exists.
  new StreamOptimizedEncoder(opts);
  debug('vmdk %s <- %s (%d bytes)', outPath, rawPath, opts.capacityBytes);
  const fh = await open(outPath, 'w');
  try {
    const writer = new StagedWriter(fh, 0, { hash: opts.digest });
    const result = await streamVmdk(rawPath, opts, (chunk) => writer.write(chunk));
    const digest = (await writer.finish())!;
    await fh.close();
    debug('vmdk %s: %d bytes, %s %s', outPath, writer.bytes, opts.digest, digest);
    return { bytes: writer.bytes, digest, ...result };
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(outPath, { force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new C2vError('space', `no space left on the device while writing ${outPath}`, { cause: e });
    }
    throw e;
  }
}
