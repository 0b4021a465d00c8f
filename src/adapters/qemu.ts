import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import { execa } from 'execa';
import { C2vError } from '../errors.js';

const debug = createDebug('c2v:qemu');
/** How long a partial serial line must stay unchanged before a marker may match it. */
const PARTIAL_LINE_QUIET_MS = 1500;

export type Firmware = 'bios' | 'efi';
export type DiskBus = 'pvscsi' | 'lsi' | 'ahci' | 'virtio';
export type NicModel = 'vmxnet3' | 'e1000e' | 'virtio';

export interface BootRequest {
  disk: string;
  format?: 'vmdk' | 'raw';
  firmware: Firmware;
  bus: DiskBus;
  nic?: NicModel;
  /** host port -> guest port forwards on the user-mode network. */
  forwards?: { host: number; guest: number }[];
  memoryMiB?: number;
  cpus?: number;
  /** The boot passes when a serial console line matches this. */
  marker: RegExp;
  timeoutMs: number;
  onLine?: (line: string) => void;
}

export interface BootResult {
  seconds: number;
  /** The matching line. */
  line: string;
  /** Everything the guest printed on ttyS0 until the marker. */
  serial: string;
  /** Shuts the VM down; call it when done (after checking ports, for instance). */
  stop(): Promise<void>;
}

export const OVMF = {
  code: '/usr/share/OVMF/OVMF_CODE_4M.fd',
  vars: '/usr/share/OVMF/OVMF_VARS_4M.fd',
};

export function qemuArgs(req: BootRequest, varsPath: string | undefined, accel: string): string[] {
  // One vCPU by default: under TCG, a second vCPU makes firmware and GRUB (which switch to real mode for every
  // disk read) crawl; a 9 s kernel load became several minutes.
  const args = ['-accel', accel, '-machine', 'q35', '-m', String(req.memoryMiB ?? 1024), '-smp', String(req.cpus ?? 1)];
  args.push('-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot');
  if (req.firmware === 'efi') {
    args.push('-drive', `if=pflash,format=raw,readonly=on,file=${OVMF.code}`, '-drive', `if=pflash,format=raw,file=${varsPath}`);
  }
  // snapshot=on: a boot test never changes the artefact it checks.
  args.push('-drive', `file=${req.disk},format=${req.format ?? 'vmdk'},if=none,id=disk0,snapshot=on`);
  switch (req.bus) {
    case 'pvscsi':
      args.push('-device', 'pvscsi,id=scsi0', '-device', 'scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0');
      break;
    case 'lsi':
      args.push('-device', 'mptsas1068,id=scsi0', '-device', 'scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0');
      break;
    case 'ahci':
      args.push('-device', 'ide-hd,drive=disk0,bus=ide.0,bootindex=0');
      break;
    case 'virtio':
      args.push('-device', 'virtio-blk-pci,drive=disk0,bootindex=0');
      break;
  }
  const fwd = (req.forwards ?? []).map((f) => `,hostfwd=tcp:127.0.0.1:${f.host}-:${f.guest}`).join('');
  args.push('-netdev', `user,id=net0${fwd}`, '-device', `${req.nic ?? 'vmxnet3'},netdev=net0`);
  return args;
}

/**
 * Reads a serial console as it arrives, in pieces: CRs and terminal escapes dropped, whole lines matched against
 * the marker, and a trailing partial line (a prompt like "login: ", which ends without a newline) reported apart,
 * for the caller to accept only once the guest has gone quiet.
 */
export class SerialWatch {
  serial = '';
  private pending = '';
  constructor(
    private readonly marker: RegExp,
    private readonly onLine?: (line: string) => void,
  ) {}

  push(text: string): { line?: string; partial?: string } {
    const clean = text.replace(/\r/g, '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    this.serial += clean;
    this.pending += clean;
    const lines = this.pending.split('\n');
    this.pending = lines.pop() ?? '';
    let line: string | undefined;
    for (const l of lines) {
      this.onLine?.(l);
      if (line === undefined && this.marker.test(l)) line = l;
    }
    if (line !== undefined) return { line };
    return this.pending && this.marker.test(this.pending) ? { partial: this.pending } : {};
  }
}

/**
 * Boots a disk under QEMU and waits for a line on the serial console. Software emulation (TCG) by default,
 * KVM with C2V_QEMU_ACCEL=kvm.
 */
export async function bootUntil(req: BootRequest): Promise<BootResult> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'c2v-qemu-'));
  let varsPath: string | undefined;
  if (req.firmware === 'efi') {
    if (!existsSync(OVMF.code)) throw new C2vError('tool', `OVMF firmware not found at ${OVMF.code}: install the Debian package ovmf`);
    varsPath = path.join(tmp, 'OVMF_VARS.fd');
    await copyFile(OVMF.vars, varsPath);
  }
  // TCG unless asked: /dev/kvm can exist, run the firmware, and still hang the guest kernel (seen here), so
  // "KVM opens" is no proof that it works.
  const accel = process.env.C2V_QEMU_ACCEL ?? 'tcg';
  const args = qemuArgs(req, varsPath, accel);
  debug('qemu-system-x86_64 %s', args.join(' '));
  const t0 = performance.now();
  const child = execa('qemu-system-x86_64', args, { stdin: 'ignore', reject: false, buffer: false, stripFinalNewline: false });
  const watch = new SerialWatch(req.marker, req.onLine);
  const stop = async () => {
    child.kill('SIGTERM');
    await child.catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
  };
  let matchedAt: number | undefined;
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new C2vError('input', `the guest did not print ${req.marker} on its serial console within ${Math.round(req.timeoutMs / 1000)} s`, { detail: watch.serial.slice(-4000) })), req.timeoutMs);
      // A prompt ("login: ") ends without a newline, so a partial line may match too, but only once the guest
      // has gone quiet: serial output arrives in pieces, and a line caught half-way would lose its end.
      let settle: NodeJS.Timeout | undefined;
      const done = (l: string, at = performance.now()) => {
        matchedAt ??= at;
        clearTimeout(timer);
        clearTimeout(settle);
        resolve(l);
      };
      child.stdout!.on('data', (chunk: Buffer) => {
        clearTimeout(settle);
        const seen = watch.push(chunk.toString('utf8'));
        if (seen.line !== undefined) done(seen.line);
        else if (seen.partial !== undefined) {
          const partial = seen.partial;
          const at = performance.now();
          settle = setTimeout(() => done(partial, at), PARTIAL_LINE_QUIET_MS);
        }
      });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      void child.then((r) => {
        clearTimeout(timer);
        clearTimeout(settle);
        reject(new C2vError('tool', `qemu exited (code ${r.exitCode ?? r.signal}) before the marker appeared${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`, { detail: watch.serial.slice(-4000) }));
      });
    });
    return { seconds: ((matchedAt ?? performance.now()) - t0) / 1000, line, serial: watch.serial, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
