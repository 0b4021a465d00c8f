/**
 * A GPT reader for tests (UEFI specification, "GUID Partition Table (GPT) Disk Layout"). Like vmdk-reader.ts it
 * shares no code with src/formats/gpt.ts, CRC included, so a misreading of the spec in the writer is not mirrored.
 */

const SECTOR = 512;
const SIGNATURE = 'EFI PART';
const MIN_HEADER_SIZE = 92;
const MIN_ENTRY_SIZE = 128;
const NAME_BYTES = 72;
const NIL_GUID = '00000000-0000-0000-0000-000000000000';

export class GptFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GptFormatError';
  }
}

let table: Uint32Array | undefined;

/** Table-driven CRC32 (IEEE 802.3, reflected), as the spec requires. */
export function crc32Table(buf: Uint8Array): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < buf.length; i++) crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The 16 bytes of a GUID as text: the first three fields are stored little-endian, the last two as bytes. */
export function bytesToGuid(b: Buffer): string {
  if (b.length < 16) throw new RangeError(`a GUID is 16 bytes, got ${b.length}`);
  const x = Buffer.from(b.subarray(0, 16));
  x.subarray(0, 4).reverse();
  x.subarray(4, 6).reverse();
  x.subarray(6, 8).reverse();
  const h = x.toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface GptHeader {
  revision: number;
  headerSize: number;
  headerCrc32: number;
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  partitionEntryLba: number;
  numberOfPartitionEntries: number;
  sizeOfPartitionEntry: number;
  partitionEntryArrayCrc32: number;
}

export interface GptPartitionEntry {
  /** Position in the entry array, from 0; partition N in Linux is index N-1. */
  index: number;
  typeGuid: string;
  uuid: string;
  firstLba: number;
  lastLba: number;
  attributes: bigint;
  name: string;
}

export interface ParseGptOptions {
  /**
   * Where the header sits in the buffer: 'primary' (default) for LBA 1-33 as read from the start of the disk
   * (header first), 'backup' for the last 33 LBAs (entries first, header last).
   */
  copy?: 'primary' | 'backup';
}

function u64(b: Buffer, off: number, field: string): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GptFormatError(`GPT ${field} ${v} is out of range`);
  return Number(v);
}

/** Validates signature, revision, header CRC and entry-array CRC; returns the used entries only. */
export function parseGpt(buf: Buffer, opts: ParseGptOptions = {}): { header: GptHeader; partitions: GptPartitionEntry[] } {
  const copy = opts.copy ?? 'primary';
  if (buf.length < SECTOR || buf.length % SECTOR !== 0) {
    throw new GptFormatError(`GPT buffer must be a whole number of ${SECTOR}-byte sectors, got ${buf.length} bytes`);
  }
  const headerOffset = copy === 'primary' ? 0 : buf.length - SECTOR;
  const h = buf.subarray(headerOffset, headerOffset + SECTOR);

  if (h.toString('latin1', 0, 8) !== SIGNATURE) throw new GptFormatError(`no GPT signature in the ${copy} header`);
  const revision = h.readUInt32LE(8);
  // The spec lets minor revisions add fields past 92 bytes; a different major revision is a different format.
  if (revision >>> 16 !== 1) {
    throw new GptFormatError(`unsupported GPT revision 0x${revision.toString(16).padStart(8, '0')}`);
  }
  const headerSize = h.readUInt32LE(12);
  if (headerSize < MIN_HEADER_SIZE || headerSize > SECTOR) {
    throw new GptFormatError(`GPT header size ${headerSize} is outside ${MIN_HEADER_SIZE}-${SECTOR}`);
  }
  const headerCrc32 = h.readUInt32LE(16);
  const zeroed = Buffer.from(h.subarray(0, headerSize));
  zeroed.writeUInt32LE(0, 16);
  const computed = crc32Table(zeroed);
  if (computed !== headerCrc32) {
    throw new GptFormatError(`GPT ${copy} header CRC mismatch: stored 0x${headerCrc32.toString(16)}, computed 0x${computed.toString(16)}`);
  }

  const header: GptHeader = {
    revision,
    headerSize,
    headerCrc32,
    myLba: u64(h, 24, 'MyLBA'),
    alternateLba: u64(h, 32, 'AlternateLBA'),
    firstUsableLba: u64(h, 40, 'FirstUsableLBA'),
    lastUsableLba: u64(h, 48, 'LastUsableLBA'),
    diskGuid: bytesToGuid(h.subarray(56, 72)),
    partitionEntryLba: u64(h, 72, 'PartitionEntryLBA'),
    numberOfPartitionEntries: h.readUInt32LE(80),
    sizeOfPartitionEntry: h.readUInt32LE(84),
    partitionEntryArrayCrc32: h.readUInt32LE(88),
  };

  if (copy === 'primary' && header.myLba !== 1) {
    throw new GptFormatError(`primary GPT header says it is at LBA ${header.myLba}, not 1`);
  }
  const entrySize = header.sizeOfPartitionEntry;
  const ratio = entrySize / MIN_ENTRY_SIZE;
  // The spec requires 128 x 2^n.
  if (!Number.isInteger(ratio) || ratio < 1 || (ratio & (ratio - 1)) !== 0) {
    throw new GptFormatError(`GPT partition entry size ${entrySize} is not 128 x 2^n`);
  }

  // The buffer's first sector is at this LBA; the entries are located relative to it.
  const bufferStartLba = header.myLba - headerOffset / SECTOR;
  const entriesOffset = (header.partitionEntryLba - bufferStartLba) * SECTOR;
  const entriesLength = header.numberOfPartitionEntries * entrySize;
  if (entriesOffset < 0 || entriesOffset + entriesLength > buf.length) {
    throw new GptFormatError(
      `GPT ${copy} entries (LBA ${header.partitionEntryLba}, ${entriesLength} bytes) are not inside the buffer given`,
    );
  }
  const entries = buf.subarray(entriesOffset, entriesOffset + entriesLength);
  const entriesCrc = crc32Table(entries);
  if (entriesCrc !== header.partitionEntryArrayCrc32) {
    throw new GptFormatError(
      `GPT ${copy} partition entries CRC mismatch: stored 0x${header.partitionEntryArrayCrc32.toString(16)}, ` +
        `computed 0x${entriesCrc.toString(16)}`,
    );
  }

  const partitions: GptPartitionEntry[] = [];
  for (let i = 0; i < header.numberOfPartitionEntries; i++) {
    const e = entries.subarray(i * entrySize, (i + 1) * entrySize);
    const typeGuid = bytesToGuid(e.subarray(0, 16));
    if (typeGuid === NIL_GUID) continue;
    const rawName = e.toString('utf16le', 56, 56 + NAME_BYTES);
    const nul = rawName.indexOf('\u0000');
    partitions.push({
      index: i,
      typeGuid,
      uuid: bytesToGuid(e.subarray(16, 32)),
      firstLba: u64(e, 32, 'StartingLBA'),
      lastLba: u64(e, 40, 'EndingLBA'),
      attributes: e.readBigUInt64LE(48),
      name: nul === -1 ? rawName : rawName.slice(0, nul),
    });
  }
  return { header, partitions };
}
