import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createGrainCompressor,
  DEFLATE_WORKER_PATH,
  NATIVE_MODULE_PATH,
  type DeflateEngine,
  type GrainCompressor,
} from '../../src/adapters/deflate-pool.js';
import { GRAIN_BYTES } from '../../src/formats/vmdk.js';

const CHUNK_GRAINS = 16;

/**
 * glibc's gconv modules, end to end: real machine code and tables, on every Debian host (package libc6). Some
 * of their grains compress differently in libdeflate 1.14 (bookworm's) and 1.23 (what the WebAssembly build
 * matches), so this data tells the versions apart where plain text or random bytes would not. Two zero grains
 * go in front so the skip is exercised too.
 */
function sample(): Buffer {
  const dir = '/usr/lib/x86_64-linux-gnu/gconv';
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.so'))
    .sort();
  const parts = [Buffer.alloc(2 * GRAIN_BYTES), ...files.map((f) => readFileSync(join(dir, f)))];
  const joined = Buffer.concat(parts);
  return Buffer.concat([joined, Buffer.alloc((GRAIN_BYTES - (joined.length % GRAIN_BYTES)) % GRAIN_BYTES)]);
}

/** Every chunk's compressed grains, as (grain index, bytes), in order. */
async function compressAll(c: GrainCompressor, data: Buffer): Promise<Array<[number, Buffer]>> {
  const out: Array<[number, Buffer]> = [];
  const grains = data.length / GRAIN_BYTES;
  for (let first = 0; first < grains; first += CHUNK_GRAINS) {
    const count = Math.min(CHUNK_GRAINS, grains - first);
    const buf = c.chunkBuffer(count);
    buf.set(data.subarray(first * GRAIN_BYTES, (first + count) * GRAIN_BYTES));
    const chunk = await c.compress(buf);
    for (const g of chunk.grains) out.push([first + g.offset, Buffer.from(g.data)]);
    c.release(chunk);
  }
  return out;
}

describe('deflate engines', () => {
  let data: Buffer;
  const pools: GrainCompressor[] = [];
  const start = async (engine?: DeflateEngine): Promise<GrainCompressor> => {
    const c = await createGrainCompressor({ level: 5, maxChunkGrains: CHUNK_GRAINS, engine });
    pools.push(c);
    return c;
  };

  beforeAll(() => {
    data = sample();
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  it('uses the native module by default once `npm run build` has built it', async () => {
    // scripts/prepare builds it; a CI run without it would measure and ship the slower engine unnoticed.
    expect(existsSync(NATIVE_MODULE_PATH), `${NATIVE_MODULE_PATH} missing: run npm run build`).toBe(true);
    expect(existsSync(DEFLATE_WORKER_PATH), `${DEFLATE_WORKER_PATH} missing: run npm run build`).toBe(true);
    expect((await start()).engine).toBe('libdeflate-native');
  });

  it('gives the same bytes from the native module and the WebAssembly build, each inflating to its grain', async () => {
    const native = await compressAll(await start('libdeflate-native'), data);
    const wasm = await compressAll(await start('libdeflate-wasm'), data);
    expect(native.length).toBe(data.length / GRAIN_BYTES - 2);
    expect(native.map(([i]) => i)).toEqual(wasm.map(([i]) => i));
    const differing = native.filter(([, bytes], k) => !bytes.equals(wasm[k][1])).map(([i]) => i);
    expect(differing).toEqual([]);
    for (const [i, bytes] of native) {
      expect(inflateSync(bytes).equals(data.subarray(i * GRAIN_BYTES, (i + 1) * GRAIN_BYTES))).toBe(true);
    }
  }, 60_000);

  it('refuses a level libdeflate does not have, from either engine', async () => {
    for (const engine of ['libdeflate-native', 'libdeflate-wasm'] as const) {
      await expect(createGrainCompressor({ level: 13, maxChunkGrains: CHUNK_GRAINS, engine })).rejects.toThrow(/level|alloc/i);
    }
  });
});
