import { access, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import { run } from '../adapters/exec.js';
import type { RootfsSource } from '../adapters/engine.js';
import { grubEarlyConfig } from '../plan/boot-config.js';
import { SIGNED_BOOT_FILES, type SignedBootPlan } from '../plan/secure-boot.js';
import type { Templates } from '../plan/template.js';
import type { EspFile } from './esp.js';

/** Where Debian's grub-pc-bin and grub-efi-amd64-bin put their module trees. */
export const GRUB_DIRS = {
  bios: process.env.C2V_GRUB_BIOS_DIR ?? '/usr/lib/grub/i386-pc',
  efi: process.env.C2V_GRUB_EFI_DIR ?? '/usr/lib/grub/x86_64-efi',
};

const COMMON_MODULES = [
  'part_gpt',
  'part_msdos',
  'ext2',
  'fat',
  'search',
  'search_fs_uuid',
  'normal',
  'configfile',
  'linux',
  'boot',
  'echo',
  'test',
  'serial',
  'terminal',
  'gzio',
  'minicmd',
  'ls',
  'cat',
];
const BIOS_MODULES = [...COMMON_MODULES, 'biosdisk'];
const EFI_MODULES = [...COMMON_MODULES, 'efi_gop', 'efi_uga', 'all_video'];

async function requireDir(dir: string, pkg: string): Promise<void> {
  try {
    await access(path.join(dir, 'moddep.lst'));
  } catch {
    throw new C2vError('tool', `GRUB modules not found in ${dir}: install the Debian package ${pkg}`);
  }
}

export interface GrubImages {
  /** i386-pc core.img, to be written into the BIOS boot partition. */
  coreImg?: Buffer;
  /** boot.img from the same GRUB build, for the MBR. */
  bootImg?: Buffer;
  /** What goes on the ESP: GRUB as EFI/BOOT/BOOTX64.EFI, or the signed chain of --secure-boot. */
  espFiles: EspFile[];
}

/**
 * Builds the GRUB images with grub-mkimage from the host's module trees: no grub-install, which wants a mounted
 * target and a real block device. Every module is embedded, so nothing but grub.cfg is read from the root fs.
 */
export async function makeGrubImages(opts: {
  workDir: string;
  rootFsUuid: string;
  bios: boolean;
  efi: boolean;
  templates: Templates;
  /** --secure-boot: the image's signed boot chain instead of a GRUB of c2v's making. */
  signed?: { plan: SignedBootPlan; source: RootfsSource };
}): Promise<GrubImages> {
  const early = path.join(opts.workDir, 'grub-early.cfg');
  await writeFile(early, grubEarlyConfig(opts.rootFsUuid, opts.templates));
  const result: GrubImages = { espFiles: [] };
  if (opts.bios) {
    await requireDir(GRUB_DIRS.bios, 'grub-pc-bin');
    const out = path.join(opts.workDir, 'core.img');
    await run('grub-mkimage', ['-O', 'i386-pc', '-d', GRUB_DIRS.bios, '-c', early, '-p', '/boot/grub', '-o', out, ...BIOS_MODULES]);
    result.coreImg = await readFile(out);
    result.bootImg = await readFile(path.join(GRUB_DIRS.bios, 'boot.img'));
  }
  if (opts.efi && opts.signed) {
    result.espFiles = await signedEspFiles(opts.signed.plan, opts.signed.source, early, opts.workDir);
  } else if (opts.efi) {
    await requireDir(GRUB_DIRS.efi, 'grub-efi-amd64-bin');
    const out = path.join(opts.workDir, 'BOOTX64.EFI');
    await run('grub-mkimage', ['-O', 'x86_64-efi', '-d', GRUB_DIRS.efi, '-c', early, '-p', '/boot/grub', '-o', out, ...EFI_MODULES]);
    result.espFiles = [{ target: 'EFI/BOOT/BOOTX64.EFI', source: out }];
  }
  return result;
}

/**
 * The distribution's signed binaries, taken from the image (never the host: they must match its kernel's
 * signing keys), copied into the workspace under their ESP names, plus the early config where the signed GRUB
 * reads it: it cannot have one embedded, since that would change the signed file.
 */
async function signedEspFiles(plan: SignedBootPlan, source: RootfsSource, earlyConfig: string, workDir: string): Promise<EspFile[]> {
  const files: EspFile[] = [];
  for (const file of SIGNED_BOOT_FILES) {
    const found = await firstFile(source, plan.paths[file.role]);
    if (!found) {
      if (!file.required) continue;
      throw new C2vError('input', `--secure-boot: the image has no ${file.what} (${plan.paths[file.role].join(' or ')}): install ${plan.packages} in it, or let c2v's packages step add them`);
    }
    const local = path.join(workDir, `signed-${file.role}.efi`);
    await writeFile(local, found);
    files.push({ target: `EFI/BOOT/${file.espName}`, source: local });
  }
  for (const dir of plan.configDirs) files.push({ target: `EFI/${dir}/grub.cfg`, source: earlyConfig });
  return files;
}

async function firstFile(source: RootfsSource, paths: readonly string[]): Promise<Buffer | undefined> {
  for (const p of paths) {
    const data = await source.readFile(p);
    if (data) return data;
  }
  return undefined;
}
