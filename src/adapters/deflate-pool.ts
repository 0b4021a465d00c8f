/**
 * Compresses VMDK grains on every core. Three engines, chosen by measurement on a 630 MB Debian root fs (see
 * README "Performance"):
 * - `libdeflate-native` (default): c2v's small N-API module (native/grain_deflate.c), which `npm run build`
 *   compiles with libdeflate 1.23 from source when a C compiler and Node's headers are there. At level 5 it
 *   takes about 0.55x the CPU time of the WebAssembly build, for the same bytes (same libdeflate version).
 * - `libdeflate-wasm`: libdeflate compiled to WebAssembly (npm `libdeflate`), when the native module is not built.
 *   At level 6 it is ~15% faster per core than node:zlib and its output is ~2% smaller.
 * - `zlib`: node:zlib on the libuv pool; the fallback when neither libdeflate loads.
 * Both libdeflate engines run one compressor per worker thread (deflate-worker.ts). All three produce zlib
 * streams (RFC 1950), which is what VMDK readers inflate. A chunk is a run of whole grains; the engine skips the
 * all-zero ones without compressing them and returns the rest with their index in the chunk.
 *
 * Memory stays flat however big the disk: chunk and output buffers travel to a worker and back (transferred,
 * not copied) and are reused, and a worker packs a chunk's compressed grains into one output buffer.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { deflate } from 'node:zlib';
import createDebug from 'debug';
import { GRAIN_BYTES } from '../formats/vmdk.js';
import { isZero } from '../formats/zero.js';
import type { ChunkReply, ChunkRequest, DeflateWorkerData, WorkerStatus } from './deflate-worker.js';

const debug = createDebug('c2v:disk');
const deflateAsync = promisify(deflate);

export type DeflateEngine = 'libdeflate-native' | 'libdeflate-wasm' | 'zlib';

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
  /** Default: the first of libdeflate-native, libdeflate-wasm, zlib that loads. */
  engine?: DeflateEngine;
  /** Worker threads for libdeflate; default availableParallelism(). */
  threads?: number;
}

/**
 * Room for one compressed grain: libdeflate's zlib bound for 64 KiB is a few hundred bytes above 64 KiB (stored
 * blocks for incompressible data); the worker checks the real bound.
 */
const OUT_BYTES_PER_GRAIN = GRAIN_BYTES + 1024;

/** Where `npm run build` puts the native module: build/native/ at the package root, two levels above this file. */
export const NATIVE_MODULE_PATH = fileURLToPath(new URL('../../build/native/grain_deflate.node', import.meta.url));

/**
 * The compiled worker module. From dist/ it sits next to this file. Under vitest this file runs from src/ as
 * TypeScript, which Node 20 cannot start in a worker, so the tests use the copy `npm run build` put in dist/.
 */
const WORKER_URL = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/adapters/deflate-worker.js', import.meta.url)
  : new URL('./deflate-worker.js', import.meta.url);
export const DEFLATE_WORKER_PATH = fileURLToPath(WORKER_URL);

/** The worker's URL, refusing a missing build, or, from the sources, one older than them (tests would run stale code). */
function workerUrl(): URL {
  if (!existsSync(DEFLATE_WORKER_PATH)) throw new Error(`${DEFLATE_WORKER_PATH} is not built (run npm run build)`);
  if (import.meta.url.endsWith('.ts')) {
    const built = statSync(DEFLATE_WORKER_PATH).mtimeMs;
    // The worker's own sources: a change to them must not go untested behind an old build.
    for (const relative of ['./deflate-worker.ts', '../formats/zero.ts']) {
      const source = fileURLToPath(new URL(relative, import.meta.url));
      if (statSync(source).mtimeMs > built) throw new Error(`${DEFLATE_WORKER_PATH} is older than ${source} (run npm run build)`);
    }
  }
  return WORKER_URL;
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

type LibdeflateEngine = Exclude<DeflateEngine, 'zlib'>;

function workerData(engine: LibdeflateEngine, level: number): DeflateWorkerData {
  const common = { level, grainBytes: GRAIN_BYTES };
  if (engine === 'libdeflate-native') {
    // A missing module is the usual case on a machine without a compiler: say so plainly rather than via dlopen.
    if (!existsSync(NATIVE_MODULE_PATH)) throw new Error(`${NATIVE_MODULE_PATH} is not built (npm run build)`);
    return { ...common, backend: 'native', nativePath: NATIVE_MODULE_PATH };
  }
  return { ...common, backend: 'wasm', glueUrl: libdeflateGlueUrl() };
}

async function startWorker(url: URL, data: DeflateWorkerData): Promise<WorkerSlot> {
  const worker = new Worker(url, { workerData: data });
  let onReady: ((m: WorkerStatus) => void) | undefined;
  let onError: ((e: Error) => void) | undefined;
  let onExit: ((code: number) => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = (m) => {
        if (!m.ready) reject(new Error(m.error));
        else if (m.bound > OUT_BYTES_PER_GRAIN) reject(new Error(`libdeflate's bound ${m.bound} exceeds ${OUT_BYTES_PER_GRAIN}`));
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
  worker.on('message', (m: ChunkReply) => {
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
  readonly parallelism: number;
  private nextId = 0;
  private closed = false;
  private readonly freeInputs: ArrayBuffer[] = [];
  private readonly freeOutputs: ArrayBuffer[] = [];

  private constructor(
    readonly engine: LibdeflateEngine,
    private readonly slots: WorkerSlot[],
    private readonly maxChunkGrains: number,
  ) {
    // Two chunks per worker: one being compressed, one queued behind it.
    this.parallelism = slots.length * 2;
  }

  static async start(url: URL, engine: LibdeflateEngine, level: number, threads: number, maxChunkGrains: number): Promise<LibdeflatePool> {
    const data = workerData(engine, level);
    const started = await Promise.allSettled(Array.from({ length: threads }, () => startWorker(url, data)));
    const slots = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(slots.map((s) => s.worker.terminate()));
      throw failed.reason;
    }
    return new LibdeflatePool(engine, slots, maxChunkGrains);
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
      const request: ChunkRequest = { id, input, length: chunk.length, output };
      slot.worker.postMessage(request, [input, output]);
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

/** A compressor for grains at `level`: the engine asked for, else the first of the three that starts. */
export async function createGrainCompressor(opts: CompressorOptions): Promise<GrainCompressor> {
  const threads = Math.max(1, opts.threads ?? availableParallelism());
  const libdeflates: LibdeflateEngine[] =
    opts.engine === undefined ? ['libdeflate-native', 'libdeflate-wasm'] : opts.engine === 'zlib' ? [] : [opts.engine];
  if (libdeflates.length > 0) {
    // Outside the fallback: a missing or stale worker build is c2v's own fault, not an engine that did not load.
    const url = workerUrl();
    for (const engine of libdeflates) {
      try {
        const pool = await LibdeflatePool.start(url, engine, opts.level, threads, opts.maxChunkGrains);
        debug('deflate: %s level %d in %d worker threads', engine, opts.level, threads);
        return pool;
      } catch (e) {
        if (opts.engine) throw e;
        debug('deflate: %s unavailable (%s)', engine, (e as Error).message);
      }
    }
  }
  debug('deflate: node:zlib level %d on the libuv pool', opts.level);
  return new ZlibCompressor(opts.level);
}
