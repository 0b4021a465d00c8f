/**
 * Boot-time text files, as pure functions of the plan: grub.cfg on the root fs, the early config embedded in the
 * GRUB images, and the guest's fstab (the text itself is in templates/boot/).
 */
import { renderTemplate, type Templates } from './template.js';

/** The last console= is /dev/console: tty0, what vSphere's console shows; the kernel still writes to ttyS0 too. */
export const KERNEL_CMDLINE_CONSOLES = 'console=ttyS0,115200 console=tty0';

export interface KernelChoice {
  kernel: string; // path inside the root fs, without leading slash
  initrd?: string;
  version?: string;
}

const KERNEL_PATTERNS: { kernel: RegExp; initrds: (v: string) => string[] }[] = [
  // Debian/Ubuntu: vmlinuz-<ver> + initrd.img-<ver>; RHEL: initramfs-<ver>.img; Alpine: vmlinuz-virt + initramfs-virt
  { kernel: /^boot\/vmlinuz-(.+)$/, initrds: (v) => [`boot/initrd.img-${v}`, `boot/initramfs-${v}.img`, `boot/initramfs-${v}`] },
  { kernel: /^boot\/vmlinuz$/, initrds: () => ['boot/initrd.img', 'boot/initramfs', 'boot/initramfs.img'] },
];

/** Compares kernel versions the way people read them: 6.1.0-18 before 6.1.0-25 before 6.10.1. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[^0-9A-Za-z]+/);
  const pb = b.split(/[^0-9A-Za-z]+/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) {
      if (nx !== ny) return nx - ny;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

/**
 * Picks the kernel to boot: the target of the image's /vmlinuz (or /boot/vmlinuz) symlink when it names one of the
 * kernels present (that is what the distro considers current), else the highest version.
 */
export function chooseKernel(
  kernels: readonly string[],
  initrds: readonly string[],
  symlinks: Readonly<Record<string, string>> = {},
): KernelChoice | undefined {
  const present = new Set(kernels);
  const candidates: KernelChoice[] = [];
  for (const k of kernels) {
    for (const p of KERNEL_PATTERNS) {
      const m = p.kernel.exec(k);
      if (!m) continue;
      const version = m[1];
      const initrd = p.initrds(version ?? '').find((i) => initrds.includes(i));
      candidates.push({ kernel: k, initrd, version });
      break;
    }
  }
  if (candidates.length === 0) return undefined;
  for (const link of ['vmlinuz', 'boot/vmlinuz']) {
    const target = symlinks[link];
    if (!target) continue;
    const resolved = resolveLink(link, target);
    if (present.has(resolved)) {
      const hit = candidates.find((c) => c.kernel === resolved);
      if (hit) return hit;
    }
  }
  return [...candidates].sort((x, y) => compareVersions(y.version ?? '', x.version ?? ''))[0];
}

function resolveLink(link: string, target: string): string {
  const base = target.startsWith('/') ? [] : link.split('/').slice(0, -1);
  const parts = [...base];
  for (const seg of target.split('/')) {
    if (!seg || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return parts.join('/');
}

export interface GrubConfigInput {
  title: string;
  rootFsUuid: string;
  kernel: KernelChoice;
  extraCmdline?: string;
  timeoutSeconds?: number;
}

/** The menu on the root filesystem (/boot/grub/grub.cfg), shared by the BIOS and EFI GRUB images. */
export function grubConfig(input: GrubConfigInput, templates: Pick<Templates, 'grubConfig'>): string {
  return renderTemplate(templates.grubConfig, {
    timeoutSeconds: input.timeoutSeconds ?? 1,
    // The title sits in single quotes, which GRUB's script cannot escape inside them.
    title: input.title.replace(/'/g, ''),
    rootFsUuid: input.rootFsUuid,
    kernel: input.kernel.kernel,
    initrd: input.kernel.initrd ?? '',
    consoles: KERNEL_CMDLINE_CONSOLES,
    extraCmdline: input.extraCmdline ?? '',
  });
}

/** Embedded in the GRUB images: find the root filesystem by UUID and hand over to its grub.cfg. */
export function grubEarlyConfig(rootFsUuid: string, templates: Pick<Templates, 'grubEarlyConfig'>): string {
  return renderTemplate(templates.grubEarlyConfig, { rootFsUuid });
}

export interface FstabInput {
  rootFsUuid: string;
  espUuid?: string;
}

export function fstab(input: FstabInput, templates: Pick<Templates, 'fstab'>): string {
  return renderTemplate(templates.fstab, { rootFsUuid: input.rootFsUuid, espUuid: input.espUuid ?? '' });
}
