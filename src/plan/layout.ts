/**
 * Partition layout of the appliance disk, as data. Pure: no fs, no subprocesses, so the plan can be printed
 * as JSON and checked before anything is written.
 */

export const SECTOR = 512;
export const MiB = 1024 * 1024;

/** Partitions start on 1 MiB boundaries: what current partitioning tools do, and right for 4K-sector and RAID-backed datastores. */
const ALIGN_SECTORS = MiB / SECTOR;
/** Protective MBR (LBA 0) + primary GPT header (LBA 1) + 32 sectors of entries (128 x 128 bytes). */
const GPT_HEAD_SECTORS = 34;
/** The backup GPT at the end of the disk: 32 sectors of entries + the backup header. */
const GPT_TAIL_SECTORS = 33;

export const DEFAULT_ESP_BYTES = 64 * MiB;
export const DEFAULT_BIOS_BOOT_BYTES = 1 * MiB;

/** Partition type GUIDs (UEFI spec for the ESP; the Discoverable Partitions Specification for the root). */
export const PARTITION_TYPE = {
  // GRUB's embedding area on GPT disks; the GUID spells "Hah!IdontNeedEFI".
  'bios-boot': '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  // "Root Partition (x86-64)": systemd-gpt-auto-generator and similar tools recognise it.
  root: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
} as const;

export type PartitionRole = 'bios-boot' | 'esp' | 'root';

const PARTITION_NAME: Record<PartitionRole, string> = {
  'bios-boot': 'BIOS boot',
  esp: 'EFI System',
  root: 'Linux root (x86-64)',
};

export interface PlannedPartition {
  role: PartitionRole;
  name: string;
  typeGuid: string;
  uuid: string;
  firstLba: number;
  /** Inclusive, as GPT stores it. */
  lastLba: number;
  offsetBytes: number;
  sizeBytes: number;
}

export interface DiskLayout {
  sectorSize: 512;
  diskBytes: number;
  totalSectors: number;
  diskGuid: string;
  partitions: PlannedPartition[];
}

export interface LayoutRequest {
  rootBytes: number;
  /** Default 64 MiB. */
  espBytes?: number;
  /** Default 1 MiB. */
  biosBootBytes?: number;
  /** Exact total size. When absent: the partitions plus the backup GPT, rounded up to 1 MiB. */
  diskBytes?: number;
  guids: { disk: string; biosBoot: string; esp: string; root: string };
}

const GUID_RE = /^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$/i;
const NIL_GUID = '00000000-0000-0000-0000-000000000000';

/** Returns the GUID in upper case (the form sfdisk and sgdisk print), or undefined if it is not one. */
export function normalizeGuid(guid: string): string | undefined {
  return typeof guid === 'string' && GUID_RE.test(guid) ? guid.toUpperCase() : undefined;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function describeBytes(n: number): string {
  return n >= MiB ? `${n} bytes (${(n / MiB).toFixed(2).replace(/\.?0+$/, '')} MiB)` : `${n} bytes`;
}

/**
 * The root partition always runs to the last usable LBA, so the disk has no unpartitioned tail: with an explicit
 * diskBytes it takes all the room, and without one it takes the slack left by rounding the disk up to 1 MiB.
 */
export function planLayout(req: LayoutRequest): DiskLayout {
  const espBytes = req.espBytes ?? DEFAULT_ESP_BYTES;
  const biosBootBytes = req.biosBootBytes ?? DEFAULT_BIOS_BOOT_BYTES;
  const guids = validateRequest(req, espBytes, biosBootBytes);

  const biosFirst = ALIGN_SECTORS;
  const biosSectors = alignUp(biosBootBytes, MiB) / SECTOR;
  const espFirst = biosFirst + biosSectors;
  const espSectors = alignUp(espBytes, MiB) / SECTOR;
  const rootFirst = espFirst + espSectors;
  const rootMinSectors = alignUp(req.rootBytes, SECTOR) / SECTOR;
  const minTotalSectors = rootFirst + rootMinSectors + GPT_TAIL_SECTORS;

  let totalSectors: number;
  if (req.diskBytes === undefined) {
    totalSectors = alignUp(minTotalSectors, ALIGN_SECTORS);
  } else {
    totalSectors = req.diskBytes / SECTOR;
    if (totalSectors < minTotalSectors) {
      throw new RangeError(
        `disk size ${describeBytes(req.diskBytes)} is too small: the root partition needs ` +
          `${describeBytes(rootMinSectors * SECTOR)} starting at byte ${rootFirst * SECTOR}, plus ` +
          `${GPT_TAIL_SECTORS * SECTOR} bytes for the backup GPT; the disk must be at least ` +
          `${describeBytes(minTotalSectors * SECTOR)}`,
      );
    }
  }
  const lastUsable = totalSectors - GPT_HEAD_SECTORS;

  const part = (role: PartitionRole, uuid: string, firstLba: number, lastLba: number): PlannedPartition => ({
    role,
    name: PARTITION_NAME[role],
    typeGuid: PARTITION_TYPE[role],
    uuid,
    firstLba,
    lastLba,
    offsetBytes: firstLba * SECTOR,
    sizeBytes: (lastLba - firstLba + 1) * SECTOR,
  });

  return {
    sectorSize: SECTOR,
    diskBytes: totalSectors * SECTOR,
    totalSectors,
    diskGuid: guids.disk,
    partitions: [
      part('bios-boot', guids.biosBoot, biosFirst, biosFirst + biosSectors - 1),
      part('esp', guids.esp, espFirst, espFirst + espSectors - 1),
      part('root', guids.root, rootFirst, lastUsable),
    ],
  };
}

/** Collects every problem before throwing, so a caller fixes them in one go. */
function validateRequest(req: LayoutRequest, espBytes: number, biosBootBytes: number): LayoutRequest['guids'] {
  const problems: string[] = [];
  const positive = (path: string, v: unknown): void => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      problems.push(`${path}: expected a positive whole number of bytes, got ${String(v)}`);
    }
  };
  positive('rootBytes', req.rootBytes);
  positive('espBytes', espBytes);
  positive('biosBootBytes', biosBootBytes);
  if (req.diskBytes !== undefined) {
    positive('diskBytes', req.diskBytes);
    if (Number.isSafeInteger(req.diskBytes) && req.diskBytes % SECTOR !== 0) {
      problems.push(`diskBytes: ${req.diskBytes} is not a multiple of the ${SECTOR}-byte sector`);
    }
  }

  const out = { disk: '', biosBoot: '', esp: '', root: '' };
  const seen = new Map<string, string>();
  for (const key of ['disk', 'biosBoot', 'esp', 'root'] as const) {
    const raw = req.guids?.[key];
    const guid = normalizeGuid(raw);
    if (guid === undefined) {
      problems.push(`guids.${key}: expected a GUID like 01234567-89AB-CDEF-0123-456789ABCDEF, got ${JSON.stringify(raw)}`);
      continue;
    }
    if (guid === NIL_GUID) {
      problems.push(`guids.${key}: the nil GUID is not a valid identifier`);
      continue;
    }
    const other = seen.get(guid);
    if (other !== undefined) problems.push(`guids.${key}: same GUID as guids.${other} (${guid})`);
    seen.set(guid, key);
    out[key] = guid;
  }

  if (problems.length > 0) {
    const err = problems.some((p) => p.startsWith('guids.')) ? TypeError : RangeError;
    throw new err(`invalid disk layout request:\n  ${problems.join('\n  ')}`);
  }
  return out;
}
