import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { C2vError } from '../../src/errors.js';
import type { RootfsSource } from '../../src/adapters/engine.js';
import { ext4Features } from '../../src/plan/rootfs.js';
import { makeRootFilesystem } from '../../src/stages/root-filesystem.js';
import { loadTemplates } from '../../src/adapters/templates.js';
import { checkOutput, inodeStat, listDir, type CheckedOutput } from '../helpers/check-output.js';
import { tarBuffer, vmSkeleton, type TarEntry } from '../helpers/crafted-tar.js';
import { requireDockerEngine } from '../helpers/env.js';
import { buildImage, importImage, removeImages } from '../helpers/images.js';
import { containersOf, runC2vWithPid } from '../helpers/leftovers.js';

/**
 * Images c2v did not write, with every kind of entry a hostile or sloppy producer can put in a tar. What is
 * legitimate must land in the ext4 exactly (read back with debugfs); what is hostile must stay inside the guest
 * file system or be refused with one line, and nothing may appear on the host outside c2v's workspace.
 */
const IMAGE = 'c2v-test/hostile:1';
const SOCKET_IMAGE = 'c2v-test/socket-vm:1';
const HOST_MARKERS = ['/tmp/c2v-escape-marker', '/tmp/c2v-escape-marker2', '/tmp/through-marker', '/tmp/c2v-escape-marker3', '/tmp/c2v-escape-marker4'];
const CAPABILITY = Buffer.from([0x01, 0, 0, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // cap_net_raw, permitted
const LONG_DIR = `data/${'d'.repeat(120)}/${'e'.repeat(120)}`;
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(200)}`;
const LONG_TARGET = `/${'t'.repeat(300)}`;
const GiB = 1024 ** 3;

function hostileEntries(): TarEntry[] {
  return [
    ...vmSkeleton({ name: 'hostile' }),
    { name: 'data', type: 'dir' },
    // Names that point outside the root.
    { name: '../../../../tmp/c2v-escape-marker', data: 'dot-dot\n' },
    { name: '/tmp/c2v-escape-marker2', data: 'absolute\n' },
    // Symlinks that point outside the root, and a file "through" one.
    { name: 'data/abslink', type: 'symlink', linkname: '/etc/shadow' },
    { name: 'data/esclink', type: 'symlink', linkname: '../../../../../../etc' },
    { name: 'data/dirlink', type: 'symlink', linkname: '/tmp' },
    { name: 'data/dirlink/through-marker', data: 'through\n' },
    // Long names and targets (pax), big ids (pax), hard links.
    { name: 'data/' + 'd'.repeat(120), type: 'dir' },
    { name: LONG_DIR, type: 'dir' },
    { name: LONG_FILE, data: 'long\n' },
    { name: 'data/longlink', type: 'symlink', linkname: LONG_TARGET },
    { name: 'data/bigid', data: 'ids\n', uid: 3_000_000, gid: 4_000_000, mode: 0o640 },
    { name: 'data/hl-target', data: 'linked\n' },
    { name: 'data/hl', type: 'hardlink', linkname: 'data/hl-target' },
    // Special files, modes, capabilities, xattrs.
    { name: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
    { name: 'dev/sda', type: 'block', mode: 0o660, gid: 6, devmajor: 8, devminor: 0 },
    { name: 'data/fifo', type: 'fifo', mode: 0o600 },
    { name: 'data/setuid', data: 'su\n', mode: 0o4755 },
    { name: 'data/setgid', type: 'dir', mode: 0o2775 },
    { name: 'data/ping', data: 'ping\n', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': CAPABILITY } },
    { name: 'data/xattr', data: 'x\n', pax: { 'SCHILY.xattr.user.comment': 'hello' } },
    // Names that are not UTF-8, and ones that are.
    { name: Buffer.from('data/caf\xe9-latin1', 'latin1'), data: 'latin1\n' },
    { name: 'data/naïve-ü', data: 'utf8\n' },
    // A 1 GiB file with one byte of data: the tar carries it sparse, the engine and the export do not.
    { name: 'data/sparse', size: GiB, sparse: [{ offset: 500_000_000, data: Buffer.from('x') }] },
  ];
}

describe('hostile entries through docker import and c2v convert', () => {
  let dir: string;
  let out: CheckedOutput;
  let ova: string;
  let pid: number;

  beforeAll(async () => {
    requireDockerEngine();
    for (const m of HOST_MARKERS) rmSync(m, { force: true });
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-hostile-'));
    await importImage(IMAGE, hostileEntries());
    ova = path.join(dir, 'out', 'hostile.ova');
    const r = await runC2vWithPid(['convert', IMAGE, '--no-pull', '-o', ova]);
    pid = r.pid;
    if (r.exitCode !== 0) throw new Error(`c2v convert failed (${r.exitCode}): ${r.stderr}`);
    out = await checkOutput(ova);
  }, 300_000);

  afterAll(async () => {
    out?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeImages(IMAGE);
  });

  it('writes nothing outside its workspace: no escape marker on the host, only the OVA in the output folder, no container', async () => {
    for (const m of HOST_MARKERS) expect(existsSync(m), m).toBe(false);
    expect(readdirSync(path.dirname(ova))).toEqual(['hostile.ova']);
    expect(await containersOf(pid)).toEqual([]);
  });

  it('gives an OVA that passes every integrity check (manifest, schema, qemu-img, GPT, e2fsck, fsck.vfat)', () => {
    expect(out.members).toEqual(['hostile.ovf', 'hostile.mf', 'hostile-disk1.vmdk']);
  });

  it("keeps '../' and absolute names inside the guest: they land under the guest's /tmp", () => {
    expect(out.debugfs('cat /tmp/c2v-escape-marker').toString()).toBe('dot-dot\n');
    expect(out.debugfs('cat /tmp/c2v-escape-marker2').toString()).toBe('absolute\n');
  });

  it('stores absolute and escaping symlinks verbatim; they resolve inside the guest only', () => {
    expect(inodeStat(out, '/data/abslink').text).toMatch(/Fast link dest: "\/etc\/shadow"/);
    expect(inodeStat(out, '/data/esclink').text).toMatch(/Fast link dest: "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/etc"/);
    expect(inodeStat(out, '/data/dirlink').type).toBe('symlink');
    // The engine resolved the file written "through" /data/dirlink -> /tmp inside the image's root.
    expect(out.debugfs('cat /tmp/through-marker').toString()).toBe('through\n');
  });

  it('keeps long names and link targets (pax), large uids/gids and hard links exactly', () => {
    expect(out.debugfs(`cat "/${LONG_FILE}"`).toString()).toBe('long\n');
    expect(inodeStat(out, '/data/longlink')).toMatchObject({ type: 'symlink', size: LONG_TARGET.length });
    expect(out.debugfs('cat /data/longlink').toString()).toBe(LONG_TARGET); // a slow symlink: the target is its data
    const big = inodeStat(out, '/data/bigid');
    expect([big.uid, big.gid, big.mode]).toEqual([3_000_000, 4_000_000, 0o640]);
    const a = out.debugfs('stat /data/hl').toString();
    const b = out.debugfs('stat /data/hl-target').toString();
    expect(/Inode: (\d+)/.exec(a)?.[1]).toBe(/Inode: (\d+)/.exec(b)?.[1]);
    expect(a).toMatch(/Links: 2/);
  });

  it('creates device nodes and fifos with their numbers, modes and owners', () => {
    const devNull = inodeStat(out, '/dev/null');
    expect([devNull.type, devNull.mode]).toEqual(['character special', 0o666]);
    expect(devNull.text).toMatch(/Device major\/minor number: 01:03/);
    const sda = inodeStat(out, '/dev/sda');
    expect([sda.type, sda.mode, sda.gid]).toEqual(['block special', 0o660, 6]);
    expect(sda.text).toMatch(/Device major\/minor number: 08:00/);
    expect(inodeStat(out, '/data/fifo')).toMatchObject({ type: 'FIFO', mode: 0o600 });
  });

  it('keeps setuid, setgid and sticky bits', () => {
    expect(inodeStat(out, '/data/setuid').mode).toBe(0o4755);
    expect(inodeStat(out, '/data/setgid').mode).toBe(0o2775);
    expect(inodeStat(out, '/tmp').mode).toBe(0o1777);
  });

  it('keeps file capabilities byte for byte; user.* xattrs do not survive docker (nor mke2fs)', () => {
    const eas = out.debugfs('ea_list /data/ping').toString();
    expect(eas).toContain('security.capability (20) = 01 00 00 02 00 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00');
    expect(out.debugfs('ea_list /data/xattr').toString()).not.toContain('user.comment');
  });

  it('keeps names that are not UTF-8 byte for byte, and UTF-8 ones', () => {
    const names = listDir(out, '/data');
    expect(names).toContain('caf\xe9-latin1');
    expect(names).toContain(Buffer.from('naïve-ü', 'utf8').toString('latin1'));
  });

  it('turns a huge sparse file back into holes: the right size, one data block, a small OVA', () => {
    const sparse = inodeStat(out, '/data/sparse');
    expect(sparse.size).toBe(GiB);
    expect(sparse.text).toMatch(/Blockcount: 8\b/); // one 4 KiB block, in 512-byte units
    expect(statSync(ova).size).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('entries docker itself refuses', () => {
  beforeAll(() => requireDockerEngine());

  it('refuses duplicate paths and hard links to missing targets at import, so they can only reach c2v by other routes', async () => {
    const tag = 'c2v-test/refused:1';
    await expect(importImage(tag, [...vmSkeleton(), { name: 'x', data: '1' }, { name: 'x', data: '2' }])).rejects.toThrow(/duplicates of file paths not supported/);
    await expect(importImage(tag, [...vmSkeleton(), { name: 'hl', type: 'hardlink', linkname: 'missing' }])).rejects.toThrow(/no such file or directory/);
    await removeImages(tag);
  }, 60_000);

  it('drops sockets when it commits a layer: a socket made in a build is not in the VM', async () => {
    const ctx = mkdtempSync(path.join(os.tmpdir(), 'c2v-socket-'));
    try {
      await buildImage(
        SOCKET_IMAGE,
        [
          'FROM debian:bookworm',
          // A listening unix socket left in the layer, plus what makes c2v take the image as a VM already.
          `RUN perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => "/run/c2v.sock", Listen => 1) or die' && test -S /run/c2v.sock \\`,
          ' && echo fake > /boot/vmlinuz-6.1.0-0-amd64 && mkdir -p /lib/systemd && cp /bin/true /lib/systemd/systemd && ln -s /lib/systemd/systemd /sbin/init',
          'CMD ["/sbin/init"]',
          '',
        ].join('\n'),
        ctx,
      );
      const cid = String((await execa('docker', ['create', SOCKET_IMAGE, '/x'])).stdout).trim();
      const listing = String((await execa('sh', ['-c', `docker export ${cid} | tar -tf - run`])).stdout);
      await execa('docker', ['rm', '-f', cid]);
      expect(listing).not.toMatch(/c2v\.sock/);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
      await removeImages(SOCKET_IMAGE);
    }
  }, 180_000);
});

describe('entries docker rewrites or refuses, fed to the root filesystem stage directly', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-hostile-rootfs-'));
    for (const m of HOST_MARKERS) rmSync(m, { force: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The rootfs stage exactly as the pipeline runs it, on a tar that no engine normalised. */
  async function rootfsFrom(name: string, entries: TarEntry[]): Promise<{ disk: string }> {
    const tar = await tarBuffer([...vmSkeleton(), ...entries]);
    const work = path.join(dir, name);
    mkdirSync(work);
    const disk = path.join(work, 'disk.raw');
    await execa('truncate', ['-s', '96M', disk]);
    const source: RootfsSource = {
      readFile: async () => undefined,
      listDir: async () => [],
      exists: async () => false,
      export: async () => Readable.from([tar]),
      release: async () => {},
    };
    await makeRootFilesystem({
      source,
      features: ext4Features({}),
      diskPath: disk,
      offsetBytes: 0,
      sizeBytes: 96 * 1024 * 1024,
      fsUuid: '6b4c1c55-2a8e-4e57-9d0e-3c3a3f0f6a11',
      hashSeed: '0f3b4a53-8f6c-4b52-9d3c-2f4a7e5b6c12',
      espUuid: 'ABCD-1234',
      hostname: 'hostile',
      title: 'hostile',
      workDir: work,
      templates: await loadTemplates(),
    });
    await execa('e2fsck', ['-fn', disk]);
    return { disk };
  }

  async function refused(entries: TarEntry[], message: RegExp): Promise<void> {
    const e = await rootfsFrom(`case-${Math.random().toString(36).slice(2)}`, entries).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(C2vError);
    expect((e as C2vError).code).toBe('input');
    expect((e as C2vError).message).toMatch(message);
    expect((e as C2vError).message).not.toContain('\n');
  }

  it("resolves '..' and absolute names inside the root, and nothing reaches the host", async () => {
    const fs = await rootfsFrom('dotdot', [
      { name: '../../../../tmp/c2v-escape-marker3', data: 'a\n' },
      { name: '/tmp/c2v-escape-marker4', data: 'b\n' },
      { name: './etc/../../../../etc/c2v-dotdot', data: 'c\n' },
    ]);
    const { stdout } = await execa('debugfs', ['-R', 'ls -p /tmp', fs.disk]);
    expect(stdout).toContain('c2v-escape-marker3');
    expect(stdout).toContain('c2v-escape-marker4');
    expect(String((await execa('debugfs', ['-R', 'cat /etc/c2v-dotdot', fs.disk])).stdout)).toBe('c');
    for (const m of HOST_MARKERS) expect(existsSync(m), m).toBe(false);
  });

  it('refuses an entry under a symlink (a file written "through" it), naming both', async () => {
    await refused(
      [
        { name: 'data', type: 'dir' },
        { name: 'data/dirlink', type: 'symlink', linkname: '../../../../tmp' },
        { name: 'data/dirlink/c2v-escape-marker3', data: 'through\n' },
      ],
      /\/data\/dirlink\/c2v-escape-marker3 lies under \/data\/dirlink, which is a symlink/,
    );
    for (const m of HOST_MARKERS) expect(existsSync(m), m).toBe(false);
  });

  it('refuses a path listed twice, but accepts a directory listed twice', async () => {
    await refused([{ name: 'dup', data: '1' }, { name: 'dup', data: '2' }], /\/dup appears twice \(as a file, then as a file\)/);
    await refused([{ name: 'x', data: '1' }, { name: 'x', type: 'dir' }], /\/x appears twice \(as a file, then as a dir\)/);
    const fs = await rootfsFrom('dupdir', [{ name: 'd', type: 'dir', mode: 0o700 }, { name: 'd', type: 'dir', mode: 0o750 }]);
    expect(String((await execa('debugfs', ['-R', 'stat /d', fs.disk])).stdout)).toMatch(/Mode:\s+0750/);
  });

  it('refuses a hard link to a target that is not in the image before it', async () => {
    await refused([{ name: 'hl', type: 'hardlink', linkname: 'no/such/target' }], /hard link \/hl points to \/no\/such\/target, which is not before it/);
  });

  it('refuses a name component longer than ext4 allows', async () => {
    await refused([{ name: `x${'y'.repeat(300)}`, data: '1' }], /is 301 bytes long \(ext4 allows 255\)/);
  });

  it('refuses a stream that is not a tar, in one line', async () => {
    await execa('truncate', ['-s', '64M', path.join(dir, 'garbage.raw')]);
    const e = await makeRootFilesystem({
      source: { readFile: async () => undefined, listDir: async () => [], exists: async () => false, export: async () => Readable.from([Buffer.alloc(1024, 0x41)]), release: async () => {} },
      features: ext4Features({}),
      diskPath: path.join(dir, 'garbage.raw'),
      offsetBytes: 0,
      sizeBytes: 64 * 1024 * 1024,
      fsUuid: '6b4c1c55-2a8e-4e57-9d0e-3c3a3f0f6a11',
      hashSeed: '0f3b4a53-8f6c-4b52-9d3c-2f4a7e5b6c12',
      espUuid: 'ABCD-1234',
      hostname: 'x',
      title: 'x',
      workDir: dir,
      templates: await loadTemplates(),
    }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(C2vError);
    expect((e as C2vError).message).toMatch(/not a valid tar stream: header checksum mismatch/);
  });
});
