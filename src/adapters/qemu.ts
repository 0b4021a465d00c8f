import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { accessSync, constants, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import { execa } from 'execa';
import { C2vError } from '../errors.js';

const debug = createDebug('c2v:qemu');
/** How long a partial serial line must stay unchanged before a marker may match it. */
const PARTIAL_LINE_QUIET_MS = 1500;

/**
 * Under KVM a kernel prints its banner (or timestamped log lines) on ttyS0 within a second or two of GRUB loading
 * it. On some hosts /dev/kvm opens and runs the firmware and GRUB, and then the kernel hangs without a word.
 */
const KERNEL_ALIVE = /Linux version \d|^\[\s*\d+\.\d+\]/m;
const GRUB_LOADING = /Loading \/\S*vmlinu/;
/** After GRUB's "Loading" line, under KVM. */
const KVM_KERNEL_SILENCE_MS = 10_000;
/** From the start to GRUB's "Loading" line, under KVM (firmware and a one-second menu take a few seconds). */
const KVM_GRUB_SILENCE_MS = 15_000;

export type Accel = 'kvm' | 'tcg';
export type AccelChoice = Accel | 'auto';

/** C2V_QEMU_ACCEL: auto (default: KVM when it is there and boots a kernel, else TCG), kvm or tcg. */
export function accelChoice(value = process.env.C2V_QEMU_ACCEL): AccelChoice {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'kvm' || value === 'tcg') return value;
  throw new C2vError('usage', `C2V_QEMU_ACCEL must be auto, kvm or tcg (got "${value}")`);
}

/** Whether KVM booted a kernel in this process: asked once, not once per boot. */
let kvmBootsKernels: boolean | undefined;

/**
 * A stalled KVM is remembered until the host reboots (keyed by its boot id), so that every later run skips the
 * trial rather than paying for it again.
 */
function stallRecord(): string {
  let bootId = 'unknown';
  try {
    bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // not Linux's procfs: remember per process only
  }
  return path.join(os.tmpdir(), `c2v-kvm-stalls-${bootId}`);
}

/** Forgets what was learnt about KVM here, so that the next `auto` boot tries it again. */
export function forgetKvmVerdict(): void {
  kvmBootsKernels = undefined;
  rmSync(stallRecord(), { force: true });
}

/** Whether the last `auto` boot found KVM stalling (and fell back to TCG). */
export function kvmStallRecorded(): boolean {
  return existsSync(stallRecord());
}

export function kvmOpens(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** KVM ran GRUB but the kernel never spoke: the signal to boot again under TCG. */
class KvmStalled extends Error {}

export type Firmware = 'bios' | 'efi';
export type DiskBus = 'pvscsi' | 'lsi' | 'ahci' | 'virtio';
export type NicModel = 'vmxnet3' | 'e1000e' | 'virtio';

/** QEMU's device for each NIC model. */
const NIC_DEVICES: Record<NicModel, string> = { vmxnet3: 'vmxnet3', e1000e: 'e1000e', virtio: 'virtio-net-pci' };

/** QEMU's own default NIC address, given explicitly so that an OVF environment can name it. */
export const DEFAULT_MAC = '52:54:00:12:34:56';

export interface BootRequest {
  /** The disk to boot; empty for a network boot. */
  disk: string;
  /**
   * A network boot instead of the disk: QEMU's user network serves `dir` over TFTP and hands out `bootFile` by
   * DHCP; the NIC's iPXE ROM (Debian's ipxe-qemu) boots first.
   */
  netboot?: { tftpDir: string; bootFile: string };
  format?: 'vmdk' | 'raw' | 'qcow2';
  /**
   * Default true: the guest's writes go to a throw-away overlay. False lets a test boot the same disk twice and
   * see what the first boot changed.
   */
  snapshot?: boolean;
  /** An ISO for a CD-ROM drive (an OVF environment, for one). */
  cdrom?: string;
  /** A Unix socket for the QEMU guest agent's virtio port (org.qemu.guest_agent.0), as Proxmox gives VMs. */
  guestAgentSocket?: string;
  firmware: Firmware;
  /** EFI only: OVMF that enforces Secure Boot, with Microsoft's keys enrolled (as vSphere's firmware has). */
  secureBoot?: boolean;
  bus: DiskBus;
  nic?: NicModel;
  /** Default DEFAULT_MAC. */
  mac?: string;
  /**
   * host port -> guest port forwards on the user-mode network; to the address QEMU's DHCP hands out (10.0.2.15)
   * unless the guest configured another, static one.
   */
  forwards?: { host: number; guest: number; guestAddress?: string }[];
  memoryMiB?: number;
  cpus?: number;
  /** The boot passes when a serial console line matches this. */
  marker: RegExp;
  timeoutMs: number;
  /** Default: C2V_QEMU_ACCEL, else auto. */
  accel?: AccelChoice;
  onLine?: (line: string) => void;
}

export interface BootResult {
  seconds: number;
  accel: Accel;
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

/** Debian's Secure Boot build of OVMF (it needs SMM) and a variable store with Microsoft's keys enrolled. */
export const OVMF_SECURE = {
  code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
  vars: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
};

function firmwareFiles(req: BootRequest): typeof OVMF {
  return req.secureBoot ? OVMF_SECURE : OVMF;
}

/** QEMU splits options at commas; a comma in a path is written twice. */
function optValue(value: string): string {
  return value.replace(/,/g, ',,');
}

export function qemuArgs(req: BootRequest, varsPath: string | undefined, accel: string): string[] {
  // One vCPU by default: under TCG, a second vCPU makes firmware and GRUB (which switch to real mode for every
  // disk read) crawl; a 9 s kernel load became several minutes.
  if (req.secureBoot && req.firmware !== 'efi') throw new C2vError('internal', 'Secure Boot needs EFI firmware');
  // The Secure Boot firmware keeps its variables behind SMM, so that the guest cannot change its keys.
  const machine = req.secureBoot ? 'q35,smm=on' : 'q35';
  const args = ['-accel', accel, '-machine', machine, '-m', String(req.memoryMiB ?? 1024), '-smp', String(req.cpus ?? 1)];
  args.push('-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot');
  if (req.firmware === 'efi') {
    if (req.secureBoot) args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    args.push('-drive', `if=pflash,format=raw,readonly=on,file=${firmwareFiles(req).code}`, '-drive', `if=pflash,format=raw,file=${varsPath}`);
  }
  if (!req.netboot) diskArgs(req, args);
  if (req.cdrom) {
    // On q35's own AHCI controller whatever the disk's bus: port 0 is the AHCI disk's, so the CD takes port 1.
    args.push('-drive', `file=${optValue(req.cdrom)},format=raw,media=cdrom,if=none,id=cd0,readonly=on`, '-device', 'ide-cd,drive=cd0,bus=ide.1');
  }
  if (req.guestAgentSocket) {
    args.push(
      '-device',
      'virtio-serial-pci,id=vser0',
      '-chardev',
      `socket,id=qga0,path=${optValue(req.guestAgentSocket)},server=on,wait=off`,
      '-device',
      'virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0',
    );
  }
  const fwd = (req.forwards ?? []).map((f) => `,hostfwd=tcp:127.0.0.1:${f.host}-${f.guestAddress ?? ''}:${f.guest}`).join('');
  const tftp = req.netboot ? `,tftp=${optValue(req.netboot.tftpDir)},bootfile=${optValue(req.netboot.bootFile)}` : '';
  const nicBoot = req.netboot ? ',bootindex=0' : '';
  args.push('-netdev', `user,id=net0${fwd}${tftp}`, '-device', `${NIC_DEVICES[req.nic ?? 'vmxnet3']},netdev=net0,mac=${req.mac ?? DEFAULT_MAC}${nicBoot}`);
  return args;
}

function diskArgs(req: BootRequest, args: string[]): void {
  // snapshot=on: a boot test never changes the artefact it checks.
  args.push('-drive', `file=${optValue(req.disk)},format=${req.format ?? 'vmdk'},if=none,id=disk0${req.snapshot === false ? '' : ',snapshot=on'}`);
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
 * Boots a disk under QEMU and waits for a line on the serial console. With `auto`, KVM when /dev/kvm opens and
 * a kernel booted under it speaks; when it stays silent the boot starts again under TCG (software emulation, tens
 * of seconds), and later boots go straight to TCG until the host reboots.
 */
export async function bootUntil(req: BootRequest): Promise<BootResult> {
  const choice = req.accel ?? accelChoice();
  if (choice !== 'auto') return bootOnce(req, choice, false);
  if (kvmBootsKernels === undefined && existsSync(stallRecord())) kvmBootsKernels = false;
  if (kvmBootsKernels === false || !kvmOpens()) return bootOnce(req, 'tcg', false);
  try {
    const result = await bootOnce(req, 'kvm', kvmBootsKernels !== true);
    kvmBootsKernels = true;
    return result;
  } catch (e) {
    if (!(e instanceof KvmStalled)) throw e;
    kvmBootsKernels = false;
    try {
      writeFileSync(stallRecord(), `${e.message}\n`);
    } catch {
      // a read-only tmp: this process still remembers
    }
    debug('%s; booting again under TCG', e.message);
    req.onLine?.(`c2v: ${e.message}; booting again under TCG (slower)`);
    return bootOnce(req, 'tcg', false);
  }
}

async function bootOnce(req: BootRequest, accel: Accel, watchKernel: boolean): Promise<BootResult> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'c2v-qemu-'));
  let varsPath: string | undefined;
  if (req.firmware === 'efi') {
    const files = firmwareFiles(req);
    for (const file of [files.code, files.vars]) {
      if (!existsSync(file)) throw new C2vError('tool', `OVMF firmware not found at ${file}: install the Debian package ovmf`);
    }
    varsPath = path.join(tmp, 'OVMF_VARS.fd');
    await copyFile(files.vars, varsPath);
  }
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
      // Under KVM on trial: GRUB must get to its "Loading" line, and the kernel must then speak, in time.
      let stall: NodeJS.Timeout | undefined;
      const stalled = (what: string) => () => {
        clearTimeout(timer);
        clearTimeout(settle);
        reject(new KvmStalled(`under KVM, ${what}`));
      };
      if (watchKernel) stall = setTimeout(stalled(`the guest did not load a kernel within ${KVM_GRUB_SILENCE_MS / 1000} s`), KVM_GRUB_SILENCE_MS);
      let grubLoaded = false;
      const done = (l: string, at = performance.now()) => {
        matchedAt ??= at;
        clearTimeout(timer);
        clearTimeout(settle);
        clearTimeout(stall);
        resolve(l);
      };
      child.stdout!.on('data', (chunk: Buffer) => {
        clearTimeout(settle);
        const seen = watch.push(chunk.toString('utf8'));
        if (watchKernel && stall) {
          if (KERNEL_ALIVE.test(watch.serial)) {
            clearTimeout(stall);
            stall = undefined;
          } else if (!grubLoaded && GRUB_LOADING.test(watch.serial)) {
            grubLoaded = true;
            clearTimeout(stall);
            stall = setTimeout(stalled(`the kernel printed nothing within ${KVM_KERNEL_SILENCE_MS / 1000} s of GRUB loading it`), KVM_KERNEL_SILENCE_MS);
          }
        }
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
        clearTimeout(stall);
        reject(new C2vError('tool', `qemu exited (code ${r.exitCode ?? r.signal}) before the marker appeared${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`, { detail: watch.serial.slice(-4000) }));
      });
    });
    return { seconds: ((matchedAt ?? performance.now()) - t0) / 1000, accel, line, serial: watch.serial, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
