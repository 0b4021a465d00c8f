import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { intersectRanges } from '../../src/adapters/data-map.js';
import { Ext4FormatError, freeRuns, parseSuperblock, type Superblock } from '../../src/formats/ext4.js';
import { ext4Features, mke2fsConfig } from '../../src/plan/rootfs.js';
import { zerofreeRoot } from '../../src/stages/zerofree.js';

const MiB = 1024 * 1024;
const OFFSET = 3 * MiB;

describe('ext4 free block parsing', () => {
  const sb: Superblock = { blockSize: 1024, blocksCount: 1 + 8192 + 20, firstDataBlock: 1, blocksPerGroup: 8192, groupCount: 2, descSize: 32, uninitGroups: false };

  it('turns clear bits into runs of absolute block numbers, also across whole free and used bytes', () => {
    const bitmap = new Uint8Array(1024).fill(0xff);
    bitmap[0] = 0b1111_0001; // blocks 1..3 of the group free
    bitmap[2] = 0; // 16..23 free
    bitmap[3] = 0; // 24..31 free: one run with the byte before
    bitmap[4] = 0b0000_0001; // 33..39 free too
    bitmap[1023] = 0b0111_1111; // the group's last block
    expect(freeRuns(sb, 0, bitmap)).toEqual([
      { start: 2, end: 5 },
      { start: 17, end: 33 },
      { start: 34, end: 41 },
      { start: 8192, end: 8193 },
    ]);
  });

  it('ignores the padding bits of the short last group', () => {
    const bitmap = new Uint8Array(1024); // all clear, padding included
    expect(freeRuns(sb, 1, bitmap)).toEqual([{ start: 8193, end: 8193 + 20 }]);
  });

  it('refuses what is not an ext superblock, and meta_bg', () => {
    expect(() => parseSuperblock(new Uint8Array(1024))).toThrow(Ext4FormatError);
    const raw = new Uint8Array(1024);
    const v = new DataView(raw.buffer);
    v.setUint16(0x38, 0xef53, true);
    v.setUint32(0x4, 1000, true);
    v.setUint32(0x20, 8192, true);
    v.setUint32(0x60, 0x10, true);
    expect(() => parseSuperblock(raw)).toThrow(/meta_bg/);
    v.setUint32(0x60, 0, true);
    expect(parseSuperblock(raw)).toMatchObject({ blockSize: 1024, blocksCount: 1000, groupCount: 1, descSize: 32 });
  });

  it('intersects ascending range lists', () => {
    expect(intersectRanges([{ start: 0, end: 10 }, { start: 20, end: 30 }], [{ start: 5, end: 25 }, { start: 29, end: 40 }])).toEqual([
      { start: 5, end: 10 },
      { start: 20, end: 25 },
      { start: 29, end: 30 },
    ]);
    expect(intersectRanges([], [{ start: 0, end: 1 }])).toEqual([]);
  });
});

/**
 * Against the real zerofree: a filesystem whose deleted files left data in free blocks, zeroed by both, must come
 * out byte for byte the same, while c2v's reads only the free blocks that are not holes.
 */
describe('zerofreeRoot against zerofree(8)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'c2v-zerofree-'));
    const content = join(dir, 'content');
    mkdirSync(join(content, 'keep'), { recursive: true });
    for (let i = 0; i < 40; i++) writeFileSync(join(content, 'keep', `f${i}`), randomBytes(3000 + i * 997));
    writeFileSync(join(content, 'gone1.bin'), randomBytes(5 * MiB));
    writeFileSync(join(content, 'gone2.bin'), Buffer.alloc(2 * MiB, 0x11));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const cases: { name: string; conf?: string; size: string }[] = [
    { name: "c2v's ext4 (4 KiB blocks, metadata_csum, uninit groups) on a 700 MiB filesystem", conf: mke2fsConfig(ext4Features({})), size: '700M' },
    { name: "an old guest's ext4 (no metadata_csum)", conf: mke2fsConfig(ext4Features({ ID: 'centos', VERSION_ID: '7' })), size: '300M' },
    { name: 'the host default for a small filesystem (1 KiB blocks, first data block 1)', size: '60M' },
  ];

  for (const c of cases) {
    it(c.name, async () => {
      const img = join(dir, 'disk.img');
      rmSync(img, { force: true });
      writeFileSync(img, '');
      truncateSync(img, OFFSET + 800 * MiB);
      const env = { ...process.env };
      if (c.conf) {
        writeFileSync(join(dir, 'mke2fs.conf'), c.conf);
        env.MKE2FS_CONFIG = join(dir, 'mke2fs.conf');
      }
      execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-E', `offset=${OFFSET}`, '-d', join(dir, 'content'), img, c.size], { env });
      // Deleting leaves the files' data in blocks that are now free.
      const fs = `${img}?offset=${OFFSET}`;
      execFileSync('debugfs', ['-w', '-R', 'rm /gone1.bin', fs], { stdio: 'ignore' });
      execFileSync('debugfs', ['-w', '-R', 'rm /gone2.bin', fs], { stdio: 'ignore' });
      // And junk in a free block far into the filesystem, as a tool that wrote and freed it would leave.
      // (In a group that has had blocks allocated: c2v skips never-used BLOCK_UNINIT groups, which only mke2fs wrote.)
      const ffb = execFileSync('debugfs', ['-R', 'ffb 1 3000', fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const block = Number(/Free blocks found: (\d+)/.exec(ffb)![1]);
      const stats = execFileSync('debugfs', ['-R', 'stats', fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const blockSize = Number(/Block size:\s+(\d+)/.exec(stats)![1]);
      const fd = openSync(img, 'r+');
      writeSync(fd, Buffer.alloc(512, 0x77), 0, 512, OFFSET + block * blockSize + 100);
      closeSync(fd);
      const theirs = join(dir, 'theirs.img');
      copyFileSync(img, theirs);
      execFileSync('zerofree', [`${theirs}?offset=${OFFSET}`]);

      const r = await zerofreeRoot(img, OFFSET);
      expect(r.zeroedBlocks).toBeGreaterThan(0);
      expect(r.checkedBytes).toBeLessThan(r.freeBytes);
      // zerofree(8) closes the filesystem read-write, so libext2fs stamps the superblock (write time, kbytes
      // written, checksum); every other byte, the zeroed blocks above all, must be the same.
      const cmp = spawnSync('cmp', ['-l', img, theirs], { encoding: 'utf8', maxBuffer: 1 << 20 });
      const differing = cmp.stdout.trim().split('\n').filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[0]) - 1);
      expect(cmp.status === 0 || differing.length > 0, cmp.stderr).toBe(true);
      expect(differing.filter((at) => at < OFFSET + 1024 || at >= OFFSET + 2048)).toEqual([]);
      execFileSync('e2fsck', ['-fn', fs], { stdio: 'ignore' });
      // A second pass finds nothing left to do.
      expect((await zerofreeRoot(img, OFFSET)).zeroedBlocks).toBe(0);
      rmSync(theirs);
    }, 60_000);
  }
});
