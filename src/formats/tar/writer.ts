/**
 * Encoding tar entries: a POSIX ustar header, preceded by a pax header when a field does not fit or records are
 * carried over from the entry as read; and the header of an OVA member, which never has pax.
 */
import {
  FIELD,
  TAR_BLOCK,
  USTAR_MAX_SIZE,
  putBase256,
  putOctal,
  putString,
  roundUpToBlock,
  sealHeader,
  type TarHeader,
} from './header.js';
import { encodePaxRecord, type PaxRecord } from './pax.js';

export interface TarEntryFields extends TarHeader {
  /** Records of the entry as read; all but the managed ones are copied byte for byte. */
  pax: readonly PaxRecord[];
}

/** Records re-derived from the entry's fields whenever an entry is encoded. */
const MANAGED_KEYS = new Set(['path', 'linkpath', 'size', 'hdrcharset', 'GNU.sparse.name']);
const STRING_KEYS = new Set(['path', 'linkpath', 'uname', 'gname', 'GNU.sparse.name']);

function hasHighBytes(s: string): boolean {
  return /[\x80-\xff]/.test(s);
}

/**
 * Whether records as read hand libarchive non-ASCII strings without hdrcharset=BINARY: copied as they are,
 * such an entry fails in a C locale, encoded by encodeEntry it does not.
 */
export function needsBinaryCharset(pax: readonly PaxRecord[]): boolean {
  return !pax.some((r) => r.key === 'hdrcharset') && pax.some((r) => STRING_KEYS.has(r.key) && hasHighBytes(r.value));
}

function splitName(name: string): { prefix: string; name: string } | null {
  if (name.length <= 100) return { prefix: '', name };
  for (let i = name.indexOf('/'); i !== -1 && i <= 155; i = name.indexOf('/', i + 1)) {
    const rest = name.length - i - 1;
    if (rest > 0 && rest <= 100) return { prefix: name.slice(0, i), name: name.slice(i + 1) };
  }
  return null;
}

/** Zeros from the end of `size` bytes of data to the next block boundary. */
export function tarPadding(size: number): Buffer {
  checkUint('size', size, Number.MAX_SAFE_INTEGER);
  return Buffer.alloc(roundUpToBlock(size) - size);
}

/** The header blocks of one entry (its data and padding follow); mode bits above 0o7777 are not written. */
export function encodeEntry(e: TarEntryFields): Buffer[] {
  const block = Buffer.alloc(TAR_BLOCK);
  const kept = e.pax.filter((r) => !MANAGED_KEYS.has(r.key));
  const keeps = (key: string): boolean => kept.some((r) => r.key === key);
  const added: [string, string][] = [];

  const split = splitName(e.name);
  if (split) {
    putString(block, FIELD.name, split.name);
    putString(block, FIELD.prefix, split.prefix);
  } else {
    putString(block, FIELD.name, e.name);
    added.push(['path', e.name]);
  }
  if (e.pax.some((r) => r.key === 'GNU.sparse.name')) added.push(['GNU.sparse.name', e.name]);
  putString(block, FIELD.linkname, e.linkname);
  if (e.linkname.length > 100) added.push(['linkpath', e.linkname]);

  putOctal(block, FIELD.mode, e.mode & 0o7777);
  if (!putOctal(block, FIELD.uid, e.uid) && !keeps('uid')) added.push(['uid', String(e.uid)]);
  if (!putOctal(block, FIELD.gid, e.gid) && !keeps('gid')) added.push(['gid', String(e.gid)]);
  if (!putOctal(block, FIELD.size, e.size)) added.push(['size', String(e.size)]);
  if (!putOctal(block, FIELD.mtime, e.mtime) && !keeps('mtime')) added.push(['mtime', String(e.mtime)]);
  block[FIELD.typeflag[0]] = e.typeflag.charCodeAt(0);
  putString(block, FIELD.magic, 'ustar\x0000');
  if (e.uname.length < 32) putString(block, FIELD.uname, e.uname);
  else if (!keeps('uname')) added.push(['uname', e.uname]);
  if (e.gname.length < 32) putString(block, FIELD.gname, e.gname);
  else if (!keeps('gname')) added.push(['gname', e.gname]);
  if (!putOctal(block, FIELD.devmajor, e.devmajor) && !keeps('SCHILY.devmajor')) added.push(['SCHILY.devmajor', String(e.devmajor)]);
  if (!putOctal(block, FIELD.devminor, e.devminor) && !keeps('SCHILY.devminor')) added.push(['SCHILY.devminor', String(e.devminor)]);
  sealHeader(block);

  // libarchive converts pax strings from UTF-8 to the locale and fails on anything it cannot convert
  // (any non-ASCII name under LC_ALL=C); BINARY makes it take the bytes as they are.
  const strings = [...added.filter(([k]) => STRING_KEYS.has(k)).map(([, v]) => v), ...kept.filter((r) => STRING_KEYS.has(r.key)).map((r) => r.value)];
  if (strings.some(hasHighBytes)) added.push(['hdrcharset', 'BINARY']);

  if (kept.length === 0 && added.length === 0) return [block];
  const data = Buffer.concat([...kept.map((r) => r.raw), ...added.map(([k, v]) => encodePaxRecord(k, v))]);
  const pax = Buffer.alloc(TAR_BLOCK);
  const base = e.name.replace(/\/+$/, '').split('/').pop() || '.';
  putString(pax, FIELD.name, `PaxHeaders/${base.slice(0, 80)}`);
  putOctal(pax, FIELD.mode, 0o644);
  putOctal(pax, FIELD.uid, 0);
  putOctal(pax, FIELD.gid, 0);
  putOctal(pax, FIELD.size, data.length);
  if (!putOctal(pax, FIELD.mtime, e.mtime)) putOctal(pax, FIELD.mtime, 0);
  pax[FIELD.typeflag[0]] = 'x'.charCodeAt(0);
  putString(pax, FIELD.magic, 'ustar\x0000');
  sealHeader(pax);
  return [pax, data, tarPadding(data.length), block];
}

// ---------------------------------------------------------------------------------------------------------
// OVA members
//
// vSphere reads ustar and GNU tar but not pax extended headers, so an OVA member never gets a pax ('x') record:
// members below 8 GiB get a plain ustar header, larger ones a GNU header whose size field is base-256. Owners
// are numeric 0 with empty names, and mtime defaults to 0, so the same members always give the same bytes. The
// layout matches what GNU tar writes with `--numeric-owner --owner=0 --group=0 --mtime=@0` (`--format=ustar`,
// or `--format=gnu` for big members), which the tests check byte for byte.

export interface OvaMemberHeader {
  name: string;
  size: number;
  /** Seconds since the epoch; 0 unless the caller clamps to SOURCE_DATE_EPOCH. */
  mtime?: number;
  mode?: number;
}

function checkUint(what: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`tar ${what} ${value} must be an integer between 0 and ${max}`);
  }
}

function checkMemberName(name: string): void {
  const bytes = Buffer.byteLength(name, 'utf8');
  // OVA members are flat: vSphere looks them up by their References href, with no directories.
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new RangeError(`tar member name ${JSON.stringify(name)} must be a plain file name`);
  }
  // Longer names need a pax or GNU long-name record; neither is worth it for OVA members.
  if (bytes > FIELD.name[1]) throw new RangeError(`tar member name ${JSON.stringify(name)} is ${bytes} bytes; the limit is 100`);
}

/** The 512-byte header of a regular-file OVA member; throws a RangeError for a name or number it cannot hold. */
export function encodeOvaMemberHeader({ name, size, mtime = 0, mode = 0o644 }: OvaMemberHeader): Buffer {
  checkMemberName(name);
  checkUint('size', size, Number.MAX_SAFE_INTEGER);
  checkUint('mtime', mtime, USTAR_MAX_SIZE);
  checkUint('mode', mode, 0o7777);

  const gnu = size > USTAR_MAX_SIZE;
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(name, FIELD.name[0], 'utf8');
  putOctal(h, FIELD.mode, mode);
  putOctal(h, FIELD.uid, 0);
  putOctal(h, FIELD.gid, 0);
  if (gnu) putBase256(h, FIELD.size, size);
  else putOctal(h, FIELD.size, size);
  putOctal(h, FIELD.mtime, mtime);
  h.write('0', FIELD.typeflag[0], 'ascii');
  if (gnu) {
    // Base-256 numbers are a GNU extension, so say so in the magic instead of claiming ustar.
    h.write('ustar  \0', FIELD.magic[0], 'ascii');
  } else {
    h.write('ustar\u000000', FIELD.magic[0], 'ascii');
    putOctal(h, FIELD.devmajor, 0);
    putOctal(h, FIELD.devminor, 0);
  }
  // uname/gname stay empty: ownership is numeric, never mapped through anyone's passwd.
  return sealHeader(h);
}
