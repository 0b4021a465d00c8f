/**
 * GUID Partition Table encoding (UEFI specification, "GUID Partition Table (GPT) Disk Layout").
 * Pure: returns the bytes; the caller decides where they go in the image file.
 */
import * as zlib from 'node:zlib';
import { normalizeGuid, SECTOR, type DiskLayout } from '../plan/layout.js';

const SIGNATURE = 'EFI PART';
const REVISION_1_0 = 0x0001_0000;
const HEADER_SIZE = 92;
const ENTRY_COUNT = 128;
const ENTRY_SIZE = 128;
const ENTRIES_SECTORS = (ENTRY_COUNT * ENTRY_SIZE) / SECTOR;
const NAME_BYTES = 72;

// Header field offsets (UEFI spec table "GPT Header").
const H_SIGNATURE = 0;
const H_REVISION = 8;
const H_HEADER_SIZE = 12;
const H_HEADER_CRC = 16;
const H_MY_LBA = 24;
const H_ALTERNATE_LBA = 32;
const H_FIRST_USABLE = 40;
const H_LAST_USABLE = 48;
const H_DISK_GUID = 56;
const H_ENTRIES_LBA = 72;
const H_ENTRY_COUNT = 80;
const H_ENTRY_SIZE = 84;
const H_ENTRIES_CRC = 88;

// Partition entry field offsets (UEFI spec table "GPT Partition Entry").
const E_TYPE = 0;
const E_UNIQUE = 16;
const E_FIRST = 32;
const E_LAST = 40;
const E_ATTRIBUTES = 48;
const E_NAME = 56;

// ---------------------------------------------------------------------------------------------------------------
// CRC32 (IEEE 802.3, reflected, as the UEFI spec requires)

/** zlib's, present in every Node c2v supports (package.json engines: >= 20.19; it came in 20.15). */
export function crc32(buf: Uint8Array): number {
  return zlib.crc32(buf) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------------
// GUIDs: the first three fields are stored little-endian, the last two as a byte string.

export function guidToBytes(guid: string): Buffer {
  const norm = normalizeGuid(guid);
  if (norm === undefined) throw new TypeError(`not a GUID: ${JSON.stringify(guid)}`);
  const hex = norm.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

// ---------------------------------------------------------------------------------------------------------------
// Protective MBR

/** CHS with the 255-head, 63-sector geometry every current tool assumes; 0xFFFFFF when out of reach, as the spec says. */
function chs(lba: number): [number, number, number] {
  const heads = 255;
  const sectors = 63;
  const cylinder = Math.floor(lba / (heads * sectors));
  if (cylinder > 1023) return [0xff, 0xff, 0xff];
  const head = Math.floor(lba / sectors) % heads;
  const sector = (lba % sectors) + 1;
  return [head, sector | ((cylinder >> 8) << 6), cylinder & 0xff];
}

/** The legacy MBR that makes MBR-only tools see one partition covering the disk instead of free space. */
export function encodeProtectiveMbr(totalSectors: number): Buffer {
  if (!Number.isSafeInteger(totalSectors) || totalSectors < 2) {
    throw new RangeError(`a GPT disk needs at least 2 sectors, got ${totalSectors}`);
  }
  const mbr = Buffer.alloc(SECTOR);
  const rec = 0x1be;
  mbr[rec] = 0x00; // not bootable: UEFI firmware ignores the flag and a BIOS loads LBA 0 regardless
  Buffer.from([0x00, 0x02, 0x00]).copy(mbr, rec + 1); // CHS of LBA 1
  mbr[rec + 4] = 0xee;
  Buffer.from(chs(totalSectors - 1)).copy(mbr, rec + 5);
  mbr.writeUInt32LE(1, rec + 8);
  mbr.writeUInt32LE(Math.min(totalSectors - 1, 0xffffffff), rec + 12);
  mbr[0x1fe] = 0x55;
  mbr[0x1ff] = 0xaa;
  return mbr;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

function encodeName(name: string): Buffer {
  const b = Buffer.alloc(NAME_BYTES);
  const enc = Buffer.from(name, 'utf16le');
  if (enc.length > NAME_BYTES) {
    throw new RangeError(`partition name ${JSON.stringify(name)} is longer than ${NAME_BYTES / 2} UTF-16 code units`);
  }
  enc.copy(b);
  return b;
}

function encodeEntries(layout: DiskLayout): Buffer {
  if (layout.partitions.length > ENTRY_COUNT) {
    throw new RangeError(`at most ${ENTRY_COUNT} partitions fit the entry array, got ${layout.partitions.length}`);
  }
  const entries = Buffer.alloc(ENTRY_COUNT * ENTRY_SIZE);
  layout.partitions.forEach((p, i) => {
    const e = entries.subarray(i * ENTRY_SIZE, (i + 1) * ENTRY_SIZE);
    guidToBytes(p.typeGuid).copy(e, E_TYPE);
    guidToBytes(p.uuid).copy(e, E_UNIQUE);
    e.writeBigUInt64LE(BigInt(p.firstLba), E_FIRST);
    e.writeBigUInt64LE(BigInt(p.lastLba), E_LAST);
    e.writeBigUInt64LE(0n, E_ATTRIBUTES);
    encodeName(p.name).copy(e, E_NAME);
  });
  return entries;
}

function encodeHeader(
  layout: DiskLayout,
  myLba: number,
  alternateLba: number,
  entriesLba: number,
  entriesCrc: number,
): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.write(SIGNATURE, H_SIGNATURE, 'latin1');
  h.writeUInt32LE(REVISION_1_0, H_REVISION);
  h.writeUInt32LE(HEADER_SIZE, H_HEADER_SIZE);
  h.writeBigUInt64LE(BigInt(myLba), H_MY_LBA);
  h.writeBigUInt64LE(BigInt(alternateLba), H_ALTERNATE_LBA);
  h.writeBigUInt64LE(BigInt(1 + 1 + ENTRIES_SECTORS), H_FIRST_USABLE);
  h.writeBigUInt64LE(BigInt(layout.totalSectors - 1 - ENTRIES_SECTORS - 1), H_LAST_USABLE);
  guidToBytes(layout.diskGuid).copy(h, H_DISK_GUID);
  h.writeBigUInt64LE(BigInt(entriesLba), H_ENTRIES_LBA);
  h.writeUInt32LE(ENTRY_COUNT, H_ENTRY_COUNT);
  h.writeUInt32LE(ENTRY_SIZE, H_ENTRY_SIZE);
  h.writeUInt32LE(entriesCrc, H_ENTRIES_CRC);
  h.writeUInt32LE(crc32(h.subarray(0, HEADER_SIZE)), H_HEADER_CRC);
  return h;
}

function checkLayout(layout: DiskLayout): void {
  const total = layout.totalSectors;
  const firstUsable = 2 + ENTRIES_SECTORS;
  const lastUsable = total - 2 - ENTRIES_SECTORS;
  if (layout.sectorSize !== SECTOR) throw new RangeError(`only ${SECTOR}-byte sectors are supported`);
  if (!Number.isSafeInteger(total) || lastUsable < firstUsable) {
    throw new RangeError(`a disk of ${total} sectors has no room for a GPT`);
  }
  const sorted = [...layout.partitions].sort((a, b) => a.firstLba - b.firstLba);
  sorted.forEach((p, i) => {
    if (p.firstLba < firstUsable || p.lastLba > lastUsable || p.lastLba < p.firstLba) {
      throw new RangeError(
        `partition ${p.role} (LBA ${p.firstLba}-${p.lastLba}) is outside the usable range ${firstUsable}-${lastUsable}`,
      );
    }
    const prev = sorted[i - 1];
    if (prev !== undefined && p.firstLba <= prev.lastLba) {
      throw new RangeError(`partitions ${prev.role} and ${p.role} overlap`);
    }
  });
}

/**
 * The primary GPT (header at LBA 1, entries at LBA 2-33) and the backup (entries at total-33, header at the last
 * LBA). The backup header swaps MyLBA and AlternateLBA and points at the backup entries, so either copy alone
 * describes the disk.
 */
export function encodeGpt(layout: DiskLayout): { primary: Buffer; backup: Buffer; backupOffsetBytes: number } {
  checkLayout(layout);
  const total = layout.totalSectors;
  const entries = encodeEntries(layout);
  const entriesCrc = crc32(entries);
  const lastLba = total - 1;
  const backupEntriesLba = lastLba - ENTRIES_SECTORS;

  const primaryHeader = encodeHeader(layout, 1, lastLba, 2, entriesCrc);
  const backupHeader = encodeHeader(layout, lastLba, 1, backupEntriesLba, entriesCrc);
  return {
    primary: Buffer.concat([primaryHeader, entries]),
    backup: Buffer.concat([entries, backupHeader]),
    backupOffsetBytes: backupEntriesLba * SECTOR,
  };
}
