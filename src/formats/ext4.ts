/**
 * Just enough of ext2/3/4's on-disk layout to find the free blocks: the superblock, the group descriptors and the
 * block bitmaps (kernel.org's "ext4 Data Structures and Algorithms"). Pure: the caller reads the bytes.
 */

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_BYTES = 1024;

const MAGIC = 0xef53;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const RO_COMPAT_GDT_CSUM = 0x10;
const RO_COMPAT_METADATA_CSUM = 0x400;
const BG_BLOCK_UNINIT = 0x2;

export interface Superblock {
  blockSize: number;
  blocksCount: number;
  firstDataBlock: number;
  blocksPerGroup: number;
  groupCount: number;
  descSize: number;
  /** Groups may carry BLOCK_UNINIT (their bitmap was never written). */
  uninitGroups: boolean;
}

export class Ext4FormatError extends Error {}

export function parseSuperblock(sb: Uint8Array): Superblock {
  if (sb.length < SUPERBLOCK_BYTES) throw new Ext4FormatError(`superblock needs ${SUPERBLOCK_BYTES} bytes, got ${sb.length}`);
  const v = new DataView(sb.buffer, sb.byteOffset, sb.byteLength);
  if (v.getUint16(0x38, true) !== MAGIC) throw new Ext4FormatError('no ext2/3/4 superblock (bad magic)');
  const logBlockSize = v.getUint32(0x18, true);
  if (logBlockSize > 6) throw new Ext4FormatError(`implausible block size 2^${10 + logBlockSize}`);
  const incompat = v.getUint32(0x60, true);
  const roCompat = v.getUint32(0x64, true);
  // With meta_bg the descriptors are scattered over the disk; c2v's mke2fs config never enables it.
  if (incompat & INCOMPAT_META_BG) throw new Ext4FormatError('meta_bg filesystems are not supported');
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const blocksCount = v.getUint32(0x4, true) + (is64 ? v.getUint32(0x150, true) * 2 ** 32 : 0);
  const firstDataBlock = v.getUint32(0x14, true);
  const blocksPerGroup = v.getUint32(0x20, true);
  const blockSize = 1024 << logBlockSize;
  if (blocksPerGroup === 0 || blocksPerGroup > blockSize * 8) throw new Ext4FormatError(`implausible blocks per group ${blocksPerGroup}`);
  if (blocksCount <= firstDataBlock) throw new Ext4FormatError(`implausible block count ${blocksCount}`);
  const descSize = is64 ? v.getUint16(0xfe, true) : 32;
  if (descSize < 32 || descSize > blockSize || (descSize & (descSize - 1)) !== 0) throw new Ext4FormatError(`implausible descriptor size ${descSize}`);
  return {
    blockSize,
    blocksCount,
    firstDataBlock,
    blocksPerGroup,
    groupCount: Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup),
    descSize,
    uninitGroups: (roCompat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM)) !== 0,
  };
}

/** Byte offset of the group descriptor table from the start of the filesystem: the block after the superblock's. */
export function descriptorTableOffset(sb: Superblock): number {
  return (sb.firstDataBlock + 1) * sb.blockSize;
}

export interface GroupBitmap {
  group: number;
  /** Block number of the group's block bitmap, or undefined when the group has none written (BLOCK_UNINIT). */
  bitmapBlock?: number;
}

export function parseGroupDescriptors(sb: Superblock, table: Uint8Array): GroupBitmap[] {
  if (table.length < sb.groupCount * sb.descSize) throw new Ext4FormatError(`group descriptor table needs ${sb.groupCount * sb.descSize} bytes, got ${table.length}`);
  const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const out: GroupBitmap[] = [];
  for (let g = 0; g < sb.groupCount; g++) {
    const at = g * sb.descSize;
    const flags = v.getUint16(at + 0x12, true);
    if (sb.uninitGroups && flags & BG_BLOCK_UNINIT) {
      out.push({ group: g });
      continue;
    }
    const block = v.getUint32(at, true) + (sb.descSize >= 64 ? v.getUint32(at + 0x20, true) * 2 ** 32 : 0);
    if (block === 0 || block >= sb.blocksCount) throw new Ext4FormatError(`group ${g}: block bitmap at ${block} lies outside the filesystem`);
    out.push({ group: g, bitmapBlock: block });
  }
  return out;
}

/** A run of blocks [start, end). */
export interface BlockRun {
  start: number;
  end: number;
}

/** The free blocks a group's bitmap marks (bit clear), as runs of absolute block numbers, ascending. */
export function freeRuns(sb: Superblock, group: number, bitmap: Uint8Array): BlockRun[] {
  const first = sb.firstDataBlock + group * sb.blocksPerGroup;
  // The last group is short; bits past the end of the filesystem are padding, whatever their value.
  const count = Math.min(sb.blocksPerGroup, sb.blocksCount - first);
  const runs: BlockRun[] = [];
  let start = -1;
  for (let i = 0; i < count; i++) {
    const byte = bitmap[i >> 3];
    // Whole bytes at once where the run state cannot change inside them.
    if ((i & 7) === 0 && i + 8 <= count) {
      if (byte === 0xff && start < 0) {
        i += 7;
        continue;
      }
      if (byte === 0 && start >= 0) {
        i += 7;
        continue;
      }
    }
    const used = (byte >> (i & 7)) & 1;
    if (!used && start < 0) start = i;
    else if (used && start >= 0) {
      runs.push({ start: first + start, end: first + i });
      start = -1;
    }
  }
  if (start >= 0) runs.push({ start: first + start, end: first + count });
  return runs;
}
