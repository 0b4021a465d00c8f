import { createHash } from 'node:crypto';
import { C2vError } from '../errors.js';

/**
 * streamOptimized VMDK (VMware "Virtual Disk Format 5.0", monolithic sparse extent with compressed grains and
 * markers), the only disk format vSphere accepts inside an OVA. The file is produced front to back with no
 * seeking, so it can be hashed while written and later streamed into a tar. See shared/FORMATS.md for the
 * requirements every line below serves.
 */

export const SECTOR = 512;
export const GRAIN_BYTES = 65536;
export const GRAIN_SECTORS = GRAIN_BYTES / SECTOR;
export const GTES_PER_GT = 512;
export const DESCRIPTOR_OFFSET = 1;
export const DESCRIPTOR_SECTORS = 20;
/**
 * Grain data starts at the first grain boundary after header and descriptor (sector 128), as VMware's and qemu's
 * writers lay it out; overHead in the header says so, and readers that trust it find the first grain there.
 */
export const OVERHEAD_SECTORS = Math.ceil((DESCRIPTOR_OFFSET + DESCRIPTOR_SECTORS) / GRAIN_SECTORS) * GRAIN_SECTORS;
/** Header gdOffset meaning "read the footer": the GD is only known once every grain has been written. */
export const GD_AT_END = 0xffffffffffffffffn;
/** Grain-table entries and GD entries are u32 sector numbers, which bounds both the disk and the file at 2 TiB. */
export const MAX_CAPACITY_BYTES = 2 ** 32 * SECTOR;
/**
 * libdeflate's level 5: on the example VM 17% faster than 6 and still smaller than qemu-img's zlib level 6
 * (225.2 against 226.7 MB); level 4 is larger than qemu-img's. `npm run bench` prints the curve.
 */
export const DEFAULT_COMPRESS_LEVEL = 5;

const MAGIC_KDMV = 0x564d444b; // "KDMV" read as a little-endian u32
const VERSION = 3; // ESXi refuses older versions for streamOptimized ("sparse VMDK version too old")
const FLAG_NEWLINE_TEST = 1 << 0;
const FLAG_COMPRESSED = 1 << 16;
const FLAG_MARKERS = 1 << 17;
const COMPRESS_DEFLATE = 1;
const GT_SECTORS = (GTES_PER_GT * 4) / SECTOR;
const GRAIN_PREFIX_BYTES = 12; // lba u64 + size u32

export type AdapterType = 'lsilogic' | 'ide' | 'buslogic' | 'legacyESX';
const ADAPTER_TYPES: readonly AdapterType[] = ['lsilogic', 'ide', 'buslogic', 'legacyESX'];

export const MARKER = { EOS: 0, GRAIN_TABLE: 1, GRAIN_DIRECTORY: 2, FOOTER: 3 } as const;
export type MarkerType = (typeof MARKER)[keyof typeof MARKER];

export interface VmdkOptions {
  /** Virtual disk size; a multiple of 512, at most 2 TiB. */
  capacityBytes: number;
  /** Name written in the extent line, e.g. "myapp-disk1.vmdk". */
  fileName: string;
  /** Default 'lsilogic'. */
  adapterType?: AdapterType;
  /** ddb.virtualHWVersion; the caller's, so the default lives in plan/vsphere-hardware.ts only. */
  virtualHwVersion: number;
  /** 32-bit content id; default derived from the other options so output is reproducible. */
  cid?: number;
  /** 32 hex digits; default derived too, ending in the CID as VMware's own descriptors do. */
  longContentId?: string;
  /** Deflate level 1..9, default 5 (DEFAULT_COMPRESS_LEVEL). */
  compressLevel?: number;
}

interface ResolvedOptions {
  capacityBytes: number;
  capacitySectors: number;
  fileName: string;
  adapterType: AdapterType;
  virtualHwVersion: number;
  cid: number;
  longContentId: string;
  compressLevel: number;
}

export interface Geometry {
  cylinders: number;
  heads: number;
  sectors: number;
}

/**
 * The CHS geometry VMware writes for a disk of this size: 255 heads x 63 sectors for SCSI adapters, 16 x 63
 * for IDE, cylinders rounded down and capped at what the controller can address.
 */
export function vmdkGeometry(capacityBytes: number, adapterType: AdapterType = 'lsilogic'): Geometry {
  const ide = adapterType === 'ide';
  const heads = ide ? 16 : 255;
  const sectors = 63;
  const maxCylinders = ide ? 16383 : 65535;
  const cylinders = Math.floor(capacityBytes / SECTOR / (heads * sectors));
  return { cylinders: Math.max(1, Math.min(maxCylinders, cylinders)), heads, sectors };
}

/** Padding after a grain's data, up to the next sector boundary. */
const ZERO_SECTOR = Buffer.alloc(SECTOR);

function resolveOptions(opts: VmdkOptions): ResolvedOptions {
  const problems: string[] = [];
  const { capacityBytes, fileName } = opts;
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0 || capacityBytes % SECTOR !== 0) {
    problems.push(`capacityBytes must be a positive multiple of ${SECTOR} (got ${capacityBytes})`);
  } else if (capacityBytes > MAX_CAPACITY_BYTES) {
    problems.push(`capacityBytes ${capacityBytes} exceeds the 2 TiB limit of a sparse VMDK extent`);
  }
  // The name sits between double quotes on one descriptor line.
  if (typeof fileName !== 'string' || fileName === '' || /["\r\n\0]/.test(fileName)) {
    problems.push(`fileName must be non-empty without quotes, newlines or NUL (got ${JSON.stringify(fileName)})`);
  }
  const adapterType = opts.adapterType ?? 'lsilogic';
  if (!ADAPTER_TYPES.includes(adapterType)) {
    problems.push(`adapterType must be one of ${ADAPTER_TYPES.join(', ')} (got ${String(adapterType)})`);
  }
  const { virtualHwVersion } = opts;
  if (!Number.isInteger(virtualHwVersion) || virtualHwVersion < 4) {
    problems.push(`virtualHwVersion must be an integer >= 4 (got ${virtualHwVersion})`);
  }
  if (opts.cid !== undefined && (!Number.isInteger(opts.cid) || opts.cid < 0 || opts.cid > 0xffffffff)) {
    problems.push(`cid must be a 32-bit unsigned integer (got ${opts.cid})`);
  }
  if (opts.longContentId !== undefined && !/^[0-9a-f]{32}$/i.test(opts.longContentId)) {
    problems.push(`longContentId must be 32 hex digits (got ${JSON.stringify(opts.longContentId)})`);
  }
  const compressLevel = opts.compressLevel ?? DEFAULT_COMPRESS_LEVEL;
  if (!Number.isInteger(compressLevel) || compressLevel < 1 || compressLevel > 9) {
    problems.push(`compressLevel must be an integer 1..9 (got ${compressLevel})`);
  }
  if (problems.length > 0) {
    throw new C2vError('input', `invalid VMDK options: ${problems.join('; ')}`);
  }

  // Derived from what defines the disk, not from the clock, so the same build gives the same bytes.
  const digest = createHash('sha256')
    .update(JSON.stringify(['c2v-vmdk', capacityBytes, fileName, adapterType, virtualHwVersion]))
    .digest();
  let cid = opts.cid ?? digest.readUInt32BE(0);
  // ffffffff means "no parent" in parentCID; never let a derived CID look like it.
  if (opts.cid === undefined && cid === 0xffffffff) cid = 0xfffffffe;
  const cidHex = cid.toString(16).padStart(8, '0');
  const longContentId = (opts.longContentId ?? digest.subarray(4, 16).toString('hex') + cidHex).toLowerCase();

  return {
    capacityBytes,
    capacitySectors: capacityBytes / SECTOR,
    fileName,
    adapterType,
    virtualHwVersion,
    cid,
    longContentId,
    compressLevel,
  };
}

/** The embedded text descriptor: exactly DESCRIPTOR_SECTORS sectors, NUL padded. */
export function encodeDescriptor(opts: VmdkOptions): Buffer {
  const o = resolveOptions(opts);
  const geo = vmdkGeometry(o.capacityBytes, o.adapterType);
  const text = [
    '# Disk DescriptorFile',
    'version=1',
    'encoding="UTF-8"',
    `CID=${o.cid.toString(16).padStart(8, '0')}`,
    'parentCID=ffffffff',
    'createType="streamOptimized"',
    '',
    '# Extent description',
    `RW ${o.capacitySectors} SPARSE "${o.fileName}"`,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    `ddb.adapterType = "${o.adapterType}"`,
    `ddb.geometry.cylinders = "${geo.cylinders}"`,
    `ddb.geometry.heads = "${geo.heads}"`,
    `ddb.geometry.sectors = "${geo.sectors}"`,
    `ddb.longContentID = "${o.longContentId}"`,
    // "4" with the maximum version marks the guest tools as unmanaged (open-vm-tools from the distro).
    'ddb.toolsInstallType = "4"',
    'ddb.toolsVersion = "2147483647"',
    `ddb.virtualHWVersion = "${o.virtualHwVersion}"`,
    '',
  ].join('\n');
  const out = Buffer.alloc(DESCRIPTOR_SECTORS * SECTOR);
  const written = out.write(text, 'utf8');
  // Readers NUL-terminate the last byte of the area, so the text must leave at least one NUL behind it.
  if (Buffer.byteLength(text, 'utf8') >= out.length || written !== Buffer.byteLength(text, 'utf8')) {
    throw new C2vError('input', `VMDK descriptor does not fit in ${DESCRIPTOR_SECTORS} sectors (file name too long?)`);
  }
  return out;
}

export interface HeaderFields {
  capacityBytes: number;
  /** Sector of the grain directory, or GD_AT_END in the leading header of a stream. */
  gdOffset: bigint;
  /** Sectors before the first grain; default OVERHEAD_SECTORS. */
  overHead?: number;
}

/** The 512-byte SparseExtentHeader, used both as the first sector and as the footer. */
export function encodeHeader(fields: HeaderFields): Buffer {
  const { capacityBytes, gdOffset } = fields;
  const overHead = fields.overHead ?? OVERHEAD_SECTORS;
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes <= 0 || capacityBytes % SECTOR !== 0) {
    throw new C2vError('input', `capacityBytes must be a positive multiple of ${SECTOR} (got ${capacityBytes})`);
  }
  const h = Buffer.alloc(SECTOR);
  h.writeUInt32LE(MAGIC_KDMV, 0);
  h.writeUInt32LE(VERSION, 4);
  h.writeUInt32LE(FLAG_NEWLINE_TEST | FLAG_COMPRESSED | FLAG_MARKERS, 8);
  h.writeBigUInt64LE(BigInt(capacityBytes / SECTOR), 12);
  h.writeBigUInt64LE(BigInt(GRAIN_SECTORS), 20);
  h.writeBigUInt64LE(BigInt(DESCRIPTOR_OFFSET), 28);
  h.writeBigUInt64LE(BigInt(DESCRIPTOR_SECTORS), 36);
  h.writeUInt32LE(GTES_PER_GT, 44);
  h.writeBigUInt64LE(0n, 48); // rgdOffset: no redundant GD in a stream
  h.writeBigUInt64LE(gdOffset, 56);
  h.writeBigUInt64LE(BigInt(overHead), 64);
  h.writeUInt8(0, 72); // uncleanShutdown
  // Newline-test bytes: a transfer that rewrote line endings would corrupt them, and readers check.
  h.write('\n \r\n', 73, 'latin1');
  h.writeUInt16LE(COMPRESS_DEFLATE, 77);
  return h;
}

/** A metadata marker sector: numSectors of the block that follows, size 0, then the type. */
export function encodeMarker(type: MarkerType, numSectors: number | bigint): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(numSectors), 0);
  m.writeUInt32LE(0, 8);
  m.writeUInt32LE(type, 12);
  return m;
}

/**
 * The stream layout as a state machine, with no compression and no I/O of its own: start() gives the leading
 * sectors, grain() takes one already compressed grain (ascending index, never an all-zero grain) and returns what
 * goes into the file for it (a closed grain table first when the grain opens a new 512-grain group), finish()
 * gives the grain directory, footer and end-of-stream marker. Compression belongs to the caller
 * (stages/vmdk.ts hands grains to a worker pool), so the bytes do not depend on where or when grains deflate.
 */
export class StreamOptimizedEncoder {
  private readonly o: ResolvedOptions;
  private readonly grainCount: number;
  private readonly gdSectors: number;
  private readonly gd: Buffer;
  private readonly gt = Buffer.alloc(GT_SECTORS * SECTOR);
  private sector = OVERHEAD_SECTORS;
  private openGroup = -1;
  private previous = -1;
  private state: 'new' | 'grains' | 'done' = 'new';
  /** Grains stored so far. */
  grains = 0;

  constructor(private readonly opts: VmdkOptions) {
    this.o = resolveOptions(opts);
    this.grainCount = Math.ceil(this.o.capacitySectors / GRAIN_SECTORS);
    this.gdSectors = Math.ceil((Math.ceil(this.grainCount / GTES_PER_GT) * 4) / SECTOR);
    this.gd = Buffer.alloc(this.gdSectors * SECTOR);
  }

  get options(): Readonly<{ compressLevel: number; capacityBytes: number }> {
    return this.o;
  }

  /** Header, descriptor and the padding up to the first grain boundary. */
  start(): Buffer[] {
    if (this.state !== 'new') throw new Error('StreamOptimizedEncoder.start() called twice');
    this.state = 'grains';
    return [
      encodeHeader({ capacityBytes: this.o.capacityBytes, gdOffset: GD_AT_END, overHead: OVERHEAD_SECTORS }),
      encodeDescriptor(this.opts),
      Buffer.alloc((OVERHEAD_SECTORS - DESCRIPTOR_OFFSET - DESCRIPTOR_SECTORS) * SECTOR),
    ];
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index <= this.previous || index >= this.grainCount) {
      throw new RangeError(`grain index ${index} is out of order or beyond the disk (previous ${this.previous}, grains ${this.grainCount})`);
    }
  }

  /**
   * The bytes for one compressed grain (a zlib stream of the full 64 KiB), preceded by a grain table if one
   * closes. The data is passed through, not copied: consume the pieces before reusing its buffer.
   */
  grain(index: number, compressed: Uint8Array): Buffer[] {
    if (this.state !== 'grains') throw new Error('StreamOptimizedEncoder.grain() outside start()..finish()');
    this.checkIndex(index);
    this.previous = index;
    const out: Buffer[] = [];
    const group = Math.floor(index / GTES_PER_GT);
    if (group !== this.openGroup) {
      this.closeGroup(out);
      this.openGroup = group;
    }
    // Stored as lba (sectors) and compressed size, the zlib stream, zero padding to a sector; the data is not copied.
    const total = Math.ceil((GRAIN_PREFIX_BYTES + compressed.length) / SECTOR) * SECTOR;
    const prefix = Buffer.alloc(GRAIN_PREFIX_BYTES);
    prefix.writeBigUInt64LE(BigInt(index) * BigInt(GRAIN_SECTORS), 0);
    prefix.writeUInt32LE(compressed.length, 8);
    this.gt.writeUInt32LE(this.sectorRef(this.sector), (index % GTES_PER_GT) * 4);
    this.sector += total / SECTOR;
    this.grains += 1;
    const data = Buffer.from(compressed.buffer, compressed.byteOffset, compressed.length);
    out.push(prefix, data, ZERO_SECTOR.subarray(0, total - GRAIN_PREFIX_BYTES - compressed.length));
    return out;
  }

  /** The last grain table, the grain directory, the footer and the end-of-stream marker. */
  finish(): Buffer[] {
    if (this.state !== 'grains') throw new Error('StreamOptimizedEncoder.finish() without start() or twice');
    this.state = 'done';
    const out: Buffer[] = [];
    this.closeGroup(out);
    out.push(encodeMarker(MARKER.GRAIN_DIRECTORY, this.gdSectors));
    this.sector += 1;
    const gdOffset = BigInt(this.sectorRef(this.sector));
    out.push(this.gd);
    this.sector += this.gdSectors;
    out.push(encodeMarker(MARKER.FOOTER, 1));
    out.push(encodeHeader({ capacityBytes: this.o.capacityBytes, gdOffset, overHead: OVERHEAD_SECTORS }));
    out.push(encodeMarker(MARKER.EOS, 0));
    return out;
  }

  private sectorRef(s: number): number {
    if (s > 0xffffffff) {
      throw new C2vError('input', 'the compressed VMDK would exceed 2 TiB, beyond what its u32 sector offsets address');
    }
    return s;
  }

  private closeGroup(out: Buffer[]): void {
    if (this.openGroup < 0) return;
    out.push(encodeMarker(MARKER.GRAIN_TABLE, GT_SECTORS));
    this.sector += 1;
    this.gd.writeUInt32LE(this.sectorRef(this.sector), this.openGroup * 4);
    out.push(Buffer.from(this.gt));
    this.sector += GT_SECTORS;
    this.gt.fill(0);
    this.openGroup = -1;
  }
}
