import { access, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import { run } from '../adapters/exec.js';
import { grubEarlyConfig } from '../plan/boot-config.js';
import type { Templates } from '../plan/template.js';

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
  /** Path of the x86_64-efi image, to be copied to EFI/BOOT/BOOTX64.EFI. */
  efiImagePath?: string;
}

/**
 * Builds the GRUB images with grub-mkimage from the host's module trees: no grub-install, which wants a mounted
 * target and a real block device. Every module is embedded, so nothing but grub.cfg is read from the root fs.
 */
export async function makeGrubImages(opts: { workDir: string; rootFsUuid: string; bios: boolean; efi: boolean; templates: Templates }): Promise<GrubImages> {
  const early = path.join(opts.workDir, 'grub-early.cfg');
  await writeFile(early, grubEarlyConfig(opts.rootFsUuid, opts.templates));
  const result: GrubImages = {};
  if (opts.bios) {
    await requireDir(GRUB_DIRS.bios, 'grub-pc-bin');
    const out = path.join(opts.workDir, 'core.img');
    await run('grub-mkimage', ['-O', 'i386-pc', '-d', GRUB_DIRS.bios, '-c', early, '-p', '/boot/grub', '-o', out, ...BIOS_MODULES]);
    result.coreImg = await readFile(out);
    result.bootImg = await readFile(path.join(GRUB_DIRS.bios, 'boot.img'));
  }
  if (opts.efi) {
    await requireDir(GRUB_DIRS.efi, 'grub-efi-amd64-bin');
    const out = path.join(opts.workDir, 'BOOTX64.EFI');
    await run('grub-mkimage', ['-O', 'x86_64-efi', '-d', GRUB_DIRS.efi, '-c', early, '-p', '/boot/grub', '-o', out, ...EFI_MODULES]);
    result.efiImagePath = out;
  }
  return result;
}
