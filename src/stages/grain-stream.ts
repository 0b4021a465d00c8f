/**
 * The part the VMDK and qcow2 writers share: a raw disk read as 64 KiB grains (only its data regions), each
 * non-zero grain deflated by the worker pool, handed on in disk order. 1 MiB chunks are read while earlier ones
 * are compressed; results are taken in order, so the output never depends on timing or thread count.
 */
import { open, type FileHandle } from 'node:fs/promises';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { dataMap, type ByteRange, type DataMap } from '../adapters/data-map.js';
import { createGrainCompressor, type CompressedChunk, type DeflateEngine } from '../adapters/deflate-pool.js';
import { GRAIN_BYTES } from '../formats/vmdk.js';

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

export interface GrainStreamOptions {
  /** Bytes the disk holds; a raw file longer than this is refused (its tail would be lost), a shorter one reads as zeros past its end. */
  capacityBytes: number;
  /** Deflate level 1-9. */
  level: number;
  /** Deflate engine; default libdeflate in worker threads (see adapters/deflate-pool.ts). */
  engine?: DeflateEngine;
  /** Deflate worker threads; default one per core. */
  threads?: number;
  /** Read only the data regions of the raw file (default), or every byte of it (false: for comparison). */
  mapData?: boolean;
  /** Bytes of the raw file's data regions done, of the total to read. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** What the output is called in messages: "VMDK", "qcow2". */
  what: string;
}

export interface GrainStreamResult {
  /** Bytes of the raw file read: its data regions, rounded out to grains. */
  readBytes: number;
  /** How the data regions were found. */
  mapMethod: DataMap['method'];
  engine: DeflateEngine;
}

/**
 * Calls `onGrain` with each non-zero grain of the raw disk, in ascending order, as a zlib stream that may be a
 * view into a buffer reused once `onGrain` returns (copy it, or write it out, before then).
 */
export async function streamGrains(rawPath: string, opts: GrainStreamOptions, onGrain: (grain: number, zlib: Uint8Array) => Promise<void>): Promise<GrainStreamResult> {
  const fh = await open(rawPath, 'r');
  try {
    const rawSize = (await fh.stat()).size;
    if (rawSize > opts.capacityBytes) {
      throw new C2vError('input', `raw disk ${rawPath} (${rawSize} bytes) is larger than the ${opts.what} capacity (${opts.capacityBytes} bytes)`);
    }
    const map: DataMap = opts.mapData === false ? { ranges: rawSize > 0 ? [{ start: 0, end: rawSize }] : [], method: 'none' } : await dataMap(rawPath, rawSize);
    const runs = grainRuns(map.ranges);
    const readBytes = runs.reduce((n, r) => n + r.count, 0) * GRAIN_BYTES;
    debug('%s <- %s: %d data ranges (%s), %d bytes to read of %d', opts.what, rawPath, map.ranges.length, map.method, readBytes, rawSize);

    const compressor = await createGrainCompressor({ level: opts.level, maxChunkGrains: CHUNK_GRAINS, engine: opts.engine, threads: opts.threads });
    const queue: { first: number; count: number; done: Promise<CompressedChunk> }[] = [];
    try {
      let doneBytes = 0;
      const emit = async (item: (typeof queue)[number]): Promise<void> => {
        const chunk = await item.done;
        for (const g of chunk.grains) await onGrain(item.first + g.offset, g.data);
        // onGrain has used the bytes by now: the buffers can carry another chunk.
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
    } finally {
      await compressor.close();
    }
    return { readBytes, mapMethod: map.method, engine: compressor.engine };
  } finally {
    await fh.close();
  }
}
