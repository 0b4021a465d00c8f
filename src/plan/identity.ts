import { createHash } from 'node:crypto';
import { C2vError } from '../errors.js';

/**
 * Every identifier on the disk (GPT GUIDs, filesystem UUIDs, the FAT volume id) comes from one seed, so the
 * same image and options give the same disk, and nothing depends on the clock or a random source.
 */
export interface DiskIdentity {
  diskGuid: string;
  biosBootGuid: string;
  espGuid: string;
  rootGuid: string;
  rootFsUuid: string;
  /** FAT volume id as 8 hex digits; shows up as XXXX-XXXX in /dev/disk/by-uuid and fstab. */
  espVolumeId: string;
  /** ext4 directory hash seed, also derived so htree layout is reproducible. */
  rootHashSeed: string;
  /** The VMDK descriptor's content id. */
  vmdkCid: number;
}

export function seedFrom(parts: readonly (string | number | boolean | undefined)[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** A random-looking (version 4, RFC 4122 variant) UUID derived from the seed and a purpose. */
export function derivedUuid(seed: string, purpose: string): string {
  const b = createHash('sha256').update(`${seed}\0${purpose}`).digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function deriveIdentity(seed: string): DiskIdentity {
  return {
    diskGuid: derivedUuid(seed, 'gpt-disk'),
    biosBootGuid: derivedUuid(seed, 'gpt-bios-boot'),
    espGuid: derivedUuid(seed, 'gpt-esp'),
    rootGuid: derivedUuid(seed, 'gpt-root'),
    rootFsUuid: derivedUuid(seed, 'ext4-root'),
    espVolumeId: createHash('sha256').update(`${seed}\0fat-volume-id`).digest('hex').slice(0, 8).toUpperCase(),
    rootHashSeed: derivedUuid(seed, 'ext4-hash-seed'),
    vmdkCid: createHash('sha256').update(`${seed}\0vmdk-cid`).digest().readUInt32BE(0),
  };
}

/** The form blkid and fstab use for a FAT volume id. */
export function fatUuid(volumeId: string): string {
  return `${volumeId.slice(0, 4)}-${volumeId.slice(4, 8)}`;
}

/**
 * The time written into the output wherever a format wants one (ext4 superblock and inode times, FAT entries, file
 * mtimes newer than it are clamped to it): SOURCE_DATE_EPOCH when set, else the image's creation date, else none
 * (the clock decides and the output is not reproducible). A malformed SOURCE_DATE_EPOCH is an error, as the
 * reproducible-builds specification asks.
 */
export function buildEpoch(sourceDateEpoch: string | undefined, imageCreated: string | undefined): number | undefined {
  if (sourceDateEpoch !== undefined && sourceDateEpoch !== '') {
    if (!/^[0-9]{1,12}$/.test(sourceDateEpoch.trim())) {
      throw new C2vError('usage', `SOURCE_DATE_EPOCH must be a whole number of seconds since 1970 (like 1700000000), got "${sourceDateEpoch.slice(0, 40)}"`);
    }
    return Number(sourceDateEpoch.trim());
  }
  if (!imageCreated) return undefined;
  const ms = Date.parse(imageCreated);
  // Docker reports 0001-01-01T00:00:00Z for images without a date (e.g. some imported ones).
  if (!Number.isFinite(ms) || ms <= 0) return undefined;
  return Math.floor(ms / 1000);
}
