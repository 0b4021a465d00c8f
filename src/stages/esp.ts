import { utimes } from 'node:fs/promises';
import { run } from '../adapters/exec.js';
import { buildEpoch } from '../plan/identity.js';

export interface EspFile {
  /** Path on the ESP, `/`-separated, without a leading slash. */
  target: string;
  /** The file in the workspace (one file may go to several places). */
  source: string;
}

export interface EspRequest {
  diskPath: string;
  offsetBytes: number;
  sizeBytes: number;
  volumeId: string;
  /**
   * Files to put on it, by their path on the ESP (`EFI/BOOT/BOOTX64.EFI`) and in the workspace; none for BIOS-only
   * disks, which still get an (empty) ESP for later use.
   */
  files?: readonly EspFile[];
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
  const files = req.files ?? [];
  if (files.length === 0) return;
  const image = `${req.diskPath}@@${req.offsetBytes}`;
  // mtools refuses images whose size differs from what the boot sector says unless told not to check.
  const env = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', ...timeEnv };
  await run('mmd', ['-i', image, ...espDirectories(files).map((d) => `::/${d}`)], { env });
  for (const file of files) {
    // -m keeps the file's mtime, so pin it too (the files are c2v's own, in the workspace).
    if (fatEpoch !== undefined) await utimes(file.source, fatEpoch, fatEpoch);
    await run('mcopy', ['-i', image, '-o', ...(fatEpoch === undefined ? [] : ['-m']), file.source, `::/${file.target}`], { env });
  }
}

/** Every directory the files need, parents first: mmd makes one level at a time. */
export function espDirectories(files: readonly EspFile[]): string[] {
  const dirs = new Set<string>();
  for (const { target } of files) {
    const parts = target.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs];
}
