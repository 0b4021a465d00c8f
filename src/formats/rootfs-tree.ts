/**
 * What the root file system's tar holds so far, for the rootfs filter: the paths and their kinds, the checks
 * that keep the stream a plain tree (the entries read and the ones c2v adds), and the info the later stages need
 * (kernels, init, sizes).
 */
import { C2vError } from '../errors.js';
import { byteString, textOf, type TarKind } from './tar/index.js';

export interface RootfsInfo {
  /** Entries in the output tar, and the bytes of regular-file data they carry. */
  entries: number;
  bytes: number;
  /**
   * 4 KiB blocks the entries need in ext4 (file data rounded up per file, one per directory and per symlink too
   * long to live in its inode): tiny files weigh far more than their bytes.
   */
  blocks: number;
  /** Regular files (or hard links) boot/vmlinuz-* and boot/vmlinuz, in stream order. */
  kernels: string[];
  /** boot/initrd.img-*, boot/initramfs-*.img, boot/initramfs-<flavour> (Alpine), boot/initrd.img. */
  initrds: string[];
  /** Targets of the top-level vmlinuz and initrd.img symlinks and their boot/ counterparts. */
  symlinks: Record<string, string>;
  /** sbin/init or usr/sbin/init exists as a regular file, hard link or symlink. */
  hasInit: boolean;
}

/** A regular file added to the stream (default mode 0644). */
export interface RootfsFile {
  path: string;
  content: string | Buffer;
  mode?: number;
}

/** A symlink added to the stream; the target is stored as given. */
export interface RootfsSymlink {
  path: string;
  symlink: string;
}

/** A directory added to the stream (default mode 0755); one the output already has is kept as it is. */
export interface RootfsDirectory {
  path: string;
  directory: true;
  mode?: number;
}

export type RootfsAddition = RootfsFile | RootfsSymlink | RootfsDirectory;
export type AddedKind = 'file' | 'symlink' | 'dir';

const KIND_NAMES: Partial<Record<TarKind, string>> = { hardlink: 'hard link', dir: 'directory', char: 'character device', block: 'block device' };
export const kindName = (kind: TarKind): string => KIND_NAMES[kind] ?? kind;

const FS_BLOCK = 4096;
/** ext4 keeps a symlink target shorter than this in the inode itself. */
const FAST_SYMLINK = 60;

const INIT_PATHS = new Set(['sbin/init', 'usr/sbin/init']);
const BOOT_SYMLINKS = new Set(['vmlinuz', 'initrd.img', 'boot/vmlinuz', 'boot/initrd.img']);
const KERNEL = /^boot\/vmlinuz(-[^/]+)?$/;
const INITRD = /^boot\/(initrd\.img(-[^/]+)?|initramfs-[^/]+\.img|initramfs-[A-Za-z0-9_]+)$/;

function entryBlocks(kind: TarKind, size: number, linkname: string): number {
  if (kind === 'file') return Math.ceil(size / FS_BLOCK);
  if (kind === 'dir') return 1;
  if (kind === 'symlink') return Buffer.byteLength(linkname) >= FAST_SYMLINK ? 1 : 0;
  return 0;
}

/**
 * The path an entry lands on, relative to the root: no leading '/', no '.' or empty components, no trailing '/',
 * and '..' resolved lexically and clamped at the root (as tar and docker do), so that no name can point above it.
 */
export function normalise(name: string): string {
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

export class RootfsTree {
  readonly info: RootfsInfo = { entries: 0, bytes: 0, blocks: 0, kernels: [], initrds: [], symlinks: {}, hasInit: false };
  /** Every path the output holds so far, with its kind. */
  private readonly seen = new Map<string, TarKind>();
  private readonly dirs = new Set<string>();
  private readonly dropped = new Set<string>();

  has(key: string): boolean {
    return this.seen.has(key);
  }

  isDir(key: string): boolean {
    return this.dirs.has(key);
  }

  kindOf(key: string): TarKind | undefined {
    return this.seen.get(key);
  }

  drop(key: string): void {
    this.dropped.add(key);
  }

  wasDropped(key: string): boolean {
    return this.dropped.has(key);
  }

  /**
   * A stream that is not a plain tree (what a file system export always is) is refused with the entry named,
   * rather than left to mke2fs, which would fail with a vaguer message or quietly pick one reading: an entry
   * under a symlink or a file, the same path twice (directories excepted), a hard link to nothing before it,
   * names ext4 cannot hold.
   */
  check(name: string, linkname: string, key: string, kind: TarKind, target: string): void {
    const shown = `/${textOf(key)}`;
    const refuse = (why: string): never => {
      throw new C2vError('input', `the image's file system is not a plain tree: ${why}; rebuild the image (docker export never writes such entries)`);
    };
    if (key === '') {
      if (kind !== 'dir') refuse(`the entry "${textOf(name)}" names the root directory but is a ${kind}`);
      return;
    }
    for (const part of key.split('/')) {
      if (part.length > 255) refuse(`a name in ${shown.slice(0, 80)}... is ${part.length} bytes long (ext4 allows 255)`);
    }
    if (linkname.length > 4095 && kind === 'symlink') refuse(`the symlink ${shown} has a ${linkname.length}-byte target (the limit is 4095)`);
    let slash = key.indexOf('/');
    while (slash !== -1) {
      const parent = key.slice(0, slash);
      const parentKind = this.seen.get(parent);
      if (parentKind !== undefined && parentKind !== 'dir') refuse(`${shown} lies under /${textOf(parent)}, which is a ${parentKind}`);
      slash = key.indexOf('/', slash + 1);
    }
    const before = this.seen.get(key);
    if (before !== undefined && !(before === 'dir' && kind === 'dir')) refuse(`${shown} appears twice (as a ${before}, then as a ${kind})`);
    if (kind === 'hardlink') {
      const targetKind = this.seen.get(target);
      if (targetKind === undefined) refuse(`the hard link ${shown} points to /${textOf(target)}, which is not before it in the image`);
      if (targetKind === 'dir') refuse(`the hard link ${shown} points to the directory /${textOf(target)}`);
    }
  }

  /** Notes an entry of the output. */
  record(key: string, kind: TarKind, size: number, linkname: string): void {
    const info = this.info;
    info.entries++;
    this.seen.set(key, kind);
    if (kind === 'dir') this.dirs.add(key);
    if (kind === 'file') info.bytes += size;
    info.blocks += entryBlocks(kind, size, linkname);
    if (kind === 'file' || kind === 'hardlink') {
      if (KERNEL.test(key)) info.kernels.push(textOf(key));
      if (INITRD.test(key)) info.initrds.push(textOf(key));
    }
    if (kind === 'symlink' && BOOT_SYMLINKS.has(key)) info.symlinks[textOf(key)] = textOf(linkname);
    if (INIT_PATHS.has(key) && (kind === 'file' || kind === 'hardlink' || kind === 'symlink')) info.hasInit = true;
  }
}

/**
 * Refuses additions that could only fail in mke2fs, or put one path in the stream twice, before a byte of the
 * image is read; returns the kind each path is added as.
 */
export function checkAdditions(additions: readonly RootfsAddition[]): Map<string, AddedKind> {
  const added = new Map<string, AddedKind>();
  for (const a of additions) {
    const key = normalise(byteString(a.path));
    const kind: AddedKind = 'symlink' in a ? 'symlink' : 'directory' in a ? 'dir' : 'file';
    const what = kindName(kind);
    const shown = `/${textOf(key)}`;
    if (key === '' || a.path.includes('\0')) throw new C2vError('input', `cannot add a ${what} at ${JSON.stringify(a.path)}: give a path below the root, without NUL bytes`);
    if (key.split('/').some((part) => part.length > 255)) throw new C2vError('input', `cannot add the ${what} ${shown.slice(0, 80)}...: a name in it is over 255 bytes (the ext4 limit); shorten it`);
    const mode = 'symlink' in a ? undefined : a.mode;
    if (mode !== undefined && !(Number.isInteger(mode) && mode >= 0 && mode <= 0o7777)) {
      throw new C2vError('input', `cannot add the ${what} ${shown} with mode ${mode}: give permission bits from 0 to 0o7777`);
    }
    if ('symlink' in a) {
      const target = byteString(a.symlink);
      if (target === '' || target.length > 4095 || target.includes('\0')) throw new C2vError('input', `cannot add the symlink ${shown}: its target must be 1 to 4095 bytes without NUL bytes`);
    }
    const before = added.get(key);
    if (before !== undefined && !(before === 'dir' && kind === 'dir')) throw new C2vError('input', `cannot add ${shown} twice: give each path once in the added files`);
    added.set(key, kind);
  }
  return added;
}
