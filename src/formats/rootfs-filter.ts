/**
 * Rewrites a `docker export` tar stream into the tar that `mke2fs -d -` turns into the root file system.
 *
 * The tar codec is our own rather than tar-stream's: tar-stream decodes pax values as UTF-8 text (binary
 * xattrs such as security.capability come out mangled), folds global headers into every entry, masks the
 * mode and cannot write uids above 0o777777. Here an entry we do not need to change is copied as the exact
 * header blocks we read; an entry we change is re-encoded with every pax record we do not manage copied
 * byte for byte.
 */
import { Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import createDebug from 'debug';
import { C2vError } from '../errors.js';

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
  /** etc/os-release when it is a regular file, else usr/lib/os-release. */
  osRelease?: Record<string, string>;
  /** sbin/init or usr/sbin/init exists as a regular file, hard link or symlink. */
  hasInit: boolean;
}

const BLOCK = 512;
const FS_BLOCK = 4096;
/** ext4 keeps a symlink target shorter than this in the inode itself. */
const FAST_SYMLINK = 60;

function entryBlocks(kind: Kind, size: number, linkname: string): number {
  if (kind === 'file') return Math.ceil(size / FS_BLOCK);
  if (kind === 'dir') return 1;
  if (kind === 'symlink') return Buffer.byteLength(linkname) >= FAST_SYMLINK ? 1 : 0;
  return 0;
}
const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
// libarchive gives up on special headers above 1 MiB; allow more, but never buffer without bound.
const MAX_EXTENSION = 8 * 1024 * 1024;
const MAX_OS_RELEASE = 64 * 1024;
const STREAM_BUFFER = 1024 * 1024;

/** Records re-derived from the entry's fields whenever an entry is re-encoded. */
const MANAGED_KEYS = new Set(['path', 'linkpath', 'size', 'hdrcharset', 'GNU.sparse.name']);
const STRING_KEYS = new Set(['path', 'linkpath', 'uname', 'gname', 'GNU.sparse.name']);
const TIME_KEYS = new Set(['mtime', 'atime', 'ctime']);

const DROPPED = new Set(['.dockerenv', '.dockerinit', 'boot/boot']);
const HOST_FILES = new Set(['etc/hosts', 'etc/resolv.conf', 'etc/hostname']);
const OS_RELEASE = ['etc/os-release', 'usr/lib/os-release'];
const INIT_PATHS = new Set(['sbin/init', 'usr/sbin/init']);
const BOOT_SYMLINKS = new Set(['vmlinuz', 'initrd.img', 'boot/vmlinuz', 'boot/initrd.img']);
const KERNEL = /^boot\/vmlinuz(-[^/]+)?$/;
const INITRD = /^boot\/(initrd\.img(-[^/]+)?|initramfs-[^/]+\.img|initramfs-[A-Za-z0-9_]+)$/;

type Kind = 'file' | 'hardlink' | 'symlink' | 'dir' | 'char' | 'block' | 'fifo';

/**
 * Names, link targets and pax values are kept as latin1 strings (one char per byte), so that names which
 * are not valid UTF-8 reach the file system with the bytes they had.
 */
const toBytes = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
const toText = (s: string): string => Buffer.from(s, 'latin1').toString('utf8');

interface PaxRecord {
  key: string;
  value: string;
  raw: Buffer;
}

interface TarHeader {
  name: string;
  linkname: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  pax: PaxRecord[];
}

interface InputEntry extends TarHeader {
  /** The header blocks exactly as read (extension headers and their data included). */
  raw: Buffer[];
}

interface Plan {
  head: Buffer[];
  forwardBody: boolean;
  body?: Buffer;
  captureAs?: string;
}

const DROP: Plan = { head: [], forwardBody: false };

function malformed(what: string, at: number): C2vError {
  return new C2vError('input', `the exported file system is not a valid tar stream: ${what} (at byte ${at})`);
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function cString(block: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && block[end] !== 0) end++;
  return block.toString('latin1', off, end);
}

function readNumber(block: Buffer, off: number, len: number, what: string, at: number): number {
  if (block[off] & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit as the marker.
    let v = 0n;
    for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(block[off + i]);
    const bits = BigInt(len * 8);
    v = block[off] & 0x40 ? v - (1n << bits) : v & ((1n << (bits - 1n)) - 1n);
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw malformed(`${what} out of range`, at);
    return n;
  }
  const text = cString(block, off, len).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw malformed(`${what} field is not an octal number`, at);
  return parseInt(text, 8);
}

function checksumMatches(block: Buffer): boolean {
  const stored = cString(block, 148, 8).trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  const want = parseInt(stored, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Old BSD/Solaris tars summed signed bytes; libarchive accepts both, so do we.
  return want === unsigned || want === signed;
}

function parseHeader(block: Buffer, at: number): TarHeader {
  if (!checksumMatches(block)) throw malformed('header checksum mismatch', at);
  const magic = block.toString('latin1', 257, 263);
  const ustar = magic.startsWith('ustar');
  let name = cString(block, 0, 100);
  // Only POSIX ustar has a prefix field; GNU keeps atime/ctime at that offset.
  if (magic === 'ustar\0' && block[345] !== 0) name = `${cString(block, 345, 155)}/${name}`;
  const typeflag = block[156] === 0 ? '0' : String.fromCharCode(block[156]);
  const device = typeflag === '3' || typeflag === '4';
  return {
    name,
    linkname: cString(block, 157, 100),
    typeflag,
    mode: readNumber(block, 100, 8, 'mode', at),
    uid: readNumber(block, 108, 8, 'uid', at),
    gid: readNumber(block, 116, 8, 'gid', at),
    size: readNumber(block, 124, 12, 'size', at),
    mtime: readNumber(block, 136, 12, 'mtime', at),
    uname: ustar ? cString(block, 265, 32) : '',
    gname: ustar ? cString(block, 297, 32) : '',
    devmajor: device ? readNumber(block, 329, 8, 'devmajor', at) : 0,
    devminor: device ? readNumber(block, 337, 8, 'devminor', at) : 0,
    pax: [],
  };
}

function parsePax(data: Buffer, at: number): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    const lenText = space < 0 ? '' : data.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw malformed('pax record without a length', at);
    const end = pos + Number(lenText);
    const eq = data.indexOf(0x3d, space + 1);
    if (end > data.length || end <= space + 1 || data[end - 1] !== 0x0a || eq < 0 || eq >= end) {
      throw malformed('pax record with a wrong length', at);
    }
    records.push({
      key: data.toString('latin1', space + 1, eq),
      value: data.toString('latin1', eq + 1, end - 1),
      raw: data.subarray(pos, end),
    });
    pos = end;
  }
  return records;
}

function decimal(record: PaxRecord, at: number): number {
  if (!/^[0-9]+$/.test(record.value)) throw malformed(`pax ${record.key} is not a decimal number`, at);
  return Number(record.value);
}

function applyPax(h: TarHeader, at: number): void {
  let sparseName: string | undefined;
  for (const r of h.pax) {
    if (r.value === '') continue; // an empty value means "use the header field"
    switch (r.key) {
      case 'path': h.name = r.value; break;
      case 'linkpath': h.linkname = r.value; break;
      case 'size': h.size = decimal(r, at); break;
      case 'uid': h.uid = decimal(r, at); break;
      case 'gid': h.gid = decimal(r, at); break;
      case 'uname': h.uname = r.value; break;
      case 'gname': h.gname = r.value; break;
      case 'mtime': {
        const t = Math.floor(Number(r.value));
        if (!Number.isSafeInteger(t)) throw malformed('pax mtime is not a number', at);
        h.mtime = t;
        break;
      }
      case 'SCHILY.devmajor': h.devmajor = decimal(r, at); break;
      case 'SCHILY.devminor': h.devminor = decimal(r, at); break;
      case 'GNU.sparse.name': sparseName = r.value; break;
    }
  }
  // GNU sparse archives keep a synthetic name in 'path'; the real one wins, as in libarchive.
  if (sparseName !== undefined) h.name = sparseName;
}

function kindOf(typeflag: string, name: string): Kind {
  switch (typeflag) {
    case '1': return 'hardlink';
    case '2': return 'symlink';
    case '3': return 'char';
    case '4': return 'block';
    case '5':
    case 'D': return 'dir';
    case '6': return 'fifo';
    // Old tars mark directories by a trailing slash; unknown types are regular files (POSIX, libarchive).
    default: return name.endsWith('/') ? 'dir' : 'file';
  }
}

/**
 * The path an entry lands on, relative to the root: no leading '/', no '.' or empty components, no trailing '/',
 * and '..' resolved lexically and clamped at the root (as tar and docker do), so that no name can point above it.
 */
function normalise(name: string): string {
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

function outputName(original: string, key: string, kind: Kind): string {
  if (key === '') return './';
  return kind === 'dir' && original.endsWith('/') ? `${key}/` : key;
}

function hasHighBytes(s: string): boolean {
  return /[\x80-\xff]/.test(s);
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

function putOctal(block: Buffer, off: number, len: number, value: number): boolean {
  if (!Number.isSafeInteger(value) || value < 0) return false;
  const digits = value.toString(8);
  if (digits.length > len - 1) return false;
  block.write(`${digits.padStart(len - 1, '0')}\0`, off, len, 'latin1');
  return true;
}

function putChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i];
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
}

function paxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`, 'latin1');
  let len = body.length + 1;
  for (;;) {
    const next = body.length + String(len).length;
    if (next === len) break;
    len = next;
  }
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function splitName(name: string): { prefix: string; name: string } | null {
  if (name.length <= 100) return { prefix: '', name };
  for (let i = name.indexOf('/'); i !== -1 && i <= 155; i = name.indexOf('/', i + 1)) {
    const rest = name.length - i - 1;
    if (rest > 0 && rest <= 100) return { prefix: name.slice(0, i), name: name.slice(i + 1) };
  }
  return null;
}

function padding(size: number): Buffer {
  return Buffer.alloc(roundUp(size) - size);
}

/** A POSIX ustar header, preceded by a pax header when a field does not fit or records are carried over. */
function encodeEntry(e: TarHeader): Buffer[] {
  const block = Buffer.alloc(BLOCK);
  const kept = e.pax.filter((r) => !MANAGED_KEYS.has(r.key));
  const keeps = (key: string): boolean => kept.some((r) => r.key === key);
  const added: [string, string][] = [];

  const split = splitName(e.name);
  if (split) {
    block.write(split.name, 0, 100, 'latin1');
    block.write(split.prefix, 345, 155, 'latin1');
  } else {
    block.write(e.name, 0, 100, 'latin1');
    added.push(['path', e.name]);
  }
  if (e.pax.some((r) => r.key === 'GNU.sparse.name')) added.push(['GNU.sparse.name', e.name]);
  block.write(e.linkname, 157, 100, 'latin1');
  if (e.linkname.length > 100) added.push(['linkpath', e.linkname]);

  putOctal(block, 100, 8, e.mode & 0o7777);
  if (!putOctal(block, 108, 8, e.uid) && !keeps('uid')) added.push(['uid', String(e.uid)]);
  if (!putOctal(block, 116, 8, e.gid) && !keeps('gid')) added.push(['gid', String(e.gid)]);
  if (!putOctal(block, 124, 12, e.size)) added.push(['size', String(e.size)]);
  if (!putOctal(block, 136, 12, e.mtime) && !keeps('mtime')) added.push(['mtime', String(e.mtime)]);
  block[156] = e.typeflag.charCodeAt(0);
  block.write('ustar\x0000', 257, 8, 'latin1');
  if (e.uname.length < 32) block.write(e.uname, 265, 32, 'latin1');
  else if (!keeps('uname')) added.push(['uname', e.uname]);
  if (e.gname.length < 32) block.write(e.gname, 297, 32, 'latin1');
  else if (!keeps('gname')) added.push(['gname', e.gname]);
  if (!putOctal(block, 329, 8, e.devmajor) && !keeps('SCHILY.devmajor')) added.push(['SCHILY.devmajor', String(e.devmajor)]);
  if (!putOctal(block, 337, 8, e.devminor) && !keeps('SCHILY.devminor')) added.push(['SCHILY.devminor', String(e.devminor)]);
  putChecksum(block);

  // libarchive converts pax strings from UTF-8 to the locale and fails on anything it cannot convert
  // (any non-ASCII name under LC_ALL=C); BINARY makes it take the bytes as they are.
  const strings = [...added.filter(([k]) => STRING_KEYS.has(k)).map(([, v]) => v), ...kept.filter((r) => STRING_KEYS.has(r.key)).map((r) => r.value)];
  if (strings.some(hasHighBytes)) added.push(['hdrcharset', 'BINARY']);

  if (kept.length === 0 && added.length === 0) return [block];
  const data = Buffer.concat([...kept.map((r) => r.raw), ...added.map(([k, v]) => paxRecord(k, v))]);
  const pax = Buffer.alloc(BLOCK);
  const base = e.name.replace(/\/+$/, '').split('/').pop() || '.';
  pax.write(`PaxHeaders/${base.slice(0, 80)}`, 0, 100, 'latin1');
  putOctal(pax, 100, 8, 0o644);
  putOctal(pax, 108, 8, 0);
  putOctal(pax, 116, 8, 0);
  putOctal(pax, 124, 12, data.length);
  if (!putOctal(pax, 136, 12, e.mtime)) putOctal(pax, 136, 12, 0);
  pax[156] = 'x'.charCodeAt(0);
  pax.write('ustar\x0000', 257, 8, 'latin1');
  putChecksum(pax);
  return [pax, data, padding(data.length), block];
}

// ---------------------------------------------------------------------------------------------------------
// The filter

type State = 'header' | 'extension' | 'body' | 'end';

class RootfsFilter extends Transform {
  private readonly fixes: RootfsFixes;
  private readonly onInfo: (info: RootfsInfo) => void;
  private readonly now: number;
  private readonly extraKeys: Set<string>;

  private state: State = 'header';
  private pos = 0;
  private acc: Buffer[] = [];
  private accLen = 0;
  private need = BLOCK;
  private extension: { typeflag: string; size: number; block: Buffer; at: number } | null = null;
  private pendingRaw: Buffer[] = [];
  private pendingPax: PaxRecord[] = [];
  private longName: string | null = null;
  private longLink: string | null = null;
  private globals: Buffer[] = [];
  private body: { data: number; rest: number; forward: boolean; captureAs?: string; captured: Buffer[]; capturedLen: number } | null = null;

  /** Every path the output holds so far, with its kind. */
  private readonly seen = new Map<string, Kind>();
  private readonly dirs = new Set<string>();
  private readonly dropped = new Set<string>();
  private readonly captured = new Map<string, Buffer | null>();
  private readonly info: RootfsInfo = { entries: 0, bytes: 0, blocks: 0, kernels: [], initrds: [], symlinks: {}, hasInit: false };

  constructor(fixes: RootfsFixes, onInfo: (info: RootfsInfo) => void) {
    super({ readableHighWaterMark: STREAM_BUFFER, writableHighWaterMark: STREAM_BUFFER });
    this.fixes = fixes;
    this.onInfo = onInfo;
    const now = Math.floor(Date.now() / 1000);
    this.now = fixes.mtimeClamp === undefined ? now : Math.min(now, fixes.mtimeClamp);
    this.extraKeys = new Set((fixes.extraFiles ?? []).map((f) => normalise(toBytes(f.path))));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.consume(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      callback();
    } catch (e) {
      callback(e as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.finish();
      callback();
    } catch (e) {
      callback(e as Error);
    }
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.state === 'end') {
        // Whatever follows the end-of-archive marker (record padding) is not part of the archive.
        this.pos += chunk.length - off;
        return;
      }
      if (this.state === 'body') {
        off = this.consumeBody(chunk, off);
        continue;
      }
      const take = Math.min(this.need - this.accLen, chunk.length - off);
      this.acc.push(chunk.subarray(off, off + take));
      this.accLen += take;
      this.pos += take;
      off += take;
      if (this.accLen < this.need) return;
      const buf = this.acc.length === 1 ? this.acc[0] : Buffer.concat(this.acc, this.accLen);
      this.acc = [];
      this.accLen = 0;
      if (this.state === 'header') this.onHeaderBlock(buf);
      else this.onExtensionData(buf);
    }
  }

  private consumeBody(chunk: Buffer, off: number): number {
    const b = this.body!;
    const n = Math.min(b.rest, chunk.length - off);
    const part = chunk.subarray(off, off + n);
    if (b.forward) this.push(part);
    if (b.captureAs !== undefined && b.data > 0) {
      const data = part.subarray(0, Math.min(n, b.data));
      if (b.capturedLen + data.length <= MAX_OS_RELEASE) b.captured.push(data);
      b.capturedLen += data.length;
    }
    b.data = Math.max(0, b.data - n);
    b.rest -= n;
    this.pos += n;
    if (b.rest === 0) {
      if (b.captureAs !== undefined) {
        this.captured.set(b.captureAs, b.capturedLen <= MAX_OS_RELEASE ? Buffer.concat(b.captured) : null);
      }
      this.body = null;
      this.state = 'header';
    }
    return off + n;
  }

  private onHeaderBlock(block: Buffer): void {
    const at = this.pos - BLOCK;
    // libarchive stops at the first zero block, so the archive ends there for mke2fs too.
    if (isZeroBlock(block)) {
      if (this.pendingRaw.length > 0) throw malformed('extension header without an entry', at);
      this.state = 'end';
      return;
    }
    const h = parseHeader(block, at);
    switch (h.typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K':
        if (h.size > MAX_EXTENSION) throw malformed(`extension header of ${h.size} bytes`, at);
        this.extension = { typeflag: h.typeflag, size: h.size, block, at };
        this.need = roundUp(h.size);
        this.state = 'extension';
        if (this.need === 0) this.onExtensionData(Buffer.alloc(0));
        return;
      case 'S':
        throw new C2vError('input', `the exported file system contains an old-style GNU sparse entry (${toText(h.name)}), which c2v cannot rewrite`);
    }
    this.onEntry(this.entryFrom(h, block, at), at);
  }

  private onExtensionData(buf: Buffer): void {
    const ext = this.extension!;
    const data = buf.subarray(0, ext.size);
    if (ext.typeflag === 'g') {
      // libarchive ignores global records; keep them in place for other readers.
      this.globals.push(ext.block, buf);
    } else {
      this.pendingRaw.push(ext.block, buf);
      if (ext.typeflag === 'x') this.pendingPax.push(...parsePax(data, ext.at));
      else if (ext.typeflag === 'L') this.longName = cString(data, 0, data.length);
      else this.longLink = cString(data, 0, data.length);
    }
    this.extension = null;
    this.need = BLOCK;
    this.state = 'header';
  }

  private entryFrom(h: TarHeader, block: Buffer, at: number): InputEntry {
    const e: InputEntry = { ...h, pax: this.pendingPax, raw: [...this.pendingRaw, block] };
    if (this.longName !== null) e.name = this.longName;
    if (this.longLink !== null) e.linkname = this.longLink;
    applyPax(e, at);
    this.pendingPax = [];
    this.pendingRaw = [];
    this.longName = null;
    this.longLink = null;
    return e;
  }

  private onEntry(e: InputEntry, at: number): void {
    const kind = kindOf(e.typeflag, e.name);
    // libarchive reads no data for these types whatever the size says, other readers skip it: refuse to guess.
    if ('123456'.includes(e.typeflag) && e.size > 0) {
      throw malformed(`${kind} entry ${toText(e.name)} claims ${e.size} data bytes`, at);
    }
    const key = normalise(e.name);
    const plan = this.plan(e, key, kind);

    if (this.globals.length > 0) {
      for (const g of this.globals) this.push(g);
      this.globals = [];
    }
    if (plan.head.length > 0) {
      this.ensureParents(key, false);
      for (const b of plan.head) this.push(b);
      if (plan.body) {
        this.push(plan.body);
        this.push(padding(plan.body.length));
      }
    }
    if (e.size > 0) {
      this.body = { data: e.size, rest: roundUp(e.size), forward: plan.forwardBody, captureAs: plan.captureAs, captured: [], capturedLen: 0 };
      this.state = 'body';
    }
  }

  /** Decides what becomes of one input entry, and records what the output will contain. */
  private plan(e: InputEntry, key: string, kind: Kind): Plan {
    const target = kind === 'hardlink' ? normalise(e.linkname) : '';
    if (
      DROPPED.has(key) ||
      key.startsWith('boot/boot/') ||
      (key.startsWith('dev/') && kind === 'file') ||
      (kind === 'hardlink' && this.dropped.has(target))
    ) {
      return this.discard(key, 'not wanted in a VM');
    }
    if (this.extraKeys.has(key)) {
      if (kind === 'dir') throw new C2vError('input', `cannot add the file /${toText(key)}: the image has a directory there`);
      return this.discard(key, 'replaced by an extra file');
    }
    this.checkTree(e, key, kind, target);

    if (kind !== 'dir') {
      if (key === 'etc/fstab') return this.replace(e, key, Buffer.from(this.fixes.fstab), 0o644);
      if (HOST_FILES.has(key) && kind === 'file') {
        if (e.size === 0) return this.replace(e, key, this.defaultContent(key), 0o644);
        return this.pass(e, key, kind, { mode: 0o644 });
      }
      if (key === 'etc/machine-id') {
        // Empty, not absent: systemd then writes a fresh id at first boot instead of every VM sharing one.
        if (kind === 'file') return this.replace(e, key, Buffer.alloc(0), e.mode);
        return this.replace({ ...e, uid: 0, gid: 0, uname: '', gname: '', pax: [] }, key, Buffer.alloc(0), 0o444);
      }
    }
    return this.pass(e, key, kind, {});
  }

  /**
   * A stream that is not a plain tree (what a file system export always is) is refused with the entry named,
   * rather than left to mke2fs, which would fail with a vaguer message or quietly pick one reading: an entry
   * under a symlink or a file, the same path twice (directories excepted), a hard link to nothing before it,
   * names ext4 cannot hold.
   */
  private checkTree(e: InputEntry, key: string, kind: Kind, target: string): void {
    const shown = `/${toText(key)}`;
    const refuse = (why: string): never => {
      throw new C2vError('input', `the image's file system is not a plain tree: ${why}; rebuild the image (docker export never writes such entries)`);
    };
    if (key === '') {
      if (kind !== 'dir') refuse(`the entry "${toText(e.name)}" names the root directory but is a ${kind}`);
      return;
    }
    for (const part of key.split('/')) {
      if (part.length > 255) refuse(`a name in ${shown.slice(0, 80)}... is ${part.length} bytes long (ext4 allows 255)`);
    }
    if (e.linkname.length > 4095 && kind === 'symlink') refuse(`the symlink ${shown} has a ${e.linkname.length}-byte target (the limit is 4095)`);
    let slash = key.indexOf('/');
    while (slash !== -1) {
      const parent = key.slice(0, slash);
      const parentKind = this.seen.get(parent);
      if (parentKind !== undefined && parentKind !== 'dir') refuse(`${shown} lies under /${toText(parent)}, which is a ${parentKind}`);
      slash = key.indexOf('/', slash + 1);
    }
    const before = this.seen.get(key);
    if (before !== undefined && !(before === 'dir' && kind === 'dir')) refuse(`${shown} appears twice (as a ${before}, then as a ${kind})`);
    if (kind === 'hardlink') {
      const targetKind = this.seen.get(target);
      if (targetKind === undefined) refuse(`the hard link ${shown} points to /${toText(target)}, which is not before it in the image`);
      if (targetKind === 'dir') refuse(`the hard link ${shown} points to the directory /${toText(target)}`);
    }
  }

  private discard(key: string, why: string): Plan {
    debug('dropping %s (%s)', toText(key), why);
    this.dropped.add(key);
    return DROP;
  }

  private pass(e: InputEntry, key: string, kind: Kind, change: { mode?: number }): Plan {
    const out: TarHeader = { ...e, name: outputName(e.name, key, kind) };
    let changed = out.name !== e.name;
    if (change.mode !== undefined && change.mode !== e.mode) {
      out.mode = change.mode;
      changed = true;
    }
    if (kind === 'hardlink') {
      out.linkname = normalise(e.linkname);
      if (out.linkname !== e.linkname) changed = true;
      // Docker writes Go 1.8 file-type bits into the mode (0100644); on a hard link they make
      // libarchive report a regular file and mke2fs then creates an empty file instead of the link.
      if (e.mode & ~0o7777) {
        out.mode = e.mode & 0o7777;
        changed = true;
      }
    }
    if (this.clampTimes(out)) changed = true;
    if (!e.pax.some((r) => r.key === 'hdrcharset') && e.pax.some((r) => STRING_KEYS.has(r.key) && hasHighBytes(r.value))) {
      changed = true;
    }
    this.record(key, kind, kind === 'file' ? e.size : 0, out.linkname);
    const plan: Plan = { head: changed ? encodeEntry(out) : e.raw, forwardBody: true };
    if (kind === 'file' && OS_RELEASE.includes(key)) plan.captureAs = key;
    if (kind === 'hardlink' && OS_RELEASE.includes(key) && this.captured.has(out.linkname)) {
      this.captured.set(key, this.captured.get(out.linkname) ?? null);
    }
    return plan;
  }

  private replace(e: TarHeader, key: string, content: Buffer, mode: number): Plan {
    debug('replacing %s', toText(key));
    const out: TarHeader = { ...e, name: key, typeflag: '0', linkname: '', mode, size: content.length, devmajor: 0, devminor: 0 };
    this.clampTimes(out);
    this.record(key, 'file', content.length, '');
    return { head: encodeEntry(out), forwardBody: false, body: content };
  }

  private clampTimes(out: TarHeader): boolean {
    const clamp = this.fixes.mtimeClamp;
    if (clamp === undefined) return false;
    let changed = false;
    if (out.mtime > clamp) {
      out.mtime = clamp;
      changed = true;
    }
    if (out.pax.some((r) => TIME_KEYS.has(r.key) && Number(r.value) > clamp)) {
      out.pax = out.pax.map((r) => (TIME_KEYS.has(r.key) && Number(r.value) > clamp ? { key: r.key, value: String(clamp), raw: paxRecord(r.key, String(clamp)) } : r));
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

  private record(key: string, kind: Kind, size: number, linkname: string): void {
    this.info.entries++;
    this.seen.set(key, kind);
    if (kind === 'dir') this.dirs.add(key);
    if (kind === 'file') this.info.bytes += size;
    this.info.blocks += entryBlocks(kind, size, linkname);
    if (kind === 'file' || kind === 'hardlink') {
      if (KERNEL.test(key)) this.info.kernels.push(toText(key));
      if (INITRD.test(key)) this.info.initrds.push(toText(key));
    }
    if (kind === 'symlink' && BOOT_SYMLINKS.has(key)) this.info.symlinks[toText(key)] = toText(linkname);
    if (INIT_PATHS.has(key) && (kind === 'file' || kind === 'hardlink' || kind === 'symlink')) this.info.hasInit = true;
  }

  /** Emits directory entries for missing parents; `strict` refuses a parent the image has as a non-directory. */
  private ensureParents(key: string, strict: boolean): void {
    const parts = key.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (this.dirs.has(dir)) continue;
      if (this.seen.has(dir)) {
        if (strict) throw new C2vError('input', `cannot add /${toText(key)}: /${toText(dir)} in the image is not a directory`);
        return;
      }
      this.addDir(dir);
    }
  }

  private addDir(key: string): void {
    this.emitNew({ name: `${key}/`, typeflag: '5', mode: 0o755, size: 0 });
    this.record(key, 'dir', 0, '');
  }

  private addFile(path: string, content: string | Buffer, mode: number): void {
    const key = normalise(toBytes(path));
    if (key === '') throw new C2vError('input', `cannot add a file at "${path}"`);
    if (this.dirs.has(key)) throw new C2vError('input', `cannot add the file /${toText(key)}: the image has a directory there`);
    this.ensureParents(key, true);
    const body = typeof content === 'string' ? Buffer.from(content) : content;
    this.emitNew({ name: key, typeflag: '0', mode, size: body.length });
    this.push(body);
    this.push(padding(body.length));
    this.record(key, 'file', body.length, '');
  }

  private emitNew(h: Pick<TarHeader, 'name' | 'typeflag' | 'mode' | 'size'>): void {
    const header: TarHeader = { ...h, linkname: '', uid: 0, gid: 0, mtime: this.now, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [] };
    for (const b of encodeEntry(header)) this.push(b);
  }

  private finish(): void {
    if (this.state !== 'end') {
      const clean = this.state === 'header' && this.accLen === 0;
      throw malformed(clean ? 'stream ended without the end-of-archive marker' : 'stream ended inside an entry', this.pos);
    }
    for (const g of this.globals) this.push(g);
    this.globals = [];

    if (!this.seen.has('etc/fstab') && !this.extraKeys.has('etc/fstab')) this.addFile('etc/fstab', this.fixes.fstab, 0o644);
    for (const key of HOST_FILES) {
      if (!this.seen.has(key) && !this.extraKeys.has(key)) this.addFile(key, this.defaultContent(key), 0o644);
    }
    if (!this.seen.has('etc/machine-id') && !this.extraKeys.has('etc/machine-id')) this.addFile('etc/machine-id', '', 0o444);
    for (const dir of this.fixes.ensureDirs ?? []) {
      const key = normalise(toBytes(dir));
      if (key === '' || this.dirs.has(key)) continue;
      if (this.seen.has(key)) throw new C2vError('input', `cannot create the directory /${dir}: the image has a file there`);
      this.ensureParents(key, true);
      this.addDir(key);
    }
    for (const f of this.fixes.extraFiles ?? []) this.addFile(f.path, f.content, f.mode ?? 0o644);

    const etc = this.captured.get('etc/os-release');
    const text = etc ?? this.captured.get('usr/lib/os-release');
    if (text) this.info.osRelease = parseOsRelease(text.toString('utf8'));

    if (this.fixes.finalFiles) {
      const snapshot: RootfsInfo = structuredClone(this.info);
      for (const f of this.fixes.finalFiles(snapshot)) this.addFile(f.path, f.content, f.mode ?? 0o644);
    }
    this.push(END_OF_ARCHIVE);
    this.onInfo(structuredClone(this.info));
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

/** Parses os-release(5): KEY=value lines, values optionally quoted, shell-style backslash escapes. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]] = unquote(m[2]);
  }
  return out;
}

function unquote(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '"') {
      i++;
      while (i < s.length && s[i] !== '"') {
        // Inside double quotes a backslash only escapes the characters the shell treats specially there.
        if (s[i] === '\\' && i + 1 < s.length && '$`"\\'.includes(s[i + 1])) {
          out += s[i + 1];
          i += 2;
        } else {
          out += s[i++];
        }
      }
      i++;
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      out += s.slice(i + 1, end === -1 ? s.length : end);
      i = end === -1 ? s.length : end + 1;
    } else if (c === '\\' && i + 1 < s.length) {
      out += s[i + 1];
      i += 2;
    } else if (c === ' ' || c === '\t') {
      break; // unquoted whitespace ends the value; what follows is a comment or junk
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
