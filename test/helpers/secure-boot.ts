/**
 * The negative half of the Secure Boot tests: a --secure-boot disk with one signed binary swapped for an unsigned
 * GRUB (what c2v writes without --secure-boot), booted on the same enforcing firmware, must stop before any kernel.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { bootUntil } from '../../src/adapters/qemu.js';

/** OVMF's boot manager, when the image fails its signature check. */
export const FIRMWARE_REFUSAL = /BdsDxe: failed to load Boot\d+ .*: Access Denied/;
/** shim, when the second stage it loads fails verification. */
export const SHIM_REFUSAL = /Verification failed: \(0x1A\) Security Violation/;
const KERNEL = /Linux version \d|EFI stub:/;

function espOffset(raw: string): number {
  const table = JSON.parse(execFileSync('sfdisk', ['--json', raw], { encoding: 'utf8' })) as { partitiontable: { sectorsize?: number; partitions: { start: number; type: string }[] } };
  const esp = table.partitiontable.partitions.find((p) => p.type.toUpperCase() === 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
  if (!esp) throw new Error(`${raw} has no EFI system partition`);
  return esp.start * (table.partitiontable.sectorsize ?? 512);
}

/** A disk whose ESP file `target` (under EFI/BOOT) is an unsigned GRUB. */
function withUnsigned(raw: string, unsigned: string, target: string, out: string): string {
  execFileSync('cp', ['--sparse=always', raw, out]);
  execFileSync('mcopy', ['-o', '-i', `${out}@@${espOffset(out)}`, unsigned, `::/EFI/BOOT/${target}`], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
  return out;
}

async function bootLine(disk: string, refusal: RegExp): Promise<string> {
  const vm = await bootUntil({ disk, format: 'raw', firmware: 'efi', secureBoot: true, bus: 'ahci', nic: 'e1000e', marker: new RegExp(`${refusal.source}|${KERNEL.source}`), timeoutMs: 300_000 });
  await vm.stop();
  return vm.line;
}

export async function unsignedBootRefusals(ova: string, dir: string): Promise<{ firmware: string; shim: string; kernelStarted: boolean }> {
  const work = path.join(dir, 'unsigned');
  mkdirSync(work, { recursive: true });
  const vmdk = execFileSync('tar', ['-tf', ova], { encoding: 'utf8' }).split('\n').find((n) => n.endsWith('.vmdk'))!;
  execFileSync('tar', ['-xf', ova, '-C', work, vmdk]);
  const raw = path.join(work, 'disk.raw');
  execFileSync('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', path.join(work, vmdk), raw]);
  const unsigned = path.join(work, 'unsigned-grub.efi');
  execFileSync('grub-mkimage', ['-O', 'x86_64-efi', '-p', '/boot/grub', '-o', unsigned, 'part_gpt', 'fat', 'ext2', 'normal', 'configfile', 'linux', 'search']);
  const firmware = await bootLine(withUnsigned(raw, unsigned, 'BOOTX64.EFI', path.join(work, 'no-shim.raw')), FIRMWARE_REFUSAL);
  const shim = await bootLine(withUnsigned(raw, unsigned, 'grubx64.efi', path.join(work, 'no-signed-grub.raw')), SHIM_REFUSAL);
  return { firmware, shim, kernelStarted: KERNEL.test(firmware) || KERNEL.test(shim) };
}
