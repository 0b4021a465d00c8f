import { run } from '../adapters/exec.js';

export interface EspRequest {
  diskPath: string;
  offsetBytes: number;
  sizeBytes: number;
  volumeId: string;
  /** The EFI GRUB image; absent for BIOS-only disks, which still get an (empty) ESP for later use. */
  efiImagePath?: string;
}

/**
 * FAT32 written in place with mkfs.vfat --offset and filled with mtools: no mount, which this kernel could not
 * do for FAT anyway.
 */
export async function makeEsp(req: EspRequest): Promise<void> {
  const sector = 512;
  // One sector per cluster keeps a small ESP above FAT32's minimum cluster count, which some firmware checks.
  await run('mkfs.vfat', ['-F', '32', '-s', '1', '-n', 'EFI', '-i', req.volumeId, `--offset=${req.offsetBytes / sector}`, req.diskPath, String(req.sizeBytes / 1024)]);
  if (!req.efiImagePath) return;
  const image = `${req.diskPath}@@${req.offsetBytes}`;
  // mtools refuses images whose size differs from what the boot sector says unless told not to check.
  const env = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0' };
  await run('mmd', ['-i', image, '::/EFI', '::/EFI/BOOT'], { env });
  await run('mcopy', ['-i', image, '-o', req.efiImagePath, '::/EFI/BOOT/BOOTX64.EFI'], { env });
}
