/**
 * How the ext4 root filesystem is made: its size and the features the guest's own tools understand.
 * Pure: the caller supplies the content size and the guest's os-release.
 */
import { distroOf, type OsRelease } from './os-release.js';

const MiB = 1024 * 1024;

/**
 * Features every guest we target can check at boot. Never `metadata_csum_seed` (GRUB before 2.12, which is what
 * Debian bookworm ships and what reads the root fs here, rejects it) and never `orphan_file` (e2fsck before 1.47
 * refuses it, so a bullseye guest's fsck of its root fails).
 */
const MODERN = ['has_journal', 'extent', 'huge_file', 'flex_bg', 'metadata_csum', '64bit', 'dir_nlink', 'extra_isize'];
/** For guests whose e2fsprogs predates metadata_csum (1.43): CentOS 7, Debian 8, Ubuntu 16.04 and older. */
const LEGACY = ['has_journal', 'extent', 'huge_file', 'flex_bg', 'uninit_bg', '64bit', 'dir_nlink', 'extra_isize'];

const RHEL_PARENTS: ReadonlySet<string> = new Set(['rhel', 'centos', 'fedora']);

export function guestHasOldE2fsprogs(os: OsRelease): boolean {
  const { id, like, major } = distroOf(os);
  if (major === undefined) return false;
  if (id === 'debian') return major < 9;
  // Ubuntu is numbered YY.MM, so the year decides: 17.10 is the last before 18.04.
  if (id === 'ubuntu') return major < 18;
  // Fedora counts its own releases; e2fsprogs 1.43 first shipped in Fedora 25.
  if (id === 'fedora') return major < 25;
  // What names RHEL, CentOS or Fedora as a parent numbers its releases after RHEL's (Rocky, Alma, Oracle Linux;
  // Amazon Linux 2 says "centos rhel fedora", and its 2 falls on the right side of 8 as well).
  if ([id, ...like].some((i) => RHEL_PARENTS.has(i))) return major < 8;
  return false;
}

export function ext4Features(os: OsRelease): string[] {
  return guestHasOldE2fsprogs(os) ? LEGACY : MODERN;
}

/**
 * A private mke2fs.conf, so the host's defaults (which change between e2fsprogs releases) never decide what
 * lands in the guest.
 */
export function mke2fsConfig(features: readonly string[]): string {
  return [
    '[defaults]',
    '\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr',
    '\tdefault_mntopts = acl,user_xattr',
    '\tenable_periodic_fsck = 0',
    '\tblocksize = 4096',
    '\tinode_size = 256',
    '\tinode_ratio = 8192',
    '',
    '[fs_types]',
    '\text4 = {',
    `\t\tfeatures = ${features.join(',')}`,
    '\t}',
    '',
  ].join('\n');
}

/** The least a root filesystem needs for this much content: data, ext4 metadata (~15% with one inode per 8 KiB), and the journal. */
export function minimumRootBytes(contentBytes: number): number {
  return roundUpMiB(contentBytes * 1.15 + 64 * MiB);
}

/** What `--disk-size auto` gives the root: the minimum plus room for the appliance to write logs and state. */
export function autoRootBytes(contentBytes: number): number {
  return roundUpMiB(minimumRootBytes(contentBytes) + autoHeadroom(contentBytes));
}

function autoHeadroom(bytes: number): number {
  return Math.max(256 * MiB, bytes * 0.2);
}

/** What the content of a measured stream weighs in ext4: its entries (inodes) and 4 KiB blocks. */
export interface MeasuredContent {
  entries: number;
  blocks: number;
}

export interface RootSize {
  bytes: number;
  /** For mke2fs -N: the default one inode per 8 KiB runs out first when the image holds many tiny files. */
  inodes: number;
}

/** The journal mke2fs gives a 4 KiB-block filesystem of this size (ext2fs_default_journal_size). */
function journalBytes(fsBytes: number): number {
  const blocks = fsBytes / 4096;
  const steps: [number, number][] = [[32768, 1024], [256 * 1024, 4096], [512 * 1024, 8192], [4096 * 1024, 16384], [8192 * 1024, 32768], [16384 * 1024, 65536], [32768 * 1024, 131072]];
  for (const [below, journal] of steps) if (blocks < below) return journal * 4096;
  return 262144 * 4096;
}

/**
 * The root filesystem that holds measured content: its blocks, a directory entry per entry, an inode per entry
 * with room for what the appliance creates at run time, the journal, and the group metadata. `headroom` adds what
 * `--disk-size auto` adds; without it this is the least that fits.
 */
export function measuredRootSize(content: MeasuredContent, opts: { headroom: boolean }): RootSize {
  const inodes = Math.ceil(content.entries * 1.25) + 4096;
  const payload = content.blocks * 4096 + content.entries * 64;
  let bytes = payload * 1.02 + inodes * 256 + 4 * MiB;
  bytes += journalBytes(bytes * 1.02) + bytes * 0.02;
  if (opts.headroom) bytes += autoHeadroom(payload);
  const total = roundUpMiB(bytes);
  return { bytes: total, inodes: Math.max(inodes, Math.floor(total / 8192)) };
}

export function roundUpMiB(bytes: number): number {
  return Math.ceil(bytes / MiB) * MiB;
}
