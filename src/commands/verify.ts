import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { C2vError } from '../errors.js';
import { readBody, readTar, textOf } from '../formats/tar/index.js';
import { bootUntil, type Accel, type DiskBus, type Firmware, type NicModel } from '../adapters/qemu.js';
import { readOvfHardware, type OvfHardware } from '../plan/ovf-read.js';

export interface VerifyRequest {
  ova: string;
  firmware: Firmware[];
  http?: { port: number; text?: string };
  timeoutSeconds: number;
  onLine?: (line: string) => void;
}

export interface VerifyResult {
  firmware: Firmware;
  bus: DiskBus;
  nic: NicModel;
  accel: Accel;
  bootSeconds: number;
  httpSeconds?: number;
  httpBody?: string;
}

/** The default target seen on the serial console: systemd's own report, or the serial login prompt. */
export const BOOTED = /Reached target.*(Multi-User System|Graphical Interface)|\blogin: *$/;

/** QEMU's closest device for each VMware one. Debian's OVMF cannot boot from pvscsi, so EFI boots use AHCI. */
export function devicesFor(hw: OvfHardware, firmware: Firmware): { bus: DiskBus; nic: NicModel } {
  let bus: DiskBus = 'pvscsi';
  if (hw.sata) bus = 'ahci';
  else if (hw.scsiSubType && /lsilogic/i.test(hw.scsiSubType)) bus = 'lsi';
  if (firmware === 'efi' && bus === 'pvscsi') bus = 'ahci';
  const nic: NicModel = hw.nicSubType && /e1000/i.test(hw.nicSubType) ? 'e1000e' : 'vmxnet3';
  return { bus, nic };
}

async function extractOva(ova: string, dir: string): Promise<{ ovf: string; disk: string }> {
  let ovf: string | undefined;
  const disks = new Map<string, string>();
  try {
    for await (const entry of readTar(createReadStream(ova), { source: 'the archive', endMarkerOptional: true })) {
      const name = path.basename(textOf(entry.header.name));
      if (name.endsWith('.ovf')) {
        ovf = (await readBody(entry)).toString('utf8');
      } else if (name.endsWith('.vmdk')) {
        const to = path.join(dir, name);
        await pipeline(entry.body, createWriteStream(to));
        disks.set(name, to);
      }
    }
  } catch (e) {
    throw new C2vError('input', `${ova} is not a readable OVA (tar): ${(e as Error).message}`, { cause: e });
  }
  if (!ovf) throw new C2vError('input', `${ova} has no .ovf descriptor`);
  const hw = readOvfHardware(ovf);
  const disk = (hw.diskFile && disks.get(hw.diskFile)) ?? [...disks.values()][0];
  if (!disk) throw new C2vError('input', `${ova} has no .vmdk disk`);
  return { ovf, disk };
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

/** Boots the OVA's disk on the devices its OVF declares, once per firmware, and checks what was asked. */
export async function verifyOva(req: VerifyRequest): Promise<VerifyResult[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'c2v-verify-'));
  try {
    const { ovf, disk } = await extractOva(req.ova, dir);
    const hw = readOvfHardware(ovf);
    const results: VerifyResult[] = [];
    for (const firmware of req.firmware) {
      const { bus, nic } = devicesFor(hw, firmware);
      const hostPort = req.http ? await freePort() : undefined;
      const t0 = Date.now();
      const boot = await bootUntil({
        disk,
        firmware,
        bus,
        nic,
        memoryMiB: Math.min(hw.memoryMiB ?? 1024, 4096),
        forwards: req.http && hostPort ? [{ host: hostPort, guest: req.http.port }] : [],
        marker: BOOTED,
        timeoutMs: req.timeoutSeconds * 1000,
        onLine: req.onLine,
      });
      try {
        // Reaching the target is not enough: a failed fsck or mount still lets the boot get there.
        const failed = [...boot.serial.matchAll(/\[FAILED\] Failed to (?:start|mount|activate) (.+?)\.?$/gm)].map((m) => m[1].trim());
        if (failed.length) throw new C2vError('input', `${firmware.toUpperCase()} boot reached its target with failed units: ${failed.join('; ')}`);
        const result: VerifyResult = { firmware, bus, nic, accel: boot.accel, bootSeconds: boot.seconds };
        if (req.http && hostPort) {
          const h0 = Date.now();
          result.httpBody = await waitForHttp(hostPort, req.http.text, t0 + req.timeoutSeconds * 1000);
          result.httpSeconds = (Date.now() - h0) / 1000;
        }
        results.push(result);
      } finally {
        await boot.stop();
      }
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
