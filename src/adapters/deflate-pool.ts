/**
 * Compresses VMDK grains on every core. Two engines, chosen by measurement on a 630 MB Debian root fs (see
 * README "Performance"):
 * - `libdeflate` (default): libdeflate compiled to WebAssembly (npm `libdeflate`), one instance per worker
 *   thread. At level 6 it is ~15% faster per core than node:zlib and its output is ~2% smaller; node's zlib
 *   (Chromium's fork) compresses these grains ~1% worse than the zlib qemu-img uses, at any level.
 * - `zlib`: node:zlib on the libuv pool; the fallback when the WebAssembly module cannot be loaded.
 * Both produce zlib streams (RFC 1950), which is what VMDK readers inflate. A chunk is a run of whole grains; the
 * engine skips the all-zero ones without compressing them and returns the rest with their index in the chunk.
 *
 * Memory stays flat however big the disk: chunk and output buffers travel to a worker and back (transferred,
 * not copied) and are reused, and a worker packs a chunk's compressed grains into one output buffer.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { deflate } from 'node:zlib';
import createDebug from 'debug';
import { GRAIN_BYTES, isZero } from '../formats/vmdk.js';

const debug = createDebug('c2v:disk');
const deflateAsync = promisify(deflate);

export type DeflateEngine = 'libdeflate' | 'zlib';

export interface CompressedGrain {
  /** Index of the grain within the chunk. */
  offset: number;
  /** A zlib stream; may be a view into a buffer the compressor reuses after release(). */
  data: Uint8Array;
}

export interface CompressedChunk {
  grains: CompressedGrain[];
}

export interface GrainCompressor {
  readonly engine: DeflateEngine;
  /** Chunks worth keeping in flight to keep every thread busy. */
  readonly parallelism: number;
  /** A buffer for a chunk of `grains` grains, possibly reused: its content is undefined, the caller fills all of it. */
  chunkBuffer(grains: number): Uint8Array;
  /** Compresses the non-zero grains of a buffer from chunkBuffer(), which the compressor takes over. */
  compress(chunk: Uint8Array): Promise<CompressedChunk>;
  /** The chunk's grain data is no longer needed: its buffers may be reused. */
  release(chunk: CompressedChunk): void;
  close(): Promise<void>;
}

export interface CompressorOptions {
  level: number;
  /** Largest chunk, in grains, that will be passed. */
  maxChunkGrains: number;
  /** Default: libdeflate, falling back to zlib when it cannot be loaded. */
  engine?: DeflateEngine;
  /** Worker threads for libdeflate; default availableParallelism(). */
  threads?: number;
}

/**
 * Room for one compressed grain: libdeflate's zlib bound for 64 KiB is a few hundred bytes above 64 KiB (stored
 * blocks for incompressible data); the worker checks the real bound.
 */
const OUT_BYTES_PER_GRAIN = GRAIN_BYTES + 1024;

/**
 * The worker (CommonJS, run with eval, so it works from the TypeScript sources in tests and from dist/ alike).
 * It drives libdeflate's exports directly: one compressor and one in/out area in the WebAssembly heap for the
 * worker's life, so nothing is allocated per grain. It never loads in the main thread: the Emscripten glue
 * installs process-wide error handlers of its own.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { glueUrl, level, grainBytes } = workerData;
const zero = Buffer.alloc(grainBytes);
import(glueUrl).then((glue) => {
  const m = glue.default();
  const compressor = m._libdeflate_alloc_compressor(level);
  if (!compressor) throw new Error('libdeflate_alloc_compressor(' + level + ') failed');
  const bound = m._libdeflate_zlib_compress_bound(compressor, grainBytes);
  const inPtr = m._malloc(grainBytes);
  const outPtr = m._malloc(bound);
  if (!inPtr || !outPtr) throw new Error('malloc in the WebAssembly heap failed');
  parentPort.postMessage({ ready: true, bound });
  parentPort.on('message', ({ id, input, length, output }) => {
    try {
      const bytes = new Uint8Array(input, 0, length);
      const out = new Uint8Array(output);
      const entries = [];
      let pos = 0;
      for (let off = 0, i = 0; off < length; off += grainBytes, i++) {
        const grain = bytes.subarray(off, off + grainBytes);
        if (Buffer.compare(grain, zero) === 0) continue;
        m.HEAPU8.set(grain, inPtr);
        const n = m._libdeflate_zlib_compress(compressor, inPtr, grainBytes, outPtr, bound);
        if (n === 0) throw new Error('libdeflate_zlib_compress failed');
        if (pos + n > out.length) throw new Error('compressed chunk does not fit its output buffer');
        out.set(m.HEAPU8.subarray(outPtr, outPtr + n), pos);
        entries.push(i, pos, n);
        pos += n;
      }
      parentPort.postMessage({ id, input, output, entries }, [input, output]);
    } catch (e) {
      parentPort.postMessage({ id, input, output, error: String((e && e.stack) || e) }, [input, output]);
    }
  });
}).catch((e) => parentPort.postMessage({ ready: false, error: String((e && e.stack) || e) }));
`;

interface WorkerReply {
  id: number;
  input: ArrayBuffer;
  output: ArrayBuffer;
  entries?: number[];
  error?: string;
}

interface LibdeflateChunk extends CompressedChunk {
  input: ArrayBuffer;
  output: ArrayBuffer;
}

interface Pending {
  resolve: (chunk: LibdeflateChunk) => void;
  reject: (e: Error) => void;
}

class WorkerSlot {
  readonly pending = new Map<number, Pending>();
  failure: Error | undefined;
  closing = false;
  constructor(readonly worker: Worker) {}
}

/** Where the npm package keeps its Emscripten module (the package's exports map hides it from import specifiers). */
function libdeflateGlueUrl(): string {
  const index = createRequire(import.meta.url).resolve('libdeflate');
  return pathToFileURL(path.join(path.dirname(index), 'dist', 'libdeflate.wasm.mjs')).href;
}

async function startWorker(glueUrl: string, level: number): Promise<WorkerSlot> {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { glueUrl, level, grainBytes: GRAIN_BYTES } });
  let onReady: ((m: { ready: boolean; bound?: number; error?: string }) => void) | undefined;
  let onError: ((e: Error) => void) | undefined;
  let onExit: ((code: number) => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = (m) => {
        if (!m.ready) reject(new Error(m.error));
        else if ((m.bound ?? Infinity) > OUT_BYTES_PER_GRAIN) reject(new Error(`libdeflate's bound ${m.bound} exceeds ${OUT_BYTES_PER_GRAIN}`));
        else resolve();
      };
      onError = reject;
      onExit = (code) => reject(new Error(`deflate worker exited with code ${code} while starting`));
      worker.once('message', onReady);
      worker.once('error', onError);
      worker.once('exit', onExit);
    });
  } catch (e) {
    await worker.terminate();
    throw e;
  } finally {
    // Only these: removeAllListeners() would also drop the hooks that keep the worker's port referenced.
    worker.removeListener('message', onReady!);
    worker.removeListener('error', onError!);
    worker.removeListener('exit', onExit!);
  }
  const slot = new WorkerSlot(worker);
  worker.on('message', (m: WorkerReply) => {
    const p = slot.pending.get(m.id);
    if (!p) return;
    slot.pending.delete(m.id);
    if (m.error !== undefined) {
      p.reject(new Error(`deflate worker: ${m.error}`));
      return;
    }
    const out = new Uint8Array(m.output);
    const e = m.entries!;
    const grains: CompressedGrain[] = [];
    for (let i = 0; i < e.length; i += 3) grains.push({ offset: e[i], data: out.subarray(e[i + 1], e[i + 1] + e[i + 2]) });
    p.resolve({ grains, input: m.input, output: m.output });
  });
  const fail = (e: Error): void => {
    if (slot.closing) return;
    slot.failure ??= e;
    for (const p of slot.pending.values()) p.reject(slot.failure);
    slot.pending.clear();
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`deflate worker exited with code ${code}`)));
  return slot;
}

class LibdeflatePool implements GrainCompressor {
  readonly engine = 'libdeflate' as const;
  readonly parallelism: number;
  private nextId = 0;
  private closed = false;
  private readonly freeInputs: ArrayBuffer[] = [];
  private readonly freeOutputs: ArrayBuffer[] = [];

  private constructor(
    private readonly slots: WorkerSlot[],
    private readonly maxChunkGrains: number,
  ) {
    // Two chunks per worker: one being compressed, one queued behind it.
    this.parallelism = slots.length * 2;
  }

  static async start(level: number, threads: number, maxChunkGrains: number): Promise<LibdeflatePool> {
    const glueUrl = libdeflateGlueUrl();
    const started = await Promise.allSettled(Array.from({ length: threads }, () => startWorker(glueUrl, level)));
    const slots = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(slots.map((s) => s.worker.terminate()));
      throw failed.reason;
    }
    return new LibdeflatePool(slots, maxChunkGrains);
  }

  chunkBuffer(grains: number): Uint8Array {
    if (grains < 1 || grains > this.maxChunkGrains) throw new RangeError(`chunk of ${grains} grains (1..${this.maxChunkGrains})`);
    const buffer = this.freeInputs.pop() ?? new ArrayBuffer(this.maxChunkGrains * GRAIN_BYTES);
    return new Uint8Array(buffer, 0, grains * GRAIN_BYTES);
  }

  compress(chunk: Uint8Array): Promise<CompressedChunk> {
    if (this.closed) return Promise.reject(new Error('deflate pool is closed'));
    if (chunk.byteOffset !== 0 || chunk.buffer.byteLength !== this.maxChunkGrains * GRAIN_BYTES || chunk.length % GRAIN_BYTES !== 0) {
      return Promise.reject(new RangeError('compress() takes a buffer from chunkBuffer()'));
    }
    // The least busy worker; ties go to the first, so two workers alternate on a steady stream.
    let slot = this.slots[0];
    for (const s of this.slots) if (s.pending.size < slot.pending.size) slot = s;
    if (slot.failure) return Promise.reject(slot.failure);
    const id = this.nextId++;
    const input = chunk.buffer as ArrayBuffer;
    const output = this.freeOutputs.pop() ?? new ArrayBuffer(this.maxChunkGrains * OUT_BYTES_PER_GRAIN);
    return new Promise<CompressedChunk>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, input, length: chunk.length, output }, [input, output]);
    });
  }

  release(chunk: CompressedChunk): void {
    const c = chunk as LibdeflateChunk;
    if (c.input) this.freeInputs.push(c.input);
    if (c.output) this.freeOutputs.push(c.output);
    c.grains = [];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      this.slots.map(async (s) => {
        s.closing = true;
        for (const p of s.pending.values()) p.reject(new Error('deflate pool is closed'));
        s.pending.clear();
        await s.worker.terminate();
      }),
    );
  }
}

class ZlibCompressor implements GrainCompressor {
  readonly engine = 'zlib' as const;
  readonly parallelism = availableParallelism() * 2;
  constructor(private readonly level: number) {}

  chunkBuffer(grains: number): Uint8Array {
    return new Uint8Array(grains * GRAIN_BYTES);
  }

  async compress(chunk: Uint8Array): Promise<CompressedChunk> {
    const jobs: Promise<CompressedGrain>[] = [];
    for (let off = 0, i = 0; off < chunk.length; off += GRAIN_BYTES, i++) {
      const grain = chunk.subarray(off, off + GRAIN_BYTES);
      if (isZero(grain)) continue;
      const offset = i;
      jobs.push(deflateAsync(grain, { level: this.level }).then((data) => ({ offset, data })));
    }
    return { grains: await Promise.all(jobs) };
  }

  release(): void {}

  async close(): Promise<void> {}
}

/** A compressor for grains at `level`: libdeflate workers unless zlib is asked for or libdeflate cannot start. */
export async function createGrainCompressor(opts: CompressorOptions): Promise<GrainCompressor> {
  const engine = opts.engine ?? 'libdeflate';
  if (engine === 'libdeflate') {
    const threads = Math.max(1, opts.threads ?? availableParallelism());
    try {
      const pool = await LibdeflatePool.start(opts.level, threads, opts.maxChunkGrains);
      debug('deflate: libdeflate (WebAssembly) level %d in %d worker threads', opts.level, threads);
      return pool;
    } catch (e) {
      if (opts.engine === 'libdeflate') throw e;
      debug('deflate: libdeflate unavailable (%s); using node:zlib', (e as Error).message);
    }
  }
  debug('deflate: node:zlib level %d on the libuv pool', opts.level);
  return new ZlibCompressor(opts.level);
}
