import { createHash } from 'node:crypto';

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
