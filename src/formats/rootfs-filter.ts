/**
 * Rewrites a `docker export` tar stream into the tar that `mke2fs -d -` turns into the root file system: what a
 * VM does not want is dropped, the files a container engine bind-mounts are replaced, a few small files are edited
 * in place (guest-edits.ts), the files, links and directories the appliance needs are added after the last input
 * entry.
 *
 * An entry we do not change is copied as the exact header blocks we read; an entry we change is re-encoded with
 * every pax record we do not manage copied byte for byte (binary xattrs such as security.capability included).
 */
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import {
  TAR_END,
  TarParser,
  byteString,
  encodeEntry,
  encodePaxRecord,
  needsBinaryCharset,
  tarPadding,
  textOf,
  type GlobalHeader,
  type TarEntry,
  type TarEntryFields,
  type TarKind,
} from './tar/index.js';
import { RootfsTree, checkAdditions, kindName, normalise, type RootfsAddition, type RootfsFile, type RootfsInfo } from './rootfs-tree.js';
import { GuestEdits, type GuestEdit } from './guest-edits.js';

export type { RootfsAddition, RootfsDirectory, RootfsFile, RootfsInfo, RootfsSymlink } from './rootfs-tree.js';
export type { GuestEdit } from './guest-edits.js';

const debug = createDebug('c2v:rootfs');

export interface RootfsFixes {
  /** Written to /etc/hostname when the exported one is empty or absent; also used in the default /etc/hosts. */
  hostname: string;
  /** The whole /etc/fstab content; always replaces the image's. */
  fstab: string;
  /**
   * Appended after the last input entry, in order; an input entry at the path of a file or symlink is dropped.
   * Missing parents are created 0755 root; a parent the image has as a non-directory is refused.
   */
  extraFiles?: RootfsAddition[];
  /** Small files of the image rewritten in place (same owner, mode and position in the stream), in order. */
  edits?: GuestEdit[];
  /** Computed after the last input entry (grub.cfg depends on the kernels seen), appended after extraFiles. */
  finalFiles?: (info: RootfsInfo) => RootfsFile[];
  /** Files of the image left out, by path without the leading '/' (SSH host keys every VM must make its own). */
  leaveOut?: RegExp;
  /** Directories created 0755 root when the stream has none at that path (e.g. 'boot/efi'). */
  ensureDirs?: string[];
  /** Seconds: entries newer than this get this mtime (and pax atime/ctime), for reproducible images. */
  mtimeClamp?: number;
}

// libarchive gives up on special headers above 1 MiB; allow more, but never buffer without bound.
const MAX_EXTENSION = 8 * 1024 * 1024;
const STREAM_BUFFER = 1024 * 1024;

const TIME_KEYS = new Set(['mtime', 'atime', 'ctime']);
const DROPPED = new Set(['.dockerenv', '.dockerinit', 'boot/boot']);
const HOST_FILES = new Set(['etc/hosts', 'etc/resolv.conf', 'etc/hostname']);

/** What becomes of one input entry: the header blocks to write, and whether its data follows them. */
interface Plan {
  head: Buffer[];
  forwardBody: boolean;
  body?: Buffer;
  /** The data is held back for the edits; the entry is written once it is all in. */
  edit?: true;
}

const DROP: Plan = { head: [], forwardBody: false };
const EDIT: Plan = { head: [], forwardBody: false, edit: true };

/** Why c2v will not edit a path: the filter drops or writes that file itself, and the two would not compose. */
function ownedPath(key: string): string | undefined {
  if (DROPPED.has(key) || key.startsWith('boot/boot/') || key.startsWith('dev/')) return 'c2v leaves it out of the VM';
  if (key === 'etc/fstab' || key === 'etc/machine-id' || HOST_FILES.has(key)) return 'c2v writes it itself';
  return undefined;
}

function outputName(original: string, key: string, kind: TarKind): string {
  if (key === '') return './';
  return kind === 'dir' && original.endsWith('/') ? `${key}/` : key;
}

class RootfsFilter extends Transform {
  private readonly fixes: RootfsFixes;
  private readonly onInfo: (info: RootfsInfo) => void;
  private readonly now: number;
  /** Paths of the files and symlinks added, whose input entries are dropped. */
  private extraKeys = new Map<string, 'file' | 'symlink'>();
  private edits = new GuestEdits([], () => undefined);
  /** A fixes error, reported through the stream like any other so that the caller's input is released. */
  private readonly invalid: Error | undefined;
  private readonly parser: TarParser;
  private readonly tree = new RootfsTree();
  /** Whether the current entry's data goes to the output. */
  private forward = false;
  /** The entry being edited, while its data comes in. */
  private editing: { entry: TarEntryFields; key: string; chunks: Buffer[]; left: number } | null = null;
  private trailingGlobals: GlobalHeader[] = [];

  constructor(fixes: RootfsFixes, onInfo: (info: RootfsInfo) => void) {
    super({ readableHighWaterMark: STREAM_BUFFER, writableHighWaterMark: STREAM_BUFFER });
    this.fixes = fixes;
    this.onInfo = onInfo;
    const now = Math.floor(Date.now() / 1000);
    this.now = fixes.mtimeClamp === undefined ? now : Math.min(now, fixes.mtimeClamp);
    try {
      const added = checkAdditions(fixes.extraFiles ?? []);
      for (const [key, kind] of added) if (kind !== 'dir') this.extraKeys.set(key, kind);
      this.edits = new GuestEdits(fixes.edits ?? [], (key) => ownedPath(key) ?? (added.has(key) ? 'the same conversion adds it; do one or the other' : undefined));
    } catch (e) {
      this.invalid = e as Error;
    }
    const forward = (chunk: Buffer): void => {
      if (this.forward) this.push(chunk);
    };
    this.parser = new TarParser(
      {
        entry: (e) => this.onEntry(e),
        data: (chunk) => (this.editing ? this.collect(chunk) : forward(chunk)),
        padding: forward,
        // libarchive ignores global headers; keep them in place for other readers.
        end: (globals) => (this.trailingGlobals = globals),
      },
      { source: 'the exported file system', maxExtension: MAX_EXTENSION },
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.invalid) return callback(this.invalid);
    try {
      this.parser.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      callback();
    } catch (e) {
      callback(e as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.invalid) return callback(this.invalid);
    try {
      this.parser.end();
      this.finish();
      callback();
    } catch (e) {
      callback(e as Error);
    }
  }

  private onEntry(e: TarEntry): void {
    const key = normalise(e.header.name);
    const plan = this.plan(e, key, e.kind);

    for (const g of e.globals) for (const b of g.raw) this.push(b);
    if (plan.head.length > 0 || plan.edit) {
      this.ensureParents(key, false);
      for (const b of plan.head) this.push(b);
      if (plan.body) {
        this.push(plan.body);
        this.push(tarPadding(plan.body.length));
      }
    }
    this.forward = plan.forwardBody;
    if (plan.edit && this.editing!.left === 0) this.endEdit();
  }

  /** Decides what becomes of one input entry, and records what the output will contain. */
  private plan(e: TarEntry, key: string, kind: TarKind): Plan {
    const h = e.header;
    const target = kind === 'hardlink' ? normalise(h.linkname) : '';
    if (
      DROPPED.has(key) ||
      key.startsWith('boot/boot/') ||
      (key.startsWith('dev/') && kind === 'file') ||
      (kind !== 'dir' && this.fixes.leaveOut?.test(key)) ||
      (kind === 'hardlink' && this.tree.wasDropped(target))
    ) {
      return this.discard(key, 'not wanted in a VM');
    }
    const replacing = this.extraKeys.get(key);
    if (replacing !== undefined) {
      if (kind === 'dir' && replacing === 'file') throw new C2vError('input', `cannot add the file /${textOf(key)}: the image has a directory there`);
      if (kind === 'dir') throw new C2vError('input', `cannot add the symlink /${textOf(key)}: the image has a directory there; remove it from the image`);
      return this.discard(key, `replaced by an extra ${replacing}`);
    }
    this.tree.check(h.name, h.linkname, key, kind, target);
    if (kind === 'hardlink') this.edits.checkHardLink(key, target);
    if (this.edits.has(key)) {
      this.edits.checkEntry(key, kind, e.pax, h.size);
      this.editing = { entry: { ...h, pax: e.pax }, key, chunks: [], left: h.size };
      return EDIT;
    }

    const fields: TarEntryFields = { ...h, pax: e.pax };
    if (kind !== 'dir') {
      if (key === 'etc/fstab') return this.replace(fields, key, Buffer.from(this.fixes.fstab), 0o644);
      if (HOST_FILES.has(key) && kind === 'file') {
        if (h.size === 0) return this.replace(fields, key, this.defaultContent(key), 0o644);
        return this.pass(e, key, kind, { mode: 0o644 });
      }
      if (key === 'etc/machine-id') {
        // Empty, not absent: systemd then writes a fresh id at first boot instead of every VM sharing one.
        if (kind === 'file') return this.replace(fields, key, Buffer.alloc(0), h.mode);
        return this.replace({ ...fields, uid: 0, gid: 0, uname: '', gname: '', pax: [] }, key, Buffer.alloc(0), 0o444);
      }
    }
    return this.pass(e, key, kind, {});
  }

  private collect(chunk: Buffer): void {
    const editing = this.editing!;
    editing.chunks.push(chunk);
    editing.left -= chunk.length;
    if (editing.left === 0) this.endEdit();
  }

  /** Writes the edited entry in the place of the one read: its header fields and pax records, the new data. */
  private endEdit(): void {
    const { entry, key, chunks } = this.editing!;
    this.editing = null;
    debug('editing %s', textOf(key));
    const content = this.edits.apply(key, Buffer.concat(chunks));
    const out: TarEntryFields = { ...entry, name: key, size: content.length };
    this.clampTimes(out);
    for (const b of encodeEntry(out)) this.push(b);
    this.push(content);
    this.push(tarPadding(content.length));
    this.tree.record(key, 'file', content.length, '');
  }

  private discard(key: string, why: string): Plan {
    debug('dropping %s (%s)', textOf(key), why);
    this.tree.drop(key);
    return DROP;
  }

  private pass(e: TarEntry, key: string, kind: TarKind, change: { mode?: number }): Plan {
    const h = e.header;
    const out: TarEntryFields = { ...h, pax: e.pax, name: outputName(h.name, key, kind) };
    let changed = out.name !== h.name;
    if (change.mode !== undefined && change.mode !== h.mode) {
      out.mode = change.mode;
      changed = true;
    }
    if (kind === 'hardlink') {
      out.linkname = normalise(h.linkname);
      if (out.linkname !== h.linkname) changed = true;
      // Docker writes Go 1.8 file-type bits into the mode (0100644); on a hard link they make
      // libarchive report a regular file and mke2fs then creates an empty file instead of the link.
      if (h.mode & ~0o7777) {
        out.mode = h.mode & 0o7777;
        changed = true;
      }
    }
    if (this.clampTimes(out)) changed = true;
    if (needsBinaryCharset(e.pax)) changed = true;
    this.tree.record(key, kind, kind === 'file' ? h.size : 0, out.linkname);
    return { head: changed ? encodeEntry(out) : e.raw, forwardBody: true };
  }

  private replace(e: TarEntryFields, key: string, content: Buffer, mode: number): Plan {
    debug('replacing %s', textOf(key));
    const out: TarEntryFields = { ...e, name: key, typeflag: '0', linkname: '', mode, size: content.length, devmajor: 0, devminor: 0 };
    this.clampTimes(out);
    this.tree.record(key, 'file', content.length, '');
    return { head: encodeEntry(out), forwardBody: false, body: content };
  }

  private clampTimes(out: TarEntryFields): boolean {
    const clamp = this.fixes.mtimeClamp;
    if (clamp === undefined) return false;
    let changed = false;
    if (out.mtime > clamp) {
      out.mtime = clamp;
      changed = true;
    }
    if (out.pax.some((r) => TIME_KEYS.has(r.key) && Number(r.value) > clamp)) {
      out.pax = out.pax.map((r) => (TIME_KEYS.has(r.key) && Number(r.value) > clamp ? { key: r.key, value: String(clamp), raw: encodePaxRecord(r.key, String(clamp)) } : r));
      changed = true;
    }
    return changed;
  }

  private defaultContent(key: string): Buffer {
    const host = this.fixes.hostname;
    switch (key) {
      case 'etc/hosts':
        return Buffer.from(`127.0.0.1 localhost\n127.0.1.1 ${host}\n::1 localhost ip6-localhost ip6-loopback\n`);
      case 'etc/hostname':
        return Buffer.from(`${host}\n`);
      default:
        return Buffer.from('# Filled in at boot by the DHCP client (or systemd-resolved).\n');
    }
  }

  /** Emits directory entries for missing parents; `strict` refuses a parent the image has as a non-directory. */
  private ensureParents(key: string, strict: boolean): void {
    const parts = key.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (this.tree.isDir(dir)) continue;
      if (this.tree.has(dir)) {
        if (strict) throw new C2vError('input', `cannot add /${textOf(key)}: /${textOf(dir)} in the image is not a directory`);
        return;
      }
      this.addDir(dir);
    }
  }

  private addDir(key: string, mode = 0o755): void {
    this.emitNew({ name: `${key}/`, typeflag: '5', mode, size: 0 });
    this.tree.record(key, 'dir', 0, '');
  }

  private addFile(path: string, content: string | Buffer, mode: number): void {
    this.addFileAt(normalise(byteString(path)), path, content, mode);
  }

  private addFileAt(key: string, path: string, content: string | Buffer, mode: number): void {
    if (key === '') throw new C2vError('input', `cannot add a file at "${path}"`);
    if (this.tree.isDir(key)) throw new C2vError('input', `cannot add the file /${textOf(key)}: the image has a directory there`);
    this.ensureParents(key, true);
    const body = typeof content === 'string' ? Buffer.from(content) : content;
    this.emitNew({ name: key, typeflag: '0', mode, size: body.length });
    this.push(body);
    this.push(tarPadding(body.length));
    this.tree.record(key, 'file', body.length, '');
  }

  private addSymlink(key: string, target: string): void {
    const there = this.tree.kindOf(key);
    if (there !== undefined) throw new C2vError('input', `cannot add the symlink /${textOf(key)}: the image has a ${kindName(there)} there; remove it from the image`);
    this.ensureParents(key, true);
    this.emitNew({ name: key, typeflag: '2', mode: 0o777, size: 0, linkname: target });
    this.tree.record(key, 'symlink', 0, target);
  }

  private addDirectory(key: string, mode: number): void {
    const there = this.tree.kindOf(key);
    if (there === 'dir') return;
    if (there !== undefined) throw new C2vError('input', `cannot create the directory /${textOf(key)}: the image has a ${kindName(there)} there; remove it from the image`);
    this.ensureParents(key, true);
    this.addDir(key, mode);
  }

  private emitNew(h: Pick<TarEntryFields, 'name' | 'typeflag' | 'mode' | 'size'> & { linkname?: string }): void {
    const header: TarEntryFields = { linkname: '', ...h, uid: 0, gid: 0, mtime: this.now, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [] };
    for (const b of encodeEntry(header)) this.push(b);
  }

  /** After the last input entry: the files and directories the image lacks, then the end of the archive. */
  private finish(): void {
    for (const g of this.trailingGlobals) for (const b of g.raw) this.push(b);
    this.trailingGlobals = [];

    const tree = this.tree;
    if (!tree.has('etc/fstab') && !this.extraKeys.has('etc/fstab')) this.addFile('etc/fstab', this.fixes.fstab, 0o644);
    for (const key of HOST_FILES) {
      if (!tree.has(key) && !this.extraKeys.has(key)) this.addFile(key, this.defaultContent(key), 0o644);
    }
    if (!tree.has('etc/machine-id') && !this.extraKeys.has('etc/machine-id')) this.addFile('etc/machine-id', '', 0o444);
    for (const dir of this.fixes.ensureDirs ?? []) {
      const key = normalise(byteString(dir));
      if (key === '' || tree.isDir(key)) continue;
      if (tree.has(key)) throw new C2vError('input', `cannot create the directory /${dir}: the image has a file there`);
      this.ensureParents(key, true);
      this.addDir(key);
    }
    for (const [key, content] of this.edits.leftovers()) this.addFileAt(key, key, content, 0o644);
    for (const a of this.fixes.extraFiles ?? []) {
      if ('symlink' in a) this.addSymlink(normalise(byteString(a.path)), byteString(a.symlink));
      else if ('directory' in a) this.addDirectory(normalise(byteString(a.path)), a.mode ?? 0o755);
      else this.addFile(a.path, a.content, a.mode ?? 0o644);
    }

    if (this.fixes.finalFiles) {
      const snapshot: RootfsInfo = structuredClone(tree.info);
      for (const f of this.fixes.finalFiles(snapshot)) this.addFile(f.path, f.content, f.mode ?? 0o644);
    }
    this.push(TAR_END);
    this.onInfo(structuredClone(tree.info));
  }
}

/**
 * Streams `input` (a docker export) into `output` (the tar for mke2fs -d -). `info` settles once the input
 * has been read to its end, which needs `output` to be consumed; it rejects, and `output` is destroyed, if
 * the input fails or is not a valid tar.
 */
export function filterRootfs(
  input: NodeJS.ReadableStream | Readable,
  fixes: RootfsFixes,
): { output: Readable; info: Promise<RootfsInfo> } {
  let resolveInfo!: (info: RootfsInfo) => void;
  let rejectInfo!: (e: unknown) => void;
  const info = new Promise<RootfsInfo>((resolve, reject) => {
    resolveInfo = resolve;
    rejectInfo = reject;
  });
  // The same failure reaches whoever consumes `output`; a caller that only awaits that must not crash the process.
  info.catch(() => {});
  const output = new RootfsFilter(fixes, resolveInfo);
  pipeline(input as NodeJS.ReadableStream, output, (e) => {
    if (e) rejectInfo(e);
  });
  return { output, info };
}
