import { utimes } from 'node:fs/promises';
import { run } from '../adapters/exec.js';
import { buildEpoch } from '../plan/identity.js';

export interface EspRequest {
  diskPath: string;
  offsetBytes: number;
  sizeBytes: number;
  volumeId: string;
  /** The EFI GRUB image; absent for BIOS-only disks, which still get an (empty) ESP for later use. */
  efiImagePath?: string;
  /** Seconds since 1970 for every FAT timestamp (reproducible output); default SOURCE_DATE_EPOCH, else the clock. */
  epoch?: number;
}

/** FAT cannot store dates before 1980 or after 2107. */
const FAT_MIN = 315_532_800;
const FAT_MAX = 4_354_819_199;

/**
 * FAT32 written in place with mkfs.vfat --offset and filled with mtools: no mount, which this kernel could not
 * do for FAT anyway. With an epoch, the bytes depend only on the inputs: mkfs.vfat --invariant fixes what it
 * would take from the clock or a random source (the volume id comes from -i), and mtools takes its times from
 * SOURCE_DATE_EPOCH, in UTC whatever the host's zone.
 */
export async function makeEsp(req: EspRequest): Promise<void> {
  const sector = 512;
  const epoch = req.epoch ?? buildEpoch(process.env.SOURCE_DATE_EPOCH, undefined);
  const fatEpoch = epoch === undefined ? undefined : Math.min(Math.max(epoch, FAT_MIN), FAT_MAX);
  const timeEnv: Record<string, string> = fatEpoch === undefined ? {} : { SOURCE_DATE_EPOCH: String(fatEpoch), TZ: 'UTC' };
  // One sector per cluster keeps a small ESP above FAT32's minimum cluster count, which some firmware checks.
  await run(
    'mkfs.vfat',
    ['--invariant', '-F', '32', '-s', '1', '-n', 'EFI', '-i', req.volumeId, `--offset=${req.offsetBytes / sector}`, req.diskPath, String(req.sizeBytes / 1024)],
    { env: timeEnv },
  );
  if (!req.efiImagePath) return;
  const image = `${req.diskPath}@@${req.offsetBytes}`;
  // mtools refuses images whose size differs from what the boot sector says unless told not to check.
  const env = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', ...timeEnv };
  await run('mmd', ['-i', image, '::/EFI', '::/EFI/BOOT'], { env });
  // -m keeps the file's mtime, so pin it too (the file is c2v's own, in the workspace).
  if (fatEpoch !== undefined) await utimes(req.efiImagePath, fatEpoch, fatEpoch);
  await run('mcopy', ['-i', image, '-o', ...(fatEpoch === undefined ? [] : ['-m']), req.efiImagePath, '::/EFI/BOOT/BOOTX64.EFI'], { env });
}
