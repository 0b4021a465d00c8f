/**
 * One deflate worker thread of the pool in deflate-pool.ts, which starts it from the compiled module (Node 20 runs
 * no TypeScript in a worker). Either backend keeps one compressor for the worker's life, so nothing is allocated
 * per grain. Neither loads in the main thread: the Emscripten glue installs process-wide error handlers of its own.
 */
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { isZero } from '../formats/zero.js';

export type DeflateWorkerData = { level: number; grainBytes: number } & (
  | { backend: 'native'; nativePath: string }
  | { backend: 'wasm'; glueUrl: string }
);

/** The worker's first message: its backend loaded, with the most one grain can take compressed, or why not. */
export type WorkerStatus = { ready: true; bound: number } | { ready: false; error: string };

/** A chunk of whole grains to compress; both buffers are transferred, and come back in the reply. */
export interface ChunkRequest {
  id: number;
  input: ArrayBuffer;
  /** Bytes of input that hold grains. */
  length: number;
  output: ArrayBuffer;
}

export interface ChunkReply {
  id: number;
  input: ArrayBuffer;
  output: ArrayBuffer;
  /** For each non-zero grain: its index in the chunk, offset in output, compressed length. */
  entries?: number[];
  error?: string;
}

interface Backend {
  bound: number;
  compressChunk(input: ArrayBuffer, length: number, output: ArrayBuffer): number[];
}

/** What native/grain_deflate.c exports. */
interface GrainDeflateAddon {
  zlibBound(grainBytes: number, level: number): number;
  compressChunk(input: ArrayBuffer, length: number, output: ArrayBuffer, grainBytes: number, level: number): number[];
}

/** The parts of npm libdeflate's Emscripten module used here: libdeflate's C functions and the heap. */
interface LibdeflateWasm {
  /** Re-read after every allocation: a growing heap replaces the view. */
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _libdeflate_alloc_compressor(level: number): number;
  _libdeflate_zlib_compress_bound(compressor: number, inBytes: number): number;
  _libdeflate_zlib_compress(compressor: number, inPtr: number, inBytes: number, outPtr: number, outBytes: number): number;
}

function nativeBackend(nativePath: string, level: number, grainBytes: number): Backend {
  const addon = createRequire(import.meta.url)(nativePath) as GrainDeflateAddon;
  return {
    bound: addon.zlibBound(grainBytes, level),
    compressChunk: (input, length, output) => addon.compressChunk(input, length, output, grainBytes, level),
  };
}

/** Drives libdeflate's exports directly, with one in/out area in the WebAssembly heap. */
async function wasmBackend(glueUrl: string, level: number, grainBytes: number): Promise<Backend> {
  const glue = (await import(glueUrl)) as { default: () => Promise<LibdeflateWasm> };
  const m = await glue.default();
  const compressor = m._libdeflate_alloc_compressor(level);
  if (!compressor) throw new Error(`libdeflate_alloc_compressor(${level}) failed`);
  const bound = m._libdeflate_zlib_compress_bound(compressor, grainBytes);
  const inPtr = m._malloc(grainBytes);
  const outPtr = m._malloc(bound);
  if (!inPtr || !outPtr) throw new Error('malloc in the WebAssembly heap failed');
  const compressChunk = (input: ArrayBuffer, length: number, output: ArrayBuffer): number[] => {
    const bytes = new Uint8Array(input, 0, length);
    const out = new Uint8Array(output);
    const entries: number[] = [];
    let pos = 0;
    for (let off = 0, i = 0; off < length; off += grainBytes, i++) {
      const grain = bytes.subarray(off, off + grainBytes);
      if (isZero(grain)) continue;
      m.HEAPU8.set(grain, inPtr);
      const n = m._libdeflate_zlib_compress(compressor, inPtr, grainBytes, outPtr, bound);
      if (n === 0) throw new Error('libdeflate_zlib_compress failed');
      if (pos + n > out.length) throw new Error('compressed chunk does not fit its output buffer');
      out.set(m.HEAPU8.subarray(outPtr, outPtr + n), pos);
      entries.push(i, pos, n);
      pos += n;
    }
    return entries;
  };
  return { bound, compressChunk };
}

const errorText = (e: unknown): string => String((e instanceof Error && e.stack) || e);

async function serve(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('deflate-worker runs as a worker thread of deflate-pool');
  const data = workerData as DeflateWorkerData;
  let backend: Backend;
  try {
    backend =
      data.backend === 'native'
        ? nativeBackend(data.nativePath, data.level, data.grainBytes)
        : await wasmBackend(data.glueUrl, data.level, data.grainBytes);
  } catch (e) {
    port.postMessage({ ready: false, error: errorText(e) } satisfies WorkerStatus);
    return;
  }
  port.postMessage({ ready: true, bound: backend.bound } satisfies WorkerStatus);
  port.on('message', ({ id, input, length, output }: ChunkRequest) => {
    let reply: ChunkReply;
    try {
      reply = { id, input, output, entries: backend.compressChunk(input, length, output) };
    } catch (e) {
      reply = { id, input, output, error: errorText(e) };
    }
    // The buffers go back either way, so the pool can reuse them.
    port.postMessage(reply, [input, output]);
  });
}

await serve();
