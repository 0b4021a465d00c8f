import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootUntil } from '../../src/adapters/qemu.js';
import { EXAMPLE_DIR, PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { runC2v, strayContainers } from '../helpers/run-cli.js';
import { serveFiles } from '../helpers/http-files.js';

const sh = (cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}) => execFileSync(cmd, args, { cwd: opts.cwd, input: opts.input, maxBuffer: 256 * 1024 * 1024 });

// The app says what / is and what the last boot left in /var/lib, once systemd finished booting, then leaves a
// stamp of its own there: a second boot must find none.
const APP = [
  '/bin/sh',
  '-c',
  'state=$(systemctl is-system-running --wait); echo "NETBOOT-APP root=$(findmnt -no FSTYPE /) stamp=$(cat /var/lib/c2v-stamp 2>/dev/null || echo none) state=$state failed=$(systemctl list-units --state=failed --no-legend --plain | wc -l)" >/dev/ttyS0; date +%s%N >/var/lib/c2v-stamp; echo "NETBOOT-APP wrote=$(cat /var/lib/c2v-stamp)" >/dev/ttyS0; exec sleep infinity',
];

/**
 * --format netboot, booted as a diskless fleet boots: QEMU's user network serves the folder over TFTP, the NIC's
 * iPXE (Debian's ipxe-qemu) runs boot.ipxe, and the initramfs fetches the root image from an HTTP server on
 * 127.0.0.1 that this test runs (10.0.2.2 from the guest).
 */
describe('a network boot folder, booted over the network', () => {
  let dir: string;
  let folder: string;
  let rootImage: string;
  let server: Awaited<ReturnType<typeof serveFiles>>;
  let convertStderr = '';

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-netboot-'));
    rootImage = '';
    server = await serveFiles(() => ({ 'root.squashfs': rootImage }));
    folder = path.join(dir, 'out', 'netapp-netboot');
    const r = await runC2v(
      ['convert', path.join(EXAMPLE_DIR, 'Dockerfile'), '--name', 'netapp', '--format', 'netboot', '-o', folder, '--root-url', `http://10.0.2.2:${server.port}/root.squashfs`, '--cmd', JSON.stringify(APP)],
      { cwd: PROJECT_ROOT },
    );
    if (r.exitCode !== 0) throw new Error(`c2v convert --format netboot failed (${r.exitCode}): ${r.stderr}`);
    convertStderr = r.stderr;
    rootImage = path.join(folder, 'root.squashfs');
  }, 1_200_000);

  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes the folder a PXE/iPXE server serves as it is, checksummed, and nothing else', () => {
    expect(readdirSync(path.dirname(folder))).toEqual(['netapp-netboot']);
    expect(readdirSync(folder).sort()).toEqual(['README.txt', 'SHA256SUMS', 'boot.ipxe', 'grub.cfg', 'initrd.img', 'root.squashfs', 'vmlinuz']);
    expect(sh('sha256sum', ['-c', 'SHA256SUMS'], { cwd: folder }).toString()).toMatch(/^root\.squashfs: OK$/m);
    const sha = sh('sha256sum', [rootImage]).toString().split(' ')[0];
    const ipxe = readFileSync(path.join(folder, 'boot.ipxe'), 'utf8');
    expect(ipxe).toContain(`c2v.sha256=${sha} c2v.root=\${c2v-root}`);
    // The GRUB entry is a script GRUB itself accepts, with the same command line.
    sh('grub-script-check', [path.join(folder, 'grub.cfg')]);
    expect(readFileSync(path.join(folder, 'grub.cfg'), 'utf8')).toContain(`c2v.sha256=${sha} c2v.root=$c2v_root`);
    // The busybox the boot step needs came from the packages step, which said so.
    expect(convertStderr).toMatch(/busybox for the network boot/);
  });

  it('holds the image as squashfs, with the network boot fstab and the app service, and no disk boot files', () => {
    const listing = sh('rdsquashfs', ['--describe', rootImage]).toString();
    expect(listing).toMatch(/^file etc\/fstab 0644 0 0$/m);
    expect(listing).toMatch(/^file usr\/bin\/busybox 0755 0 0$/m);
    expect(listing).not.toMatch(/^\S+ boot\/grub\/grub\.cfg /m);
    const fstab = sh('rdsquashfs', ['--cat', 'etc/fstab', rootImage]).toString();
    expect(fstab.split('\n').filter((l) => l.trim() && !l.startsWith('#'))).toEqual([]);
  });

  it('appends the boot step and the squashfs and overlay modules to the distribution initramfs, as a second archive', () => {
    const initrd = readFileSync(path.join(folder, 'initrd.img'));
    // c2v's archive starts with the scripts folder: a header whose name size (8) and check field end just before it.
    const start = initrd.lastIndexOf(Buffer.from('0000000800000000scripts\0')) - 94;
    expect(initrd.subarray(start, start + 6).toString()).toBe('070701');
    expect(start % 4).toBe(0);
    // Before it, the distribution's own (compressed) archive, whole: gzip or zstd magic at the very start.
    expect(initrd.subarray(0, 4).toString('hex')).toMatch(/^1f8b|^28b52ffd|^30373037/);
    const tail = initrd.subarray(start);
    const names = sh('cpio', ['-it', '--quiet'], { input: tail }).toString().trim().split('\n');
    expect(names).toEqual(expect.arrayContaining(['scripts/c2v', 'c2v/modules/010-squashfs.ko', 'c2v/modules/020-overlay.ko']));
  });

  let firstStamp = '';

  it('boots with / on overlayfs over the fetched root image, and the appliance up (SeaBIOS, iPXE, virtio)', async () => {
    const boot = await bootUntil({ disk: '', netboot: { tftpDir: folder, bootFile: 'boot.ipxe' }, firmware: 'bios', bus: 'virtio', nic: 'virtio', memoryMiB: 1536, marker: /NETBOOT-APP wrote=\d+/, timeoutMs: 600_000 });
    await boot.stop();
    process.stderr.write(`netboot 1: ${boot.seconds.toFixed(1)} s\n`);
    expect(boot.serial).toMatch(/c2v-netboot: \/ is an overlay of http:\/\/10\.0\.2\.2:\d+\/root\.squashfs \(sha256 [0-9a-f]{12}\)/);
    expect(boot.serial).toMatch(/NETBOOT-APP root=overlay stamp=none state=running failed=0/);
    expect(server.gets.get('root.squashfs')).toBe(1);
    firstStamp = /NETBOOT-APP wrote=(\d+)/.exec(boot.line)![1];
  }, 660_000);

  it('starts clean again: what the first boot wrote is gone (OVMF this time)', async () => {
    expect(firstStamp).not.toBe('');
    const boot = await bootUntil({ disk: '', netboot: { tftpDir: folder, bootFile: 'boot.ipxe' }, firmware: 'efi', bus: 'virtio', nic: 'virtio', memoryMiB: 1536, marker: /NETBOOT-APP wrote=\d+/, timeoutMs: 600_000 });
    await boot.stop();
    process.stderr.write(`netboot 2: ${boot.seconds.toFixed(1)} s\n`);
    expect(boot.serial).toMatch(/NETBOOT-APP root=overlay stamp=none state=running failed=0/);
    expect(/NETBOOT-APP wrote=(\d+)/.exec(boot.line)![1]).not.toBe(firstStamp);
    expect(server.gets.get('root.squashfs')).toBe(2);
  }, 660_000);

  it('stops the boot with one clear console line when the root image does not match its digest', async () => {
    // A damaged copy served in its place: the image's first 8 MiB, one byte changed (short, so the boot is too).
    const tampered = path.join(dir, 'tampered.squashfs');
    const head = Buffer.alloc(8 * 1024 * 1024);
    const fd = openSync(rootImage, 'r');
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    head[1024 * 1024] ^= 0x5a;
    writeFileSync(tampered, head);
    const good = rootImage;
    rootImage = tampered;
    try {
      const boot = await bootUntil({ disk: '', netboot: { tftpDir: folder, bootFile: 'boot.ipxe' }, firmware: 'bios', bus: 'virtio', nic: 'virtio', memoryMiB: 1536, marker: /c2v-netboot: .*sha256/, timeoutMs: 600_000 });
      await boot.stop();
      process.stderr.write(`netboot with a wrong digest: ${boot.seconds.toFixed(1)} s: ${boot.line}\n`);
      const want = sh('sha256sum', [good]).toString().split(' ')[0];
      const got = sh('sha256sum', [tampered]).toString().split(' ')[0];
      expect(boot.line).toContain(`has sha256 ${got}, but c2v.sha256 is ${want}`);
      expect(boot.serial).not.toMatch(/is an overlay of/);
    } finally {
      rootImage = good;
    }
  }, 660_000);

  it('left no container behind', async () => {
    expect(await strayContainers()).toEqual([]);
  });
});
