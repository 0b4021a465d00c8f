import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootUntil, forgetKvmVerdict, kvmOpens, kvmStallRecorded } from '../../src/adapters/qemu.js';
import { EXAMPLE_DIR, PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { assertOvfValid } from '../helpers/ovf-schema.js';
import { parseGpt } from '../helpers/gpt-reader.js';
import { runC2v, strayContainers } from '../helpers/run-cli.js';
import { askGuestAgent } from '../helpers/guest-agent-client.js';

const sh = (cmd: string, args: string[], opts: { cwd?: string } = {}) => execFileSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024 });

describe('c2v convert of the bundled example', () => {
  let dir: string;
  let ova: string;
  let extracted: string;
  let vmdk: string;
  let raw: string;
  let qcow2: string;
  let qcow2Agent: string;
  let timings: { stage: string; seconds: number }[] = [];
  // What `--plan` said before the conversion, and whether it wrote anything.
  let plan: { disk: { identity: { diskGuid: string; rootFsUuid: string }; layout: { diskBytes: number }; vmdk: { fileName: string } }; output: { path: string } };
  let plannedOutDirExisted = true;

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-e2e-'));
    ova = path.join(dir, 'out', 'example.ova');
    const planned = await runC2v(['convert', path.join(EXAMPLE_DIR, 'Dockerfile'), '-o', ova, '--name', 'example', '--json', '--plan'], { cwd: PROJECT_ROOT });
    if (planned.exitCode !== 0) throw new Error(`c2v convert --plan failed (${planned.exitCode}): ${planned.stderr}`);
    plan = planned.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.event === 'plan')?.plan;
    plannedOutDirExisted = existsSync(path.dirname(ova));
    const r = await runC2v(['convert', path.join(EXAMPLE_DIR, 'Dockerfile'), '-o', ova, '--name', 'example', '--json'], { cwd: PROJECT_ROOT });
    if (r.exitCode !== 0) throw new Error(`c2v convert failed (${r.exitCode}): ${r.stderr}`);
    const events = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    timings = events.find((e) => e.event === 'result')?.timings ?? [];
    process.stderr.write(`stage timings: ${timings.map((t) => `${t.stage}=${t.seconds.toFixed(1)}s`).join(' ')}\n`);
    extracted = path.join(dir, 'x');
    sh('mkdir', ['-p', extracted]);
    sh('tar', ['-xf', ova, '-C', extracted]);
    vmdk = path.join(extracted, 'example-disk1.vmdk');
    raw = path.join(dir, 'disk.raw');
    // Inflating every grain into a raw image is itself a strict check of the VMDK.
    sh('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', vmdk, raw]);
    // The same conversion as a qcow2, for KVM and Proxmox (the image comes from the engine's build cache).
    qcow2 = path.join(dir, 'qcow2', 'example.qcow2');
    const q = await runC2v(['convert', path.join(EXAMPLE_DIR, 'Dockerfile'), '-o', qcow2, '--name', 'example', '--format', 'qcow2'], { cwd: PROJECT_ROOT });
    if (q.exitCode !== 0) throw new Error(`c2v convert --format qcow2 failed (${q.exitCode}): ${q.stderr}`);
    // And as a Proxmox user would ask for it: with the QEMU guest agent, added by the packages step.
    qcow2Agent = path.join(dir, 'qcow2', 'example-agent.qcow2');
    const qa = await runC2v(['convert', path.join(EXAMPLE_DIR, 'Dockerfile'), '-o', qcow2Agent, '--name', 'example', '--format', 'qcow2', '--guest-agent'], { cwd: PROJECT_ROOT });
    if (qa.exitCode !== 0) throw new Error(`c2v convert --format qcow2 --guest-agent failed (${qa.exitCode}): ${qa.stderr}`);
  }, 1_200_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports every stage with its timing', () => {
    expect(timings.map((t) => t.stage)).toEqual(['acquire', 'bootloader', 'rootfs', 'esp', 'partition', 'zerofree', 'vmdk', 'package']);
  });

  it('--plan wrote nothing, and said what the conversion then did: size, identities, names', () => {
    expect(plannedOutDirExisted).toBe(false);
    expect(plan.output.path).toBe(ova);
    expect(statSync(raw).size).toBe(plan.disk.layout.diskBytes);
    expect(sh('tar', ['-tf', ova])).toContain(plan.disk.vmdk.fileName);
    const head = Buffer.alloc(34 * 512);
    const fd = openSync(raw, 'r');
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    expect(parseGpt(head.subarray(512)).header.diskGuid.toUpperCase()).toBe(plan.disk.identity.diskGuid.toUpperCase());
    expect(sh('blkid', ['-p', '-O', String(rootOffset()), '-s', 'UUID', '-o', 'value', raw]).trim()).toBe(plan.disk.identity.rootFsUuid);
  });

  it('writes an OVA with the OVF first, then the manifest, then the disk, and leaves nothing else', () => {
    const listing = sh('tar', ['-tf', ova]).trim().split('\n');
    expect(listing).toEqual(['example.ovf', 'example.mf', 'example-disk1.vmdk']);
    expect(readdirSync(path.dirname(ova))).toEqual(['example.ova']);
  });

  it('has a manifest whose lines match the files, each by its own algorithm', () => {
    const mf = readFileSync(path.join(extracted, 'example.mf'), 'utf8');
    const lines = mf.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      const m = /^SHA(1|256|512)\((.+)\)= ([0-9a-f]+)$/.exec(line);
      expect(m, line).not.toBeNull();
      const actual = createHash(`sha${m![1]}`).update(readFileSync(path.join(extracted, m![2]))).digest('hex');
      expect(actual).toBe(m![3]);
    }
  });

  it('has an OVF that validates against the DMTF schema and names the disk by its exact size', () => {
    const ovfPath = path.join(extracted, 'example.ovf');
    assertOvfValid(ovfPath);
    const ovf = readFileSync(ovfPath, 'utf8');
    expect(ovf).toContain(`ovf:size="${statSync(vmdk).size}"`);
    expect(ovf).toContain('vmw:value="efi"');
    expect(ovf).toMatch(/vmw:osType="debian1\d_64Guest"/);
  });

  it('passes qemu-img check and holds a valid GPT with the three partitions', () => {
    sh('qemu-img', ['check', '-f', 'vmdk', vmdk]);
    const head = Buffer.alloc(34 * 512);
    const fd = openSync(raw, 'r');
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    expect(head.readUInt16LE(510)).toBe(0xaa55);
    const gpt = parseGpt(head.subarray(512));
    const roles = gpt.partitions.map((p) => p.typeGuid.toUpperCase());
    expect(roles).toEqual([
      '21686148-6449-6E6F-744E-656564454649',
      'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
      '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
    ]);
  });

  /** Byte offset of the root partition (the third) in the raw disk. */
  function rootOffset(): number {
    const parts = JSON.parse(sh('sfdisk', ['--json', raw])).partitiontable.partitions as { start: number }[];
    return parts[2].start * 512;
  }

  it('has a root filesystem that e2fsck finds clean, with the fixes applied', () => {
    const parts = JSON.parse(sh('sfdisk', ['--json', raw])).partitiontable.partitions as { start: number; size: number }[];
    const root = parts[2];
    const esp = parts[1];
    const rootImg = path.join(dir, 'root.img');
    const espImg = path.join(dir, 'esp.img');
    const cut = (p: { start: number; size: number }, to: string) =>
      sh('dd', [`if=${raw}`, `of=${to}`, 'bs=1M', 'iflag=skip_bytes,count_bytes', `skip=${p.start * 512}`, `count=${p.size * 512}`, 'conv=sparse', 'status=none']);
    cut(root, rootImg);
    cut(esp, espImg);
    sh('e2fsck', ['-fn', rootImg]);
    sh('fsck.vfat', ['-n', espImg]);
    const debugfs = (req: string) => sh('debugfs', ['-R', req, rootImg]);
    expect(debugfs('stat /.dockerenv')).not.toMatch(/Inode:/);
    expect(debugfs('cat /etc/fstab')).toMatch(/^UUID=[0-9a-f-]{36} \/ ext4 /m);
    expect(debugfs('cat /etc/hosts')).toContain('localhost');
    // tty0 last: it is /dev/console, what vSphere's console shows; the kernel writes to ttyS0 as well.
    expect(debugfs('cat /boot/grub/grub.cfg')).toMatch(/linux \/boot\/vmlinuz-\S+ root=UUID=\S+ ro console=ttyS0,115200 console=tty0/);
    // The guest agent, enabled for sysinit, and the journal forwarded to the serial port.
    expect(debugfs('stat /usr/local/lib/c2v/c2v-guest')).toMatch(/Inode:/);
    expect(debugfs('stat /etc/systemd/system/sysinit.target.wants/c2v-guest.service')).toMatch(/Type: symlink/);
    expect(debugfs('cat /etc/systemd/journald.conf.d/c2v-serial.conf')).toMatch(/^TTYPath=\/dev\/ttyS0$/m);
    expect(sh('mdir', ['-i', espImg, '::/EFI/BOOT'])).toContain('BOOTX64  EFI');
  });

  it('boots with SeaBIOS from a pvscsi disk to multi-user with no failed unit (auto: KVM when it boots a kernel, else TCG)', async () => {
    // A fresh trial: KVM is used when it works; where /dev/kvm opens but the kernel stalls (this host), the boot
    // falls back to TCG and the stall is recorded for later boots.
    forgetKvmVerdict();
    const boot = await bootUntil({ disk: vmdk, firmware: 'bios', bus: 'pvscsi', nic: 'vmxnet3', marker: /C2V-EXAMPLE-READY/, timeoutMs: 600_000, accel: 'auto' });
    await boot.stop();
    process.stderr.write(`BIOS boot: ${boot.seconds.toFixed(1)} s under ${boot.accel}${kvmStallRecorded() ? ' (KVM stalled: fell back)' : ''}: ${boot.line}\n`);
    expect(boot.line).toMatch(/failed=0\b/);
    if (boot.accel === 'tcg') expect(!kvmOpens() || kvmStallRecorded()).toBe(true);
    else expect(kvmStallRecorded()).toBe(false);
  }, 660_000);

  it('--format qcow2 holds the very disk the OVA holds, and qemu-img checks it clean', () => {
    expect(sh('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, qcow2])).toMatch(/Images are identical/);
    expect(sh('qemu-img', ['check', qcow2])).toMatch(/No errors were found/);
  });

  it('boots the --guest-agent qcow2 with OVMF (UEFI) from a virtio disk, as Proxmox runs it: multi-user, no failed unit, and the agent answers', async () => {
    // The removable-path GRUB, virtio disk and NIC (the initramfs carries the virtio drivers), and the agent's port.
    const socket = path.join(dir, 'qga.sock');
    const boot = await bootUntil({ disk: qcow2Agent, format: 'qcow2', firmware: 'efi', bus: 'virtio', nic: 'virtio', guestAgentSocket: socket, marker: /C2V-EXAMPLE-READY/, timeoutMs: 600_000 });
    let hostName: unknown;
    try {
      hostName = await askGuestAgent(socket, 'guest-get-host-name', Date.now() + 120_000);
    } finally {
      await boot.stop();
    }
    process.stderr.write(`EFI boot (qcow2, virtio, guest agent): ${boot.seconds.toFixed(1)} s: ${boot.line}\n`);
    expect(hostName).toEqual({ 'host-name': 'example' });
    expect(boot.line).toMatch(/failed=0\b/);
  }, 660_000);

  it('left no container behind', async () => {
    expect(await strayContainers()).toEqual([]);
  });
});
