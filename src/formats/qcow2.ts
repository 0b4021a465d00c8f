/**
 * A compressed qcow2 (version 3, "compat 1.1") image laid out for a writer that makes one pass over the disk:
 *
 *   [header cluster][compressed clusters, back to back, in guest order][L2 tables][L1 table][refcount table][refcount blocks]
 *
 * Everything after the data depends only on where the data ended and which guest clusters it holds, so the
 * metadata is computed once the data is written and appended; only the header is rewritten at offset 0.
 * Pure code: no I/O. The format is QEMU's docs/interop/qcow2.txt; all numbers are big-endian.
 */
import { C2vError } from '../errors.js';

export const CLUSTER_BITS = 16;
/** One VMDK grain, so a grain the deflate pool compressed is exactly one compressed cluster. */
export const CLUSTER_BYTES = 1 << CLUSTER_BITS;
export const SECTOR = 512;
/** 64-bit entries per L2 table: one table maps 512 MiB of guest space. */
export const L2_ENTRIES = CLUSTER_BYTES / 8;
/** 16-bit refcounts: what QEMU writes by default, and wide enough for many compressed clusters per host cluster. */
export const REFCOUNT_ORDER = 4;
const REFCOUNT_MAX = 0xffff;
/** One refcount block covers 2 GiB of host file. */
export const REFCOUNTS_PER_BLOCK = (CLUSTER_BYTES * 8) >> REFCOUNT_ORDER;
/** Entries per refcount-table cluster. */
const TABLE_ENTRIES = CLUSTER_BYTES / 8;
/** The version 3 header up to header_length; no optional fields (compression_type absent means zlib). */
export const HEADER_LENGTH = 104;
const MAGIC = 0x514649fb;

/** L1/L2 bit 63: the entry's cluster has refcount exactly 1, so QEMU may write it in place. */
const COPIED = 1n << 63n;
/** L2 bit 62: the descriptor is a compressed one. */
const COMPRESSED = 1n << 62n;
/** Bit x = 62 - (cluster_bits - 8) splits a compressed descriptor into host offset (below) and extra sectors (above). */
const CSIZE_SHIFT = 62 - (CLUSTER_BITS - 8);
const CSIZE_MASK = (1 << (CLUSTER_BITS - 8)) - 1;
/** Compressed data must start below 2^54 (16 PiB); also keeps offsets exact as JS numbers. */
const MAX_COMPRESSED_OFFSET = 2 ** CSIZE_SHIFT;

export interface Qcow2Header {
  virtualSize: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
}

/**
 * The whole first cluster. The zero bytes after the 104-byte header double as the end-of-extensions marker
 * (type 0), and keep the rest of the cluster clean as the spec wants (backing file names would go there).
 */
export function encodeHeader(h: Qcow2Header): Buffer {
  const b = Buffer.alloc(CLUSTER_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt32BE(3, 4);
  // 8..19: no backing file.
  b.writeUInt32BE(CLUSTER_BITS, 20);
  b.writeBigUInt64BE(BigInt(h.virtualSize), 24);
  // 32: crypt_method 0.
  b.writeUInt32BE(h.l1Size, 36);
  b.writeBigUInt64BE(BigInt(h.l1TableOffset), 40);
  b.writeBigUInt64BE(BigInt(h.refcountTableOffset), 48);
  b.writeUInt32BE(h.refcountTableClusters, 56);
  // 60..71: no snapshots. 72..95: no incompatible, compatible or autoclear features: a clean image, zlib.
  b.writeUInt32BE(REFCOUNT_ORDER, 96);
  b.writeUInt32BE(HEADER_LENGTH, 100);
  return b;
}

/** L1 entries needed so every guest cluster is addressable; QEMU refuses to open an image with fewer. */
export function l1SizeFor(virtualSize: number): number {
  return Math.ceil(Math.ceil(virtualSize / CLUSTER_BYTES) / L2_ENTRIES);
}

/**
 * The raw deflate data inside a zlib stream (RFC 1950), which is what the deflate pool returns. qcow2 stores raw
 * deflate: QEMU inflates with negative windowBits and would read the zlib header as a corrupt block. The Adler-32
 * trailer is dropped; QEMU stops once it has a full cluster. A preset dictionary would make the data unreadable
 * without it, so it is refused. QEMU's 4 KiB window (windowBits -12) does not limit match distances here: it
 * inflates a whole cluster in one call into one buffer, so matches up to 32 KiB back resolve within it.
 */
export function rawDeflate(zlib: Uint8Array): Uint8Array {
  if (zlib.length < 7) throw new Error(`zlib stream of ${zlib.length} bytes is too short`);
  const cmf = zlib[0];
  const flg = zlib[1];
  if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0) throw new Error('not a zlib deflate stream');
  if (flg & 0x20) throw new Error('zlib stream uses a preset dictionary');
  return zlib.subarray(2, zlib.length - 4);
}

/** Sectors a compressed cluster occupies beyond the one holding its first byte: what the descriptor stores. */
export function extraSectors(offset: number, bytes: number): number {
  return Math.floor((offset + bytes - 1) / SECTOR) - Math.floor(offset / SECTOR);
}

/**
 * The L2 entry of a compressed cluster. Never COPIED: QEMU must not write into shared, unaligned data in place.
 */
export function compressedEntry(offset: number, bytes: number): bigint {
  if (!Number.isSafeInteger(offset) || offset < CLUSTER_BYTES || offset >= MAX_COMPRESSED_OFFSET) {
    throw new RangeError(`compressed cluster offset ${offset} out of range`);
  }
  const extra = extraSectors(offset, bytes);
  if (bytes < 1 || extra > CSIZE_MASK) throw new RangeError(`compressed cluster of ${bytes} bytes does not fit a descriptor`);
  return COMPRESSED | (BigInt(extra) << BigInt(CSIZE_SHIFT)) | BigInt(offset);
}

/** Parses a compressed L2 entry back: host offset and the byte length QEMU reads (to the end of the last sector). */
export function parseCompressedEntry(entry: bigint): { offset: number; readBytes: number } | undefined {
  if ((entry & COMPRESSED) === 0n) return undefined;
  const offset = Number(entry & ((1n << BigInt(CSIZE_SHIFT)) - 1n));
  const sectors = Number((entry >> BigInt(CSIZE_SHIFT)) & BigInt(CSIZE_MASK)) + 1;
  return { offset, readBytes: sectors * SECTOR - (offset % SECTOR) };
}

/** Where the metadata goes once the data ends, in clusters from the start of the file. */
export interface MetadataPlan {
  /** First cluster after the data (data is padded with zeros up to it). */
  firstCluster: number;
  l2Clusters: number;
  l1Cluster: number;
  l1Clusters: number;
  tableCluster: number;
  tableClusters: number;
  blocksCluster: number;
  blocks: number;
  /** Clusters in the whole file; the file is exactly this many clusters long. */
  hostClusters: number;
}

/**
 * Places L2 tables, L1, refcount table and refcount blocks after `dataEnd` bytes. The refcount blocks must also
 * count the metadata, themselves included, so their number is a fixed point: start from none and grow until the
 * blocks cover every cluster. Each step only adds clusters, so it settles (in two or three rounds).
 */
export function planMetadata(dataEnd: number, l2Tables: number, l1Size: number): MetadataPlan {
  const firstCluster = Math.max(1, Math.ceil(dataEnd / CLUSTER_BYTES));
  // At least one L1 cluster even for an empty table, so the header never points at something that is not there.
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / CLUSTER_BYTES));
  let blocks = 0;
  let tableClusters = 0;
  for (;;) {
    const total = firstCluster + l2Tables + l1Clusters + tableClusters + blocks;
    const needBlocks = Math.ceil(total / REFCOUNTS_PER_BLOCK);
    const needTable = Math.ceil(needBlocks / TABLE_ENTRIES);
    if (needBlocks === blocks && needTable === tableClusters) break;
    blocks = needBlocks;
    tableClusters = needTable;
  }
  const l1Cluster = firstCluster + l2Tables;
  const tableCluster = l1Cluster + l1Clusters;
  const blocksCluster = tableCluster + tableClusters;
  return { firstCluster, l2Clusters: l2Tables, l1Cluster, l1Clusters, tableCluster, tableClusters, blocksCluster, blocks, hostClusters: blocksCluster + blocks };
}

/** The finished image: its header and the bytes that follow the data (padding included), in file order. */
export interface Qcow2Tail {
  header: Qcow2Header;
  plan: MetadataPlan;
  /** Bytes of the file; the tail ends exactly there. */
  fileBytes: number;
  /** Every cluster's refcount, as written into the refcount blocks. */
  refcounts: Uint16Array;
  /** From the end of the data to the end of the file. */
  chunks(): Generator<Buffer>;
}

/**
 * Collects the compressed clusters of an image as they are written and then lays out its metadata. Host data
 * refcounts are counted the way `qemu-img check` counts them: each compressed cluster adds one to every host
 * cluster its sector-rounded range touches, so neighbours sharing a host cluster (or a sector) each count.
 */
export class Qcow2Builder {
  readonly l1Size: number;
  /** Compressed clusters added. */
  clusters = 0;
  private readonly guestClusters: number;
  private readonly l2 = new Map<number, Buffer>();
  private refcounts = new Uint16Array(1024);
  private dataEnd = CLUSTER_BYTES;

  constructor(readonly virtualSize: number) {
    if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0 || virtualSize % SECTOR !== 0) {
      throw new C2vError('input', `qcow2 virtual size must be a positive multiple of ${SECTOR} (got ${virtualSize})`);
    }
    this.guestClusters = Math.ceil(virtualSize / CLUSTER_BYTES);
    this.l1Size = l1SizeFor(virtualSize);
    this.refcounts[0] = 1;
  }

  /** Records guest cluster `guest` as `bytes` of raw deflate at host `offset`, which must follow the previous one. */
  addCompressed(guest: number, offset: number, bytes: number): void {
    if (!Number.isInteger(guest) || guest < 0 || guest >= this.guestClusters) throw new RangeError(`guest cluster ${guest} out of range`);
    // Data back to back in one pass is what makes the refcount of every data cluster non-zero (no leaks).
    if (offset < this.dataEnd) throw new RangeError(`compressed cluster at ${offset} overlaps earlier data (ends at ${this.dataEnd})`);
    const entry = compressedEntry(offset, bytes);
    const l1 = Math.floor(guest / L2_ENTRIES);
    let table = this.l2.get(l1);
    if (!table) {
      table = Buffer.alloc(CLUSTER_BYTES);
      this.l2.set(l1, table);
    }
    const at = (guest % L2_ENTRIES) * 8;
    if (table.readBigUInt64BE(at) !== 0n) throw new RangeError(`guest cluster ${guest} added twice`);
    table.writeBigUInt64BE(entry, at);
    const start = offset - (offset % SECTOR);
    const end = start + (extraSectors(offset, bytes) + 1) * SECTOR;
    this.count(Math.floor(start / CLUSTER_BYTES), Math.ceil(end / CLUSTER_BYTES));
    this.dataEnd = offset + bytes;
    this.clusters += 1;
  }

  /** Lays out the metadata after the data, which ends at `dataEnd` bytes (at least where the last cluster ended). */
  finish(dataEnd: number = this.dataEnd): Qcow2Tail {
    if (dataEnd < this.dataEnd) throw new RangeError(`data end ${dataEnd} is before the last compressed cluster's end ${this.dataEnd}`);
    const order = [...this.l2.keys()].sort((a, b) => a - b);
    const plan = planMetadata(dataEnd, order.length, this.l1Size);
    const refcounts = new Uint16Array(plan.hostClusters);
    refcounts.set(this.refcounts.subarray(0, Math.min(this.refcounts.length, plan.firstCluster)));
    refcounts.fill(1, plan.firstCluster);
    const l1 = Buffer.alloc(plan.l1Clusters * CLUSTER_BYTES);
    order.forEach((index, i) => l1.writeBigUInt64BE(COPIED | BigInt((plan.firstCluster + i) * CLUSTER_BYTES), index * 8));
    const table = Buffer.alloc(plan.tableClusters * CLUSTER_BYTES);
    for (let i = 0; i < plan.blocks; i++) table.writeBigUInt64BE(BigInt((plan.blocksCluster + i) * CLUSTER_BYTES), i * 8);
    const header: Qcow2Header = {
      virtualSize: this.virtualSize,
      l1Size: this.l1Size,
      l1TableOffset: plan.l1Cluster * CLUSTER_BYTES,
      refcountTableOffset: plan.tableCluster * CLUSTER_BYTES,
      refcountTableClusters: plan.tableClusters,
    };
    const l2 = this.l2;
    function* chunks(): Generator<Buffer> {
      const pad = plan.firstCluster * CLUSTER_BYTES - dataEnd;
      if (pad > 0) yield Buffer.alloc(pad);
      for (const index of order) yield l2.get(index)!;
      yield l1;
      yield table;
      for (let i = 0; i < plan.blocks; i++) yield encodeRefcountBlock(refcounts, i);
    }
    return { header, plan, fileBytes: plan.hostClusters * CLUSTER_BYTES, refcounts, chunks };
  }

  /** +1 for host clusters [first, end). */
  private count(first: number, end: number): void {
    if (end > this.refcounts.length) {
      const grown = new Uint16Array(Math.max(end, this.refcounts.length * 2));
      grown.set(this.refcounts);
      this.refcounts = grown;
    }
    for (let c = first; c < end; c++) {
      if (this.refcounts[c] === REFCOUNT_MAX) throw new RangeError(`host cluster ${c} would need a refcount above ${REFCOUNT_MAX}`);
      this.refcounts[c] += 1;
    }
  }
}

/** Refcount block `index` of the refcounts, big-endian 16-bit entries; past the end of the file reads 0 (free). */
export function encodeRefcountBlock(refcounts: Uint16Array, index: number): Buffer {
  const b = Buffer.alloc(CLUSTER_BYTES);
  const first = index * REFCOUNTS_PER_BLOCK;
  const end = Math.min(refcounts.length, first + REFCOUNTS_PER_BLOCK);
  for (let c = first; c < end; c++) b.writeUInt16BE(refcounts[c], (c - first) * 2);
  return b;
}
