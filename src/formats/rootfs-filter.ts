/**
 * Rewrites a `docker export` tar stream into the tar that `mke2fs -d -` turns into the root file system: what a
 * VM does not want is dropped, the files a container engine bind-mounts are replaced, the files the appliance
 * needs are added after the last input entry.
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
import { RootfsTree, normalise, type RootfsInfo } from './rootfs-tree.js';

export type { RootfsInfo } from './rootfs-tree.js';

const debug = createDebug('c2v:rootfs');

export interface RootfsFile {
  path: string;
  content: string | Buffer;
  mode?: number;
}

export interface RootfsFixes {
  /** Written to /etc/hostname when the exported one is empty or absent; also used in the default /etc/hosts. */
  hostname: string;
  /** The whole /etc/fstab content; always replaces the image's. */
  fstab: string;
  /** Appended after the last input entry; an input entry at the same path is dropped. */
  extraFiles?: RootfsFile[];
  /** Computed after the last input entry (grub.cfg depends on the kernels seen), appended after extraFiles. */
  finalFiles?: (info: RootfsInfo) => RootfsFile[];
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
}

const DROP: Plan = { head: [], forwardBody: false };

function outputName(original: string, key: string, kind: TarKind): string {
  if (key === '') return './';
  return kind === 'dir' && original.endsWith('/') ? `${key}/` : key;
}

class RootfsFilter extends Transform {
  private readonly fixes: RootfsFixes;
  private readonly onInfo: (info: RootfsInfo) => void;
  private readonly now: number;
  private readonly extraKeys: Set<string>;
  private readonly parser: TarParser;
  private readonly tree = new RootfsTree();
  /** Whether the current entry's data goes to the output. */
  private forward = false;
  private trailingGlobals: GlobalHeader[] = [];

  constructor(fixes: RootfsFixes, onInfo: (info: RootfsInfo) => void) {
    super({ readableHighWaterMark: STREAM_BUFFER, writableHighWaterMark: STREAM_BUFFER });
    this.fixes = fixes;
    this.onInfo = onInfo;
    const now = Math.floor(Date.now() / 1000);
    this.now = fixes.mtimeClamp === undefined ? now : Math.min(now, fixes.mtimeClamp);
    this.extraKeys = new Set((fixes.extraFiles ?? []).map((f) => normalise(byteString(f.path))));
    const forward = (chunk: Buffer): void => {
      if (this.forward) this.push(chunk);
    };
    this.parser = new TarParser(
      {
        entry: (e) => this.onEntry(e),
        data: forward,
        padding: forward,
        // libarchive ignores global headers; keep them in place for other readers.
        end: (globals) => (this.trailingGlobals = globals),
      },
      { source: 'the exported file system', maxExtension: MAX_EXTENSION },
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.parser.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      callback();
    } catch (e) {
      callback(e as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
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
    if (plan.head.length > 0) {
      this.ensureParents(key, false);
      for (const b of plan.head) this.push(b);
      if (plan.body) {
        this.push(plan.body);
        this.push(tarPadding(plan.body.length));
      }
    }
    this.forward = plan.forwardBody;
  }

  /** Decides what becomes of one input entry, and records what the output will contain. */
  private plan(e: TarEntry, key: string, kind: TarKind): Plan {
    const h = e.header;
    const target = kind === 'hardlink' ? normalise(h.linkname) : '';
    if (
      DROPPED.has(key) ||
      key.startsWith('boot/boot/') ||
      (key.startsWith('dev/') && kind === 'file') ||
      (kind === 'hardlink' && this.tree.wasDropped(target))
    ) {
      return this.discard(key, 'not wanted in a VM');
    }
    if (this.extraKeys.has(key)) {
      if (kind === 'dir') throw new C2vError('input', `cannot add the file /${textOf(key)}: the image has a directory there`);
      return this.discard(key, 'replaced by an extra file');
    }
    this.tree.check(h.name, h.linkname, key, kind, target);

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

  private addDir(key: string): void {
    this.emitNew({ name: `${key}/`, typeflag: '5', mode: 0o755, size: 0 });
    this.tree.record(key, 'dir', 0, '');
  }

  private addFile(path: string, content: string | Buffer, mode: number): void {
    const key = normalise(byteString(path));
    if (key === '') throw new C2vError('input', `cannot add a file at "${path}"`);
    if (this.tree.isDir(key)) throw new C2vError('input', `cannot add the file /${textOf(key)}: the image has a directory there`);
    this.ensureParents(key, true);
    const body = typeof content === 'string' ? Buffer.from(content) : content;
    this.emitNew({ name: key, typeflag: '0', mode, size: body.length });
    this.push(body);
    this.push(tarPadding(body.length));
    this.tree.record(key, 'file', body.length, '');
  }

  private emitNew(h: Pick<TarEntryFields, 'name' | 'typeflag' | 'mode' | 'size'>): void {
    const header: TarEntryFields = { ...h, linkname: '', uid: 0, gid: 0, mtime: this.now, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [] };
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
    for (const f of this.fixes.extraFiles ?? []) this.addFile(f.path, f.content, f.mode ?? 0o644);

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
