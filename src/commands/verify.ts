import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { C2vError } from '../errors.js';
import { readBody, readTar, textOf } from '../formats/tar/index.js';
import { buildOvfEnvironment, environmentFor, OVF_ENV_FILE, OVF_ENV_VOLUME } from '../formats/ovf-env.js';
import { makeIso } from '../adapters/iso.js';
import { growCopy } from '../adapters/qemu-img.js';
import { bootUntil, DEFAULT_MAC, type Accel, type BootRequest, type DiskBus, type Firmware, type NicModel } from '../adapters/qemu.js';
import { readOvfHardware, type OvfHardware } from '../plan/ovf-read.js';
import { checkPackage, type PackageIntegrity } from './package-check.js';

export interface VerifyRequest {
  ova: string;
  firmware: Firmware[];
  http?: { port: number; text?: string };
  timeoutSeconds: number;
  /** An OVF environment document for the guest, on a CD-ROM as vSphere's `iso` transport gives it. */
  ovfEnvFile?: string;
  /**
   * Values for the properties the OVF declares: the guest gets every declared property on a CD-ROM, with these
   * values or else the defaults, as vSphere would. A key the OVF does not declare fails before any boot.
   */
  properties?: Readonly<Record<string, string>>;
  /** Boot a copy of the disk grown by this many bytes, as after an admin enlarged it in vSphere. */
  growBytes?: number;
  /** Every serial console line of every boot, as it arrives. */
  onLine?: (line: string) => void;
}

export interface VerifyEnvironment {
  /** The number of properties in the environment document. */
  properties: number;
  /** The --ovf-env file, or absent when built from the OVA's declared properties. */
  file?: string;
}

export interface VerifyResult {
  firmware: Firmware;
  bus: DiskBus;
  nic: NicModel;
  accel: Accel;
  bootSeconds: number;
  httpSeconds?: number;
  httpBody?: string;
  ovfEnvironment?: VerifyEnvironment;
  /** The grown disk: by how much, and its size after. */
  disk?: { grownBy: number; bytes: number };
  /** The OVF turns Secure Boot on: the boot ran on firmware enforcing it, and the kernel reported it on. */
  secureBoot?: boolean;
  /** What the OVA's .mf and .cert proved before the boot. */
  integrity: PackageIntegrity;
  /** What the guest printed on its serial console until it reached its target (onLine sees the rest too). */
  serial: string;
}

/** The default target seen on the serial console: systemd's own report, or the serial login prompt. */
export const BOOTED = /Reached target.*(Multi-User System|Graphical Interface)|\blogin: *$/;

/** The kernel's own report, at boot, that the firmware enforces Secure Boot. */
export const SECURE_BOOT_ON = /secureboot: Secure boot enabled/;

/** QEMU's closest device for each VMware one. Debian's OVMF cannot boot from pvscsi, so EFI boots use AHCI. */
export function devicesFor(hw: OvfHardware, firmware: Firmware): { bus: DiskBus; nic: NicModel } {
  let bus: DiskBus = 'pvscsi';
  if (hw.sata) bus = 'ahci';
  else if (hw.scsiSubType && /lsilogic/i.test(hw.scsiSubType)) bus = 'lsi';
  if (firmware === 'efi' && bus === 'pvscsi') bus = 'ahci';
  const nic: NicModel = hw.nicSubType && /e1000/i.test(hw.nicSubType) ? 'e1000e' : 'vmxnet3';
  return { bus, nic };
}

/**
 * Unpacks the descriptor and the disk; other members (the .mf, the .cert) are kept in memory. `check` sees the
 * descriptor as soon as it is read (it comes first in an OVA), so that a mistake it finds stops the run before
 * gigabytes of disk are copied.
 */
async function extractOva(ova: string, dir: string, check: (ovf: string) => void): Promise<{ ovf: string; disk: string; members: Map<string, Buffer | string> }> {
  let ovf: string | undefined;
  const disks = new Map<string, string>();
  // name -> its bytes, or the path it was unpacked to
  const members = new Map<string, Buffer | string>();
  try {
    for await (const entry of readTar(createReadStream(ova), { source: 'the archive', endMarkerOptional: true })) {
      const name = path.basename(textOf(entry.header.name));
      if (name.endsWith('.vmdk')) {
        const to = path.join(dir, name);
        await pipeline(entry.body, createWriteStream(to));
        disks.set(name, to);
        members.set(name, to);
        continue;
      }
      const data = await readBody(entry);
      members.set(name, data);
      if (name.endsWith('.ovf')) {
        ovf = data.toString('utf8');
        check(ovf);
      }
    }
  } catch (e) {
    if (e instanceof C2vError && e.code === 'usage') throw e;
    throw new C2vError('input', `${ova} is not a readable OVA (tar): ${(e as Error).message}`, { cause: e });
  }
  if (!ovf) throw new C2vError('input', `${ova} has no .ovf descriptor`);
  const hw = readOvfHardware(ovf);
  const disk = (hw.diskFile && disks.get(hw.diskFile)) ?? [...disks.values()][0];
  if (!disk) throw new C2vError('input', `${ova} has no .vmdk disk`);
  return { ovf, disk, members };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForHttp(port: number, text: string | undefined, deadline: number): Promise<string> {
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5000) });
      const body = await res.text();
      if (res.ok && (!text || body.includes(text))) return body;
      last = `HTTP ${res.status}: ${body.slice(0, 200)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  throw new C2vError('input', `the guest's port did not answer${text ? ` with "${text}"` : ''} in time (last: ${last})`);
}

/** What the guest is handed on its CD-ROM: the --ovf-env file, or the environment built from --property. */
type EnvironmentSource = { kind: 'file'; xml: Buffer; file: string; properties: number } | { kind: 'built'; properties: { key: string; value: string }[] };

async function readEnvironmentFile(file: string): Promise<EnvironmentSource> {
  let xml: Buffer;
  try {
    xml = await readFile(file);
  } catch (e) {
    throw new C2vError('input', `--ovf-env ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): name an OVF environment document (ovf-env.xml)`);
  }
  const properties = xml.toString('utf8').match(/<(?:[\w.-]+:)?Property\b/g)?.length ?? 0;
  return { kind: 'file', xml, file, properties };
}

/** The ISO vSphere's `iso` transport would attach, in `dir`. */
async function environmentIso(env: EnvironmentSource, network: string, dir: string): Promise<string> {
  const xml =
    env.kind === 'file'
      ? env.xml
      : buildOvfEnvironment({
          properties: env.properties,
          adapters: [{ mac: DEFAULT_MAC, network }],
          platform: { kind: 'QEMU', version: 'c2v verify', vendor: 'c2v' },
        });
  const iso = path.join(dir, 'ovf-env.iso');
  await makeIso([{ name: OVF_ENV_FILE, content: xml }], iso, OVF_ENV_VOLUME);
  return iso;
}

/** Boots the OVA's disk on the devices its OVF declares, once per firmware, and checks what was asked. */
export async function verifyOva(req: VerifyRequest): Promise<VerifyResult[]> {
  if (req.ovfEnvFile !== undefined && req.properties !== undefined) {
    throw new C2vError('usage', '--ovf-env and --property do not go together: give the whole environment as a file, or values for the OVA\'s properties');
  }
  let env: EnvironmentSource | undefined = req.ovfEnvFile !== undefined ? await readEnvironmentFile(req.ovfEnvFile) : undefined;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'c2v-verify-'));
  try {
    const { ovf, disk, members } = await extractOva(req.ova, dir, (descriptor) => {
      if (req.properties) env = { kind: 'built', properties: environmentFor(readOvfHardware(descriptor).properties, req.properties) };
    });
    // A package that does not match its manifest or signature is not booted: what would boot is not what was signed.
    const integrity = await checkPackage(req.ova, members);
    const hw = readOvfHardware(ovf);
    const cdrom = env ? await environmentIso(env, hw.network ?? 'VM Network', dir) : undefined;
    const ovfEnvironment: VerifyEnvironment | undefined = env && (env.kind === 'file' ? { properties: env.properties, file: env.file } : { properties: env.properties.length });
    let boot: Pick<BootRequest, 'disk' | 'format'> = { disk, format: 'vmdk' };
    let grown: VerifyResult['disk'];
    if (req.growBytes) {
      const copy = path.join(dir, 'grown.qcow2');
      grown = { grownBy: req.growBytes, bytes: await growCopy(disk, copy, req.growBytes) };
      boot = { disk: copy, format: 'qcow2' };
    }
    const results: VerifyResult[] = [];
    for (const firmware of req.firmware) {
      const { bus, nic } = devicesFor(hw, firmware);
      // As vSphere would: the OVF's Secure Boot setting decides the firmware, with Microsoft's keys enrolled.
      const secureBoot = hw.secureBoot && firmware === 'efi';
      const hostPort = req.http ? await freePort() : undefined;
      const t0 = Date.now();
      const vm = await bootUntil({
        ...boot,
        cdrom,
        firmware,
        secureBoot,
        bus,
        nic,
        mac: DEFAULT_MAC,
        memoryMiB: Math.min(hw.memoryMiB ?? 1024, 4096),
        forwards: req.http && hostPort ? [{ host: hostPort, guest: req.http.port }] : [],
        marker: BOOTED,
        timeoutMs: req.timeoutSeconds * 1000,
        onLine: req.onLine,
      });
      try {
        // Reaching the target is not enough: a failed fsck or mount still lets the boot get there. systemd says so
        // on /dev/console ([FAILED]) or, where that is tty0 (c2v's appliances), in the journal c2v forwards to ttyS0.
        const failed = [...new Set([...vm.serial.matchAll(/(?:\[FAILED\] |systemd\[1\]: )Failed to (?:start|mount|activate) (.+?)\.?$/gm)].map((m) => m[1].trim()))];
        if (failed.length) throw new C2vError('input', `${firmware.toUpperCase()} boot reached its target with failed units: ${failed.join('; ')}`);
        if (secureBoot && !SECURE_BOOT_ON.test(vm.serial)) {
          throw new C2vError('input', 'EFI boot with Secure Boot enforced reached its target, but the kernel did not report Secure Boot enabled');
        }
        const result: VerifyResult = { firmware, bus, nic, accel: vm.accel, bootSeconds: vm.seconds, serial: vm.serial, integrity };
        if (secureBoot) result.secureBoot = true;
        if (ovfEnvironment) result.ovfEnvironment = ovfEnvironment;
        if (grown) result.disk = grown;
        if (req.http && hostPort) {
          const h0 = Date.now();
          result.httpBody = await waitForHttp(hostPort, req.http.text, t0 + req.timeoutSeconds * 1000);
          result.httpSeconds = (Date.now() - h0) / 1000;
        }
        results.push(result);
      } finally {
        await vm.stop();
      }
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
