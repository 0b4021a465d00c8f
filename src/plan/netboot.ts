/**
 * The diskless network boot folder (--format netboot), planned: its file names, the kernel command line, the
 * kernel modules the c2v boot step needs and their load order, and the server-side files (boot.ipxe, a GRUB entry,
 * README, SHA256SUMS) as text. Pure: the netboot stage reads the image and applies it.
 */
import { KERNEL_CMDLINE_CONSOLES } from './boot-config.js';
import { renderTemplate, type Templates } from './template.js';

/** The folder's files, as a PXE/iPXE server serves them. */
export const NETBOOT_FILES = {
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  root: 'root.squashfs',
  ipxe: 'boot.ipxe',
  grub: 'grub.cfg',
  readme: 'README.txt',
  sums: 'SHA256SUMS',
} as const;

/**
 * What the boot step mounts with: the read-only root image (squashfs), the RAM layer over it (overlay), and the
 * loop device a downloaded image file needs. Debian's initramfs (MODULES=most) carries none of the first two.
 */
export const NETBOOT_MODULES = ['squashfs', 'overlay', 'loop'] as const;
/** Without these the root cannot be mounted at all; loop is only needed for an image that is a file. */
const REQUIRED_FEATURES = ['squashfs', 'overlay'] as const;

/** Where the appended initramfs archive puts what c2v adds (templates/netboot/c2v-boot.sh reads them there). */
export const INITRAMFS_SCRIPT = 'scripts/c2v';
export const INITRAMFS_MODULE_DIR = 'c2v/modules';

export class NetbootPlanError extends Error {}

/** A kernel's module index files, as /lib/modules/<version>/ has them. */
export interface KernelModules {
  version: string;
  /** modules.dep: `kernel/fs/squashfs/squashfs.ko: dep.ko ...`, paths relative to the version's folder. */
  dep: string;
  /** modules.builtin: the paths of what is built into the kernel ('' when the file is missing). */
  builtin: string;
}

/** A module's name as the kernel knows it: the file name without .ko and compression, '-' read as '_'. */
export function moduleName(file: string): string {
  const base = file.slice(file.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

interface ModuleEntry {
  path: string;
  deps: string[];
}

function parseModulesDep(text: string): Map<string, ModuleEntry> {
  const modules = new Map<string, ModuleEntry>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean);
    modules.set(moduleName(path), { path, deps });
  }
  return modules;
}

function builtinNames(text: string): Set<string> {
  return new Set(text.split('\n').map((l) => l.trim()).filter(Boolean).map(moduleName));
}

/** The network boot's kernel features the kernel has neither built in nor as a module. */
export function netbootLacks(mods: KernelModules): string[] {
  const modules = parseModulesDep(mods.dep);
  const builtin = builtinNames(mods.builtin);
  return REQUIRED_FEATURES.filter((f) => !modules.has(f) && !builtin.has(f));
}

export interface ModuleFile {
  name: string;
  /** Relative to /lib/modules/<version>/. */
  path: string;
  /** The name in the initramfs archive: a number for the load order, then the module's name. */
  archiveName: string;
}

/** The module files the boot step loads, each after what it depends on; built-in ones need no file. */
export function moduleLoadOrder(mods: KernelModules, wanted: readonly string[] = NETBOOT_MODULES): ModuleFile[] {
  const modules = parseModulesDep(mods.dep);
  const builtin = builtinNames(mods.builtin);
  const byPath = new Map([...modules.values()].map((m) => [m.path, m]));
  const order: ModuleEntry[] = [];
  const placed = new Set<string>();
  const visit = (entry: ModuleEntry): void => {
    if (placed.has(entry.path)) return;
    placed.add(entry.path);
    for (const dep of entry.deps) {
      const d = byPath.get(dep);
      if (!d) throw new NetbootPlanError(`the kernel ${mods.version}'s modules.dep names ${dep} (needed by ${entry.path}) without a line of its own: run depmod ${mods.version} in the image`);
      visit(d);
    }
    order.push(entry);
  };
  for (const name of wanted) {
    if (builtin.has(name)) continue;
    const entry = modules.get(name);
    if (!entry) throw new NetbootPlanError(netbootLackMessage(mods.version, [name]));
    visit(entry);
  }
  return order.map((m, i) => {
    const name = moduleName(m.path);
    return { name, path: m.path, archiveName: `${String((i + 1) * 10).padStart(3, '0')}-${name}.ko` };
  });
}

export function netbootLackMessage(version: string, lacks: readonly string[]): string {
  return `--format netboot mounts the root as squashfs under overlay, and the image's kernel ${version} has no ${lacks.join(' or ')} support (neither built in nor a module in /lib/modules/${version}): install a kernel that has it (Debian's and Ubuntu's do), or choose another --format`;
}

export interface NetbootPlan {
  /** The output folder's name, where the GRUB entry looks for the files by default. */
  folderName: string;
  /** The kernel command line but for c2v.root and c2v.sha256, which boot.ipxe and grub.cfg add. */
  cmdline: string;
  /** --root-url, or undefined: the boot server's own address, as iPXE and GRUB know it, at boot. */
  rootUrl?: string;
}

export function planNetboot(input: { folderName: string; rootUrl?: string; extraCmdline?: string }): NetbootPlan {
  // ip=dhcp has the initramfs bring the network up; rw, that nothing remounts the root read-only.
  const parts = ['boot=c2v', 'ip=dhcp', 'rw', KERNEL_CMDLINE_CONSOLES, input.extraCmdline ?? ''].filter(Boolean);
  return { folderName: input.folderName, cmdline: parts.join(' '), rootUrl: input.rootUrl };
}

export interface NetbootTexts {
  ipxe: string;
  grub: string;
  readme: string;
}

type NetbootTemplates = Pick<Templates, 'netbootIpxe' | 'netbootGrub' | 'netbootReadme'>;

/** boot.ipxe, the GRUB entry and the README, once the root image's digest is known. */
export function netbootTexts(plan: NetbootPlan, root: { sha256: string; bytes: number }, title: string, templates: NetbootTemplates): NetbootTexts {
  const values = {
    title: title.replace(/['"\\$]/g, ''),
    folder: plan.folderName,
    cmdline: `${plan.cmdline} c2v.sha256=${root.sha256}`,
    ipxeRoot: plan.rootUrl ?? `http://\${next-server}/${NETBOOT_FILES.root}`,
    grubRoot: plan.rootUrl ?? `http://\${net_default_server}/${NETBOOT_FILES.root}`,
    rootUrl: plan.rootUrl ?? '',
    rootMiB: Math.ceil(root.bytes / (1024 * 1024)),
    ...NETBOOT_FILES,
  };
  return {
    ipxe: renderTemplate(templates.netbootIpxe, values),
    grub: renderTemplate(templates.netbootGrub, values),
    readme: renderTemplate(templates.netbootReadme, values),
  };
}

/** The folder's checksum file, as `sha256sum -c` reads it. */
export function sha256Sums(files: readonly { name: string; sha256: string }[]): string {
  return files.map((f) => `${f.sha256}  ${f.name}\n`).join('');
}
