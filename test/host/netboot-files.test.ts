import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendPadding, encodeNewc } from '../../src/formats/cpio.js';
import { copySquashfsFile, plainModule, readSquashfsFile, squashfsFromTar } from '../../src/adapters/squashfs.js';

const sh = (cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}) => execFileSync(cmd, args, { cwd: opts.cwd, input: opts.input, maxBuffer: 64 * 1024 * 1024 });

describe('the network boot folder: the appended initramfs archive and the squashfs root image', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'c2v-netboot-files-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a newc archive GNU cpio unpacks: folders, files, modes, contents, root owner, one time', () => {
    const module = Buffer.from(Array.from({ length: 4097 }, (_, i) => i % 251));
    const archive = encodeNewc(
      [
        { path: 'scripts', kind: 'dir', mode: 0o755 },
        { path: 'scripts/c2v', kind: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\necho c2v\n') },
        { path: 'c2v', kind: 'dir', mode: 0o755 },
        { path: 'c2v/modules', kind: 'dir', mode: 0o700 },
        { path: 'c2v/modules/010-squashfs.ko', kind: 'file', mode: 0o644, data: module },
        { path: 'c2v/empty', kind: 'file', mode: 0o600 },
      ],
      1_700_000_000,
    );
    expect(archive.length % 4).toBe(0);
    const listing = sh('cpio', ['-itv', '--quiet'], { input: archive }).toString().trim().split('\n');
    expect(listing.map((l) => l.split(/\s+/).slice(-1)[0])).toEqual(['scripts', 'scripts/c2v', 'c2v', 'c2v/modules', 'c2v/modules/010-squashfs.ko', 'c2v/empty']);
    expect(listing.every((l) => /\sroot\s+root\s/.test(l))).toBe(true);
    const out = path.join(dir, 'cpio');
    mkdirSync(out);
    sh('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { cwd: out, input: archive });
    expect(readFileSync(path.join(out, 'scripts/c2v'), 'utf8')).toBe('#!/bin/sh\necho c2v\n');
    expect(statSync(path.join(out, 'scripts/c2v')).mode & 0o7777).toBe(0o755);
    expect(statSync(path.join(out, 'c2v/modules')).mode & 0o7777).toBe(0o700);
    expect(readFileSync(path.join(out, 'c2v/modules/010-squashfs.ko')).equals(module)).toBe(true);
    expect(statSync(path.join(out, 'c2v/modules/010-squashfs.ko')).mtimeMs).toBe(1_700_000_000_000);
    expect(statSync(path.join(out, 'c2v/empty')).size).toBe(0);
    // The same entries give the same bytes.
    expect(encodeNewc([{ path: 'a', kind: 'dir', mode: 0o755 }], 5).equals(encodeNewc([{ path: 'a', kind: 'dir', mode: 0o755 }], 5))).toBe(true);
    expect(() => encodeNewc([{ path: '../x', kind: 'dir', mode: 0o755 }])).toThrow(/bad entry path/);
  });

  it('pads a distribution initrd to the 4-byte boundary the next archive must start at', () => {
    for (const n of [0, 1, 2, 3, 4, 37_333_341]) expect((n + appendPadding(n).length) % 4).toBe(0);
    expect(appendPadding(5).equals(Buffer.alloc(3))).toBe(true);
  });

  it('makes the squashfs from a tar on stdin, without root: owners, modes, links and times from the tar', async () => {
    // A tree owned by uid 1000 in the tar (GNU tar's --owner), with a hard link and a symlink.
    const tree = path.join(dir, 'tree');
    mkdirSync(path.join(tree, 'usr/lib/modules/6.1.0-50-amd64'), { recursive: true });
    writeFileSync(path.join(tree, 'usr/lib/modules/6.1.0-50-amd64/modules.dep'), 'kernel/fs/squashfs/squashfs.ko:\n');
    writeFileSync(path.join(tree, 'usr/lib/app.bin'), Buffer.alloc(300_000, 7));
    sh('ln', [path.join(tree, 'usr/lib/app.bin'), path.join(tree, 'usr/lib/app.hard')]);
    sh('ln', ['-s', 'usr/lib', path.join(tree, 'lib')]);
    const tar = sh('tar', ['--format=pax', '--owner=1000', '--group=1000', '--mtime=@1600000000', '-C', tree, '-cf', '-', 'usr', 'lib']);
    const image = path.join(dir, 'root.squashfs');
    const child = squashfsFromTar(image, { epoch: 1_600_000_000 });
    await Promise.all([pipeline(Readable.from([tar]), child.stdin!), child]);
    const described = sh('rdsquashfs', ['--describe', image]).toString();
    expect(described).toMatch(/^file usr\/lib\/app\.bin 0644 1000 1000$/m);
    expect(described).toMatch(/^file usr\/lib\/app\.hard 0644 1000 1000$/m);
    expect(described).toMatch(/^slink lib 0777 1000 1000 usr\/lib$/m);
    const stat = sh('rdsquashfs', ['--stat', '/usr/lib/app.bin', image]).toString();
    expect(stat).toMatch(/^Last modified: .*\(1600000000\)$/m);
    expect(stat).toMatch(/^Hard link count: 2$/m);
    expect((await readSquashfsFile(image, 'usr/lib/modules/6.1.0-50-amd64/modules.dep')).toString()).toBe('kernel/fs/squashfs/squashfs.ko:\n');
    const copy = path.join(dir, 'app.copy');
    await copySquashfsFile(image, 'usr/lib/app.bin', copy);
    expect(readFileSync(copy).equals(Buffer.alloc(300_000, 7))).toBe(true);
    // A path through the symlink is not a file of the image: the stage must take the real path.
    await expect(readSquashfsFile(image, 'lib/modules/6.1.0-50-amd64/modules.dep')).rejects.toThrow(/rdsquashfs failed/);
  });

  it('unpacks kernel modules compressed as the distributions ship them (.ko.xz, .ko.zst, .ko.gz)', async () => {
    const ko = Buffer.from('\x7fELF a module body '.repeat(500));
    expect((await plainModule('a.ko', ko)).equals(ko)).toBe(true);
    expect((await plainModule('a.ko.xz', sh('xz', ['-c'], { input: ko }))).equals(ko)).toBe(true);
    expect((await plainModule('a.ko.zst', sh('zstd', ['-c', '-q'], { input: ko }))).equals(ko)).toBe(true);
    expect((await plainModule('a.ko.gz', gzipSync(ko))).equals(ko)).toBe(true);
    await expect(plainModule('a.ko.bz2', ko)).rejects.toThrow(/unknown kernel module compression/);
  });
});
