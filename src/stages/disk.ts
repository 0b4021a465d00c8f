import { open } from 'node:fs/promises';
import { C2vError } from '../errors.js';
import { encodeGpt, encodeProtectiveMbr } from '../formats/gpt.js';
import { coreImgSectors, patchBootImg, patchCoreImg } from '../formats/bios-boot.js';
import type { DiskLayout } from '../plan/layout.js';
import type { GrubImages } from './boot-loader.js';

/** A sparse file of the disk's size: the filesystems are written into their byte ranges, the rest stays a hole. */
export async function createDiskFile(diskPath: string, bytes: number): Promise<void> {
  const fh = await open(diskPath, 'wx');
  try {
    await fh.truncate(bytes);
  } finally {
    await fh.close();
  }
}

/**
 * Writes the protective MBR (carrying GRUB's boot.img when BIOS boot is wanted), both GPT copies, and core.img
 * into the BIOS boot partition: what grub-bios-setup would do, done on the file.
 */
export async function writePartitionTables(diskPath: string, layout: DiskLayout, grub: GrubImages): Promise<void> {
  const gpt = encodeGpt(layout);
  let mbr = encodeProtectiveMbr(layout.totalSectors);
  const fh = await open(diskPath, 'r+');
  try {
    if (grub.coreImg && grub.bootImg) {
      const biosBoot = layout.partitions.find((p) => p.role === 'bios-boot');
      if (!biosBoot) throw new C2vError('internal', 'BIOS boot requested but the layout has no BIOS boot partition');
      const sectors = coreImgSectors(grub.coreImg);
      if (sectors * 512 > biosBoot.sizeBytes) {
        throw new C2vError('internal', `GRUB core.img (${sectors} sectors) does not fit the ${biosBoot.sizeBytes / 512}-sector BIOS boot partition`);
      }
      const core = patchCoreImg(grub.coreImg, biosBoot.firstLba);
      await fh.write(core, 0, core.length, biosBoot.offsetBytes);
      mbr = patchBootImg(grub.bootImg, mbr, biosBoot.firstLba);
    }
    await fh.write(mbr, 0, mbr.length, 0);
    await fh.write(gpt.primary, 0, gpt.primary.length, 512);
    await fh.write(gpt.backup, 0, gpt.backup.length, gpt.backupOffsetBytes);
  } finally {
    await fh.close();
  }
}
