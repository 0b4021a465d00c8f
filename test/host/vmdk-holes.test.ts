import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataMap, normalizeRanges, parseFilefrag } from '../../src/adapters/data-map.js';
import { grainRuns, writeVmdk } from '../../src/stages/vmdk.js';
import { GRAIN_BYTES } from '../../src/formats/vmdk.js';
import { firstDifferentGrain, parseVmdk } from '../helpers/vmdk-reader.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;

const FILEFRAG = `Filesystem type is: ef53
File size of deb.raw is 1130364928 (275968 blocks of 4096 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0..       4:   32194560..  32194564:      5:            
   1:      256..     296:   32194816..  32194856:     41:            
   3:    16896..   17029:   32016896..  32017029:    134:   32211456:
  18:   275936..  275962:   31982082..  31982108:     27:   32222688: unwritten
  19:   275963..  275967:   32191544..  32191548:      5:   31982109: last,eof
deb.raw: 13 extents found
`;

describe('data map parsing', () => {
  it('reads filefrag -v extents as byte ranges, leaving out unwritten (preallocated) ones', () => {
    expect(parseFilefrag(FILEFRAG)).toEqual([
      { start: 0, end: 5 * 4096 },
      { start: 256 * 4096, end: 297 * 4096 },
      { start: 16896 * 4096, end: 17030 * 4096 },
      { start: 275963 * 4096, end: 275968 * 4096 },
    ]);
  });

  it('takes an empty file as no data, and refuses output it does not understand rather than guess "no data"', () => {
    expect(parseFilefrag('Filesystem type is: ef53\nFile size of e is 0 (0 blocks of 4096 bytes)\ne: 0 extents found\n')).toEqual([]);
    expect(() => parseFilefrag('File size of x is 8192 (2 blocks of 4096 bytes)\n0 4242\nx: 2 extents found\n')).toThrow(/not understood/);
    expect(() => parseFilefrag('x: FIBMAP/FIEMAP unsupported\n')).toThrow();
  });

  it('merges ranges and grains into ascending runs', () => {
    expect(normalizeRanges([{ start: 10, end: 20 }, { start: 0, end: 5 }, { start: 15, end: 30 }, { start: 90, end: 200 }], 100)).toEqual([
      { start: 0, end: 5 },
      { start: 10, end: 30 },
      { start: 90, end: 100 },
    ]);
    const G = GRAIN_BYTES;
    expect(grainRuns([{ start: 10, end: 20 }, { start: G - 1, end: G + 1 }, { start: 5 * G, end: 7 * G }, { start: 7 * G, end: 7 * G + 1 }])).toEqual([
      { first: 0, count: 2 },
      { first: 5, count: 3 },
    ]);
  });
});

describe('hole skipping on a sparse raw disk with data islands', () => {
  let dir: string;
  const size = 300 * MiB;
  let raw: string;
  const islands: [number, Buffer][] = [
    [0, randomBytes(3 * GRAIN_BYTES + 100)],
    [MiB + 123, randomBytes(5000)],
    [40 * MiB, randomBytes(MiB)], // second grain-table group
    [130 * MiB + 7, Buffer.alloc(2 * GRAIN_BYTES, 0x5a)],
    [200 * MiB, Buffer.alloc(256 * 1024)], // allocated zeros: data to the map, skipped as zero grains
    [size - 700, randomBytes(700)],
  ];

  async function sparse(path: string): Promise<void> {
    await writeFile(path, '');
    await truncate(path, size);
    const fh = await open(path, 'r+');
    try {
      for (const [at, data] of islands) await fh.write(data, 0, data.length, at);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'c2v-holes-'));
    raw = join(dir, 'islands.raw');
    await sparse(raw);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds the islands through the kernel and nothing of the holes', async () => {
    const map = await dataMap(raw, size);
    expect(['fiemap', 'seek-data']).toContain(map.method);
    for (const [at, data] of islands) {
      expect(map.ranges.some((r) => r.start <= at && r.end >= at + data.length)).toBe(true);
    }
    const mapped = map.ranges.reduce((n, r) => n + r.end - r.start, 0);
    expect(mapped).toBeLessThan(2 * MiB);
  });

  it('writes the same VMDK bytes with and without skipping, reading only the islands, and qemu-img finds it identical', async () => {
    const skipped = join(dir, 'skipped.vmdk');
    const full = join(dir, 'full.vmdk');
    const opts = { capacityBytes: size, fileName: 'islands.vmdk', virtualHwVersion: 14, digest: 'sha256' } as const;
    const reports: number[][] = [];
    const a = await writeVmdk(raw, skipped, { ...opts, onProgress: (done, total) => reports.push([done, total]) });
    const b = await writeVmdk(raw, full, { ...opts, mapData: false });
    // Progress counts the data read, in grain order, and ends at the total.
    expect(reports.length).toBeGreaterThan(1);
    expect(reports.every(([done, total], i) => total === a.readBytes && done > (reports[i - 1]?.[0] ?? 0))).toBe(true);
    expect(reports.at(-1)![0]).toBe(a.readBytes);
    expect(a.readBytes).toBeLessThan(3 * MiB);
    expect(b.readBytes).toBe(size);
    expect(a.mapMethod).not.toBe('none');
    const [x, y] = [await readFile(skipped), await readFile(full)];
    expect(x.equals(y)).toBe(true);
    expect(a.digest).toBe(b.digest);
    // Zero grains are never stored: 4 + 1 + 16 + 2 + 1 (+1 where the 0x5a run crosses a grain boundary).
    expect(a.grains).toBe(parseVmdk(x).events.filter((e) => e.kind === 'grain').length);
    expect(a.grains).toBe(25);
    expect(await firstDifferentGrain(x, raw)).toBeNull();
    const cmp = await execFileAsync('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, skipped]);
    expect(cmp.stdout).toMatch(/Images are identical/);
  }, 120_000);

  it('gives the same bytes whatever the number of deflate threads, and valid output from the node:zlib fallback', async () => {
    const opts = { capacityBytes: size, fileName: 'islands.vmdk', virtualHwVersion: 14, digest: 'sha256' } as const;
    const one = join(dir, 't1.vmdk');
    const three = join(dir, 't3.vmdk');
    const zlib = join(dir, 'zlib.vmdk');
    await writeVmdk(raw, one, { ...opts, threads: 1 });
    await writeVmdk(raw, three, { ...opts, threads: 3 });
    expect((await readFile(one)).equals(await readFile(three))).toBe(true);
    const z = await writeVmdk(raw, zlib, { ...opts, engine: 'zlib' });
    expect(z.engine).toBe('zlib');
    const cmp = await execFileAsync('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, zlib]);
    expect(cmp.stdout).toMatch(/Images are identical/);
  }, 120_000);

  it('falls back to SEEK_DATA where FIEMAP is missing (tmpfs)', async () => {
    if (!existsSync('/dev/shm')) return;
    const shm = await mkdtemp('/dev/shm/c2v-holes-');
    try {
      const p = join(shm, 'islands.raw');
      await sparse(p);
      const map = await dataMap(p, size);
      expect(map.method).toBe('seek-data');
      for (const [at, data] of islands) {
        expect(map.ranges.some((r) => r.start <= at && r.end >= at + data.length)).toBe(true);
      }
      expect(map.ranges.reduce((n, r) => n + r.end - r.start, 0)).toBeLessThan(4 * MiB);
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });
});
