import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deflateSync, inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGrainCompressor, NATIVE_MODULE_PATH, type DeflateEngine } from '../../src/adapters/deflate-pool.js';
import {
  CLUSTER_BYTES,
  compressedEntry,
  encodeHeader,
  encodeRefcountBlock,
  L2_ENTRIES,
  parseCompressedEntry,
  planMetadata,
  Qcow2Builder,
  rawDeflate,
  REFCOUNTS_PER_BLOCK,
  type Qcow2Tail,
} from '../../src/formats/qcow2.js';
import { writeQcow2 } from '../../src/stages/qcow2.js';
import { makeSparseFile } from '../helpers/sparse-file.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const C = CLUSTER_BYTES;

/** The refcounts a reader finds: through the refcount table in the tail's own bytes, as QEMU follows them. */
function refcountsFromTail(tail: Qcow2Tail, dataEnd: number): Uint16Array {
  const bytes = Buffer.concat([...tail.chunks()]);
  const base = dataEnd;
  const at = (offset: number): number => offset - base;
  const out = new Uint16Array(tail.plan.hostClusters);
  const table = bytes.subarray(at(tail.header.refcountTableOffset), at(tail.header.refcountTableOffset) + tail.header.refcountTableClusters * C);
  for (let i = 0; i * REFCOUNTS_PER_BLOCK < out.length; i++) {
    const block = Number(table.readBigUInt64BE(i * 8));
    expect(block % C).toBe(0);
    for (let j = 0; j < REFCOUNTS_PER_BLOCK && i * REFCOUNTS_PER_BLOCK + j < out.length; j++) {
      out[i * REFCOUNTS_PER_BLOCK + j] = bytes.readUInt16BE(at(block) + j * 2);
    }
  }
  return out;
}

describe('qcow2 layout (pure)', () => {
  it('encodes a version 3 header: 16-bit refcounts, 104 bytes, no features, zeros after (end of extensions)', () => {
    const h = encodeHeader({ virtualSize: 3 * GiB, l1Size: 6, l1TableOffset: 5 * C, refcountTableOffset: 6 * C, refcountTableClusters: 1 });
    expect(h.length).toBe(C);
    expect(h.subarray(0, 8).toString('hex')).toBe('514649fb00000003');
    expect(h.readUInt32BE(20)).toBe(16);
    expect(h.readBigUInt64BE(24)).toBe(BigInt(3 * GiB));
    expect(h.readUInt32BE(36)).toBe(6);
    expect(h.readBigUInt64BE(40)).toBe(BigInt(5 * C));
    expect(h.readBigUInt64BE(48)).toBe(BigInt(6 * C));
    expect(h.readUInt32BE(56)).toBe(1);
    expect(h.readUInt32BE(96)).toBe(4);
    expect(h.readUInt32BE(100)).toBe(104);
    expect(h.subarray(104).every((b) => b === 0)).toBe(true);
    expect(h.subarray(8, 20).every((b) => b === 0) && h.subarray(60, 96).every((b) => b === 0)).toBe(true);
  });

  it('encodes compressed descriptors: bit 62, never COPIED, offset below bit 54, extra sectors above', () => {
    const e = compressedEntry(C + 500, 30); // crosses one sector boundary
    expect(e >> 62n).toBe(1n);
    expect((e >> 54n) & 0xffn).toBe(1n);
    expect(e & ((1n << 54n) - 1n)).toBe(BigInt(C + 500));
    expect(parseCompressedEntry(e)).toEqual({ offset: C + 500, readBytes: 1024 - 500 });
    expect((compressedEntry(2 * C, 512) >> 54n) & 0xffn).toBe(0n);
    expect((compressedEntry(2 * C + 1, C + 20) >> 54n) & 0xffn).toBe(128n);
    expect(() => compressedEntry(0, 10)).toThrow(RangeError);
    expect(() => compressedEntry(C, 256 * 512 + 1)).toThrow(RangeError);
  });

  it('unwraps zlib streams to raw deflate and refuses preset dictionaries', () => {
    const data = Buffer.concat([randomBytes(5000), Buffer.alloc(60000, 7)]);
    expect(inflateRawSync(rawDeflate(deflateSync(data))).equals(data)).toBe(true);
    const dict = deflateSync(data, { dictionary: Buffer.from('x'.repeat(100)) });
    expect(() => rawDeflate(dict)).toThrow(/dictionary/);
    expect(() => rawDeflate(Buffer.from('not zlib at all'))).toThrow();
  });

  it('solves the refcount blocks so they cover the whole file, themselves included, and no more', () => {
    // 5 GiB of host file: three 2 GiB blocks.
    expect(planMetadata(5 * GiB, 10, 10).blocks).toBe(3);
    // Around the 2 GiB mark the metadata itself can tip the count over.
    for (let dataClusters = REFCOUNTS_PER_BLOCK - 8; dataClusters <= REFCOUNTS_PER_BLOCK + 2; dataClusters++) {
      const p = planMetadata(dataClusters * C, 2, 1);
      expect(p.blocks * REFCOUNTS_PER_BLOCK).toBeGreaterThanOrEqual(p.hostClusters);
      expect((p.blocks - 1) * REFCOUNTS_PER_BLOCK).toBeLessThan(p.hostClusters);
      expect(p.hostClusters).toBe(p.blocksCluster + p.blocks);
    }
    const empty = planMetadata(C, 0, 1);
    expect(empty).toMatchObject({ firstCluster: 1, l1Cluster: 1, tableCluster: 2, blocksCluster: 3, blocks: 1, hostClusters: 4 });
  });

  it('accounts for every cluster of a 5 GiB host file, as qemu-img check counts them', () => {
    // 95,000 compressed clusters of varied sizes, some sharing sectors and host clusters, some crossing them.
    const image = new Qcow2Builder(40 * GiB);
    const expected: number[] = [1];
    const touch = (first: number, end: number): void => {
      for (let c = first; c < end; c++) expected[c] = (expected[c] ?? 0) + 1;
    };
    let offset = C;
    let guest = 0;
    for (let i = 0; i < 95_000; i++) {
      const bytes = i % 7 === 0 ? 37 : i % 5 === 0 ? C + 11 : 61_000 + (i % 1000);
      guest += i % 50 === 0 ? 201 : 1; // spread over many 512 MiB regions
      image.addCompressed(guest, offset, bytes);
      const start = offset - (offset % 512);
      const end = Math.ceil((offset + bytes) / 512) * 512;
      touch(Math.floor(start / C), Math.ceil(end / C));
      offset += bytes;
    }
    expect(offset).toBeGreaterThan(4.5 * GiB);
    const tail = image.finish();
    const { plan } = tail;
    expect(plan.blocks).toBe(3);
    expect(plan.l2Clusters).toBe(Math.floor(guest / L2_ENTRIES) + 1);
    for (let c = plan.firstCluster; c < plan.hostClusters; c++) touch(c, c + 1);
    const found = refcountsFromTail(tail, offset);
    expect(found.length).toBe(plan.hostClusters);
    // Every cluster of the file is in use, and counted exactly once per user.
    expect(Array.from(found)).toEqual(expected);
    expect(found.every((n) => n > 0)).toBe(true);
    // A refcount block is all zeros past the end of the file.
    expect(encodeRefcountBlock(tail.refcounts, 2).readUInt16BE(((plan.hostClusters % REFCOUNTS_PER_BLOCK) + 1) * 2)).toBe(0);
  });

  it('refuses overlapping or repeated clusters and sizes that are not whole sectors', () => {
    const image = new Qcow2Builder(MiB);
    image.addCompressed(0, C, 100);
    expect(() => image.addCompressed(1, C + 50, 10)).toThrow(/overlaps/);
    expect(() => image.addCompressed(0, C + 100, 10)).toThrow(/twice/);
    expect(() => image.addCompressed(16, C + 200, 10)).toThrow(/out of range/);
    expect(() => new Qcow2Builder(1000)).toThrow(/multiple of 512/);
  });
});

const sparse = makeSparseFile;

/** qemu-img's verdicts: check (errors and leaks), compare with the raw disk, info. */
async function judge(raw: string, out: string, virtualSize: number): Promise<{ check: Record<string, unknown> }> {
  // check exits 2 on corruption, 3 on leaks: execFile rejects then.
  const check = JSON.parse((await execFileAsync('qemu-img', ['check', '--output', 'json', out])).stdout) as Record<string, unknown>;
  expect(check['check-errors']).toBe(0);
  expect(check.corruptions ?? 0).toBe(0);
  expect(check.leaks ?? 0).toBe(0);
  const cmp = await execFileAsync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, out]);
  expect(cmp.stdout).toMatch(/Images are identical/);
  const info = JSON.parse((await execFileAsync('qemu-img', ['info', '--output', 'json', out])).stdout) as Record<string, any>;
  expect(info.format).toBe('qcow2');
  expect(info['virtual-size']).toBe(virtualSize);
  expect(info['cluster-size']).toBe(65536);
  expect(info['format-specific'].data.compat).toBe('1.1');
  expect(info['format-specific'].data['refcount-bits']).toBe(16);
  expect(info['format-specific'].data).toMatchObject({ 'compression-type': 'zlib', 'lazy-refcounts': false, corrupt: false });
  expect(info['actual-size']).toBeGreaterThan(0);
  return { check };
}

const sha256 = async (p: string): Promise<string> => createHash('sha256').update(await readFile(p)).digest('hex');

describe('writeQcow2 with qemu-img as the judge', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'c2v-qcow2-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `islands` into a sparse raw disk of `size`, converts it, and lets qemu-img judge. */
  async function roundTrip(name: string, size: number, islands: readonly (readonly [number, Buffer])[], capacity = size) {
    const raw = join(dir, `${name}.raw`);
    const out = join(dir, `${name}.qcow2`);
    await sparse(raw, size, islands);
    const r = await writeQcow2(raw, out, { capacityBytes: capacity, compressLevel: 5 });
    expect(r.bytes).toBe((await stat(out)).size);
    expect(r.bytes % C).toBe(0);
    const { check } = await judge(raw, out, capacity);
    expect(check['compressed-clusters'] ?? 0).toBe(r.clusters);
    expect(check['allocated-clusters'] ?? 0).toBe(r.clusters);
    return { raw, out, r, check };
  }

  it('writes an all-zero sparse disk as header and tables only', async () => {
    const { r } = await roundTrip('zero', 64 * MiB, [[10 * MiB, Buffer.alloc(3 * MiB)]]);
    expect(r.clusters).toBe(0);
    expect(r.bytes).toBe(4 * C); // header, L1, refcount table, one refcount block
  }, 60_000);

  it('keeps random (incompressible) data as compressed clusters a few bytes over 64 KiB', async () => {
    const { r } = await roundTrip('random', 32 * MiB, [[0, randomBytes(4 * MiB)]]);
    expect(r.clusters).toBe(64);
    expect(r.bytes).toBeGreaterThan(4 * MiB);
    // The data spills into one more cluster; then header, L2, L1, refcount table and block.
    expect(r.bytes).toBe(4 * MiB + 6 * C);
  }, 60_000);

  it('compresses compressible data, with matches further back than 4 KiB and tiny clusters sharing sectors', async () => {
    const block = randomBytes(12 * 1024);
    const repeats = Buffer.concat(Array.from({ length: 64 }, () => block)); // 768 KiB, distances of 12 KiB
    const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `line ${i}: the quick brown fox ${i % 97}\n`).join(''));
    const constant = Buffer.alloc(40 * C, 0x5a); // ~100-byte clusters, several per sector
    const { r } = await roundTrip('compressible', 64 * MiB, [
      [0, repeats],
      [2 * MiB + 3, text],
      [8 * MiB, constant],
    ]);
    expect(r.bytes).toBeLessThan(2 * MiB);
  }, 60_000);

  it('stores data at the very start and the very end, with a capacity that is not whole clusters', async () => {
    const size = 100 * MiB + 512 * 3;
    const { r } = await roundTrip('edges', size, [
      [0, Buffer.from([0xeb, 0x63, 0x90])],
      [size - 3000, randomBytes(3000)],
    ]);
    expect(r.clusters).toBe(3); // the last 3000 bytes straddle two clusters, the last one partial
  }, 60_000);

  it('maps several 512 MiB regions (several L2 tables) of a disk over 2 GiB', async () => {
    const size = 3 * GiB + 7 * 512;
    const islands = [
      [0, randomBytes(100_000)],
      [600 * MiB, randomBytes(3 * C)],
      [1100 * MiB + 12345, Buffer.alloc(C, 1)],
      [2 * GiB + 5, randomBytes(70_000)],
      [size - 4096, randomBytes(4096)],
    ] as const;
    const { out, r } = await roundTrip('regions', size, islands);
    const head = await readFile(out);
    const l1Size = head.readUInt32BE(36);
    const l1 = Number(head.readBigUInt64BE(40));
    expect(l1Size).toBe(7); // ceil(3 GiB + 3.5 KiB / 512 MiB)
    const entries = Array.from({ length: l1Size }, (_, i) => head.readBigUInt64BE(l1 + i * 8));
    // Regions 0, 1, 2, 4, 5 and 6 hold data (the last 4 KiB straddle 5 and 6); COPIED on every allocated L1 entry.
    expect(entries.map((e) => (e === 0n ? 0 : 1))).toEqual([1, 1, 1, 0, 1, 1, 1]);
    expect(entries.filter((e) => e !== 0n).every((e) => e >> 63n === 1n)).toBe(true);
    expect(r.readBytes).toBeLessThan(MiB);
  }, 120_000);

  it('reads a raw file shorter than the capacity as zeros, and refuses a longer one without leaving a file', async () => {
    const raw = join(dir, 'short.raw');
    await sparse(raw, 5 * MiB, [[5 * MiB - 10, randomBytes(10)]]);
    const out = join(dir, 'short.qcow2');
    await writeQcow2(raw, out, { capacityBytes: 16 * MiB, compressLevel: 6 });
    await judge(raw, out, 16 * MiB);
    const big = join(dir, 'big.qcow2');
    await expect(writeQcow2(raw, big, { capacityBytes: 4 * MiB, compressLevel: 6 })).rejects.toThrow(/larger than the qcow2 capacity/);
    expect(existsSync(big)).toBe(false);
  }, 60_000);

  it('removes the partial output when writing fails', async () => {
    const raw = join(dir, 'fail.raw');
    await sparse(raw, 64 * MiB, [[0, randomBytes(4 * MiB)]]);
    const out = join(dir, 'fail.qcow2');
    await expect(
      writeQcow2(raw, out, {
        capacityBytes: 64 * MiB,
        compressLevel: 5,
        onProgress: (done) => {
          if (done > MiB) throw new Error('stop here');
        },
      }),
    ).rejects.toThrow('stop here');
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  describe('determinism and engines', () => {
    let raw: string;
    const size = 256 * MiB;
    beforeAll(async () => {
      raw = join(dir, 'mixed.raw');
      const text = Buffer.from(Array.from({ length: 30_000 }, (_, i) => `entry ${i} value ${(i * 7919) % 10007}\n`).join(''));
      await sparse(raw, size, [
        [0, randomBytes(MiB + 100)],
        [3 * MiB, text],
        [50 * MiB + 1, Buffer.alloc(300_000, 0xaa)],
        [size - 3 * C, randomBytes(3 * C)],
      ]);
    });

    it('gives the same bytes with 1 and 3 threads, and reports progress up to the bytes read', async () => {
      const one = join(dir, 't1.qcow2');
      const three = join(dir, 't3.qcow2');
      const reports: number[][] = [];
      const a = await writeQcow2(raw, one, { capacityBytes: size, compressLevel: 6, threads: 1, onProgress: (d, t) => reports.push([d, t]) });
      const b = await writeQcow2(raw, three, { capacityBytes: size, compressLevel: 6, threads: 3 });
      expect(await sha256(one)).toBe(await sha256(three));
      expect(a).toEqual(b);
      expect(reports.at(-1)).toEqual([a.readBytes, a.readBytes]);
      await judge(raw, one, size);
    }, 120_000);

    const engines: DeflateEngine[] = ['libdeflate-native', 'libdeflate-wasm', 'zlib'];
    for (const engine of engines) {
      it(`writes a valid image with the ${engine} engine`, async (ctx) => {
        if (engine === 'libdeflate-native' && !existsSync(NATIVE_MODULE_PATH)) ctx.skip();
        try {
          await (await createGrainCompressor({ level: 6, maxChunkGrains: 16, engine, threads: 1 })).close();
        } catch {
          ctx.skip();
        }
        const out = join(dir, `${engine}.qcow2`);
        const r = await writeQcow2(raw, out, { capacityBytes: size, compressLevel: 6, engine, threads: 2 });
        expect(r.engine).toBe(engine);
        await judge(raw, out, size);
      }, 120_000);
    }
  });
});
