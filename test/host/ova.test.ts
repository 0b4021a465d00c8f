import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeOvaMemberHeader, tarPadding, TAR_END, USTAR_MAX_SIZE } from '../../src/formats/tar/index.js';
import { writeOvfFolder } from '../../src/stages/package-ova.js';
import { ovaBytes } from '../helpers/ova-writer.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-ova-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GiB = 2 ** 30;
const env = { ...process.env, TZ: 'UTC', LC_ALL: 'C' };

function tar(args: string[]): string {
  return execFileSync('tar', args, { encoding: 'utf8', env });
}

/** The first header GNU tar writes for `name` in `dir` with the same owner/mode/mtime choices as ours. */
function gnuTarHeader(dir: string, name: string, format: 'gnu' | 'ustar'): Buffer {
  const cmd = `tar --format=${format} --numeric-owner --owner=0 --group=0 --mtime=@0 --mode=0644 -C "$1" -cf - "$2" | head -c 512`;
  return execFileSync('sh', ['-c', cmd, 'sh', dir, name], { env, maxBuffer: 1 << 20 });
}

function checksumOk(h: Buffer): boolean {
  const stored = parseInt(h.subarray(148, 154).toString('ascii'), 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return stored === sum && h[154] === 0 && h[155] === 0x20;
}

/** Walk an archive's headers: typeflag, name and size of each, checking checksums and the end marker. */
function walk(archive: Buffer): { type: string; name: string; size: number; magic: string }[] {
  const out: { type: string; name: string; size: number; magic: string }[] = [];
  let off = 0;
  while (off + 512 <= archive.length) {
    const h = archive.subarray(off, off + 512);
    if (h.every((b) => b === 0)) {
      // End of archive: a second zero block and nothing but zeros after.
      expect(archive.subarray(off).every((b) => b === 0)).toBe(true);
      expect(archive.length - off).toBeGreaterThanOrEqual(1024);
      return out;
    }
    expect(checksumOk(h)).toBe(true);
    const size = parseInt(h.subarray(124, 135).toString('ascii'), 8);
    out.push({
      type: String.fromCharCode(h[156]),
      name: h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, ''),
      size,
      magic: h.subarray(257, 265).toString('latin1'),
    });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error('archive has no end marker');
}

describe('encodeOvaMemberHeader', () => {
  it('writes a ustar header identical to GNU tar --format=ustar', () => {
    const dir = path.join(tmp, 'ustar');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'app.ovf'), Buffer.alloc(1000, 0x41));
    const ours = encodeOvaMemberHeader({ name: 'app.ovf', size: 1000 });
    expect(ours.length).toBe(512);
    expect(ours.subarray(257, 265).toString('latin1')).toBe('ustar\u000000');
    expect(ours.subarray(124, 136).toString('ascii')).toBe('00000001750\0');
    expect(checksumOk(ours)).toBe(true);
    expect(ours.equals(gnuTarHeader(dir, 'app.ovf', 'ustar'))).toBe(true);
  });

  it('writes a GNU base-256 size for 9 GiB, identical to GNU tar --format=gnu on a sparse 9 GiB file', () => {
    const size = 9 * GiB;
    const h = encodeOvaMemberHeader({ name: 'big.vmdk', size });
    // Decode the field: marker bit, then a big-endian number over the remaining 11 bytes.
    const field = h.subarray(124, 136);
    expect(field[0]).toBe(0x80);
    let value = 0n;
    for (const b of field.subarray(1)) value = (value << 8n) | BigInt(b);
    expect(value).toBe(BigInt(size));
    expect([...field]).toEqual([0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x40, 0, 0, 0]);
    expect(h.subarray(257, 265).toString('latin1')).toBe('ustar  \0');
    expect(h[156]).toBe('0'.charCodeAt(0));
    expect(checksumOk(h)).toBe(true);

    const dir = path.join(tmp, 'gnu');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'big.vmdk'), '');
    truncateSync(path.join(dir, 'big.vmdk'), size);
    expect(h.equals(gnuTarHeader(dir, 'big.vmdk', 'gnu'))).toBe(true);
  });

  it('switches to base-256 exactly above the 11-digit octal limit', () => {
    expect(USTAR_MAX_SIZE).toBe(8 * GiB - 1);
    expect(encodeOvaMemberHeader({ name: 'a', size: 8 * GiB - 1 }).subarray(124, 136).toString('ascii')).toBe('77777777777\0');
    expect(encodeOvaMemberHeader({ name: 'a', size: 8 * GiB })[124]).toBe(0x80);
  });

  it('encodes mtime and mode', () => {
    const h = encodeOvaMemberHeader({ name: 'x', size: 0, mtime: 1_700_000_000, mode: 0o600 });
    expect(h.subarray(136, 148).toString('ascii')).toBe(`${(1_700_000_000).toString(8).padStart(11, '0')}\0`);
    expect(h.subarray(100, 108).toString('ascii')).toBe('0000600\0');
    expect(checksumOk(h)).toBe(true);
  });

  it('rejects names that are not flat or longer than 100 bytes, and bad numbers', () => {
    expect(() => encodeOvaMemberHeader({ name: 'dir/a.vmdk', size: 1 })).toThrow(/plain file name/);
    expect(() => encodeOvaMemberHeader({ name: '', size: 1 })).toThrow(/plain file name/);
    expect(() => encodeOvaMemberHeader({ name: '..', size: 1 })).toThrow(/plain file name/);
    expect(() => encodeOvaMemberHeader({ name: 'a'.repeat(101), size: 1 })).toThrow(/100/);
    expect(() => encodeOvaMemberHeader({ name: 'é'.repeat(51), size: 1 })).toThrow(/102 bytes/);
    expect(encodeOvaMemberHeader({ name: 'a'.repeat(100), size: 1 }).subarray(0, 100).toString()).toBe('a'.repeat(100));
    expect(() => encodeOvaMemberHeader({ name: 'a', size: -1 })).toThrow(/size/);
    expect(() => encodeOvaMemberHeader({ name: 'a', size: 1.5 })).toThrow(/size/);
  });

  it('pads to the next 512-byte boundary and ends with two zero blocks', () => {
    expect(tarPadding(0).length).toBe(0);
    expect(tarPadding(1).length).toBe(511);
    expect(tarPadding(512).length).toBe(0);
    expect(tarPadding(9 * GiB + 100).length).toBe(412);
    expect(tarPadding(700).every((b) => b === 0)).toBe(true);
    expect(TAR_END.length).toBe(1024);
    expect(TAR_END.every((b) => b === 0)).toBe(true);
  });
});

describe('an OVA of encodeOvaMemberHeader members', () => {
  const ovf = Buffer.from('<?xml version="1.0"?><Envelope/>\n');
  const mf = Buffer.from(`SHA256(app.ovf)= ${'0'.repeat(64)}\n`);
  const diskBytes = randomBytes(5 * 2 ** 20 + 123);
  const members = [
    { name: 'app.ovf', data: ovf },
    { name: 'app.mf', data: mf },
    { name: 'app-disk1.vmdk', data: diskBytes },
  ];

  it('holds the members in order, readable by GNU tar, with no PAX records', () => {
    const out = path.join(tmp, 'app.ova');
    writeFileSync(out, ovaBytes(members, 1_700_000_000));

    const listing = tar(['--numeric-owner', '-tvf', out]).trim().split('\n');
    expect(listing).toHaveLength(3);
    const parsed = listing.map((line) => {
      const f = line.split(/\s+/);
      return { mode: f[0], owner: f[1], size: Number(f[2]), date: f[3], name: f[5] };
    });
    expect(parsed).toEqual([
      { mode: '-rw-r--r--', owner: '0/0', size: ovf.length, date: '2023-11-14', name: 'app.ovf' },
      { mode: '-rw-r--r--', owner: '0/0', size: mf.length, date: '2023-11-14', name: 'app.mf' },
      { mode: '-rw-r--r--', owner: '0/0', size: diskBytes.length, date: '2023-11-14', name: 'app-disk1.vmdk' },
    ]);

    const archive = readFileSync(out);
    const headers = walk(archive);
    expect(headers.map((h) => h.type)).toEqual(['0', '0', '0']);
    expect(headers.some((h) => h.type === 'x' || h.type === 'g')).toBe(false);
    expect(headers.map((h) => h.magic)).toEqual(Array(3).fill('ustar\u000000'));
    const expectedLength = members.reduce((n, m) => n + 512 + Math.ceil(m.data.length / 512) * 512, 0) + 1024;
    expect(archive.length).toBe(expectedLength);

    const extracted = path.join(tmp, 'extracted');
    mkdirSync(extracted);
    tar(['-xf', out, '-C', extracted]);
    expect(readdirSync(extracted).sort()).toEqual(['app-disk1.vmdk', 'app.mf', 'app.ovf']);
    expect(readFileSync(path.join(extracted, 'app.ovf')).equals(ovf)).toBe(true);
    expect(readFileSync(path.join(extracted, 'app.mf')).equals(mf)).toBe(true);
    expect(readFileSync(path.join(extracted, 'app-disk1.vmdk')).equals(diskBytes)).toBe(true);
  });

  it('gives identical bytes for identical input (mtime defaults to 0)', () => {
    const a = ovaBytes(members);
    expect(a.equals(ovaBytes(members))).toBe(true);
    expect(a.subarray(136, 148).toString('ascii')).toBe('00000000000\0');
  });
});

describe('writeOvfFolder', () => {
  it('writes buffers and copies file members, keeping the source', async () => {
    const src = path.join(tmp, 'folder-src.vmdk');
    const bytes = randomBytes(70_000);
    writeFileSync(src, bytes);
    const dir = path.join(tmp, 'out-ovf');
    await writeOvfFolder(dir, [
      { name: 'app.ovf', size: 3, source: Buffer.from('abc') },
      { name: 'app-disk1.vmdk', size: bytes.length, source: src },
    ]);
    expect(readdirSync(dir).sort()).toEqual(['app-disk1.vmdk', 'app.ovf']);
    expect(readFileSync(path.join(dir, 'app.ovf'), 'utf8')).toBe('abc');
    expect(readFileSync(path.join(dir, 'app-disk1.vmdk')).equals(bytes)).toBe(true);
    expect(existsSync(src)).toBe(true);
  });

  it('moves file members when asked', async () => {
    const src = path.join(tmp, 'folder-move.vmdk');
    const bytes = randomBytes(1000);
    writeFileSync(src, bytes);
    const dir = path.join(tmp, 'out-ovf-move');
    await writeOvfFolder(dir, [{ name: 'd.vmdk', size: 1000, source: src }], { move: true });
    expect(readFileSync(path.join(dir, 'd.vmdk')).equals(bytes)).toBe(true);
    expect(existsSync(src)).toBe(false);
  });

  it('rejects a size mismatch before writing anything', async () => {
    const dir = path.join(tmp, 'out-ovf-bad');
    await expect(writeOvfFolder(dir, [{ name: 'a.ovf', size: 2, source: Buffer.from('abc') }])).rejects.toThrow(/expected 2 bytes/);
    expect(existsSync(dir)).toBe(false);
  });
});
