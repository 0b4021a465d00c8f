/**
 * Tar header blocks: POSIX ustar, with the GNU and v7 variants found in the wild.
 *
 * Names, link targets and pax values are kept as byte strings (latin1, one char per byte), so that names which
 * are not valid UTF-8 come out of a decode and encode with the bytes they had; byteString and textOf convert
 * at the edges.
 */
import { C2vError } from '../../errors.js';

export const TAR_BLOCK = 512;

/** Two zero blocks end an archive; readers stop at the first one, GNU tar warns without the second. */
export const TAR_END: Buffer = Buffer.alloc(2 * TAR_BLOCK);

/** The largest size an 11-digit octal field can hold: 8 GiB - 1. */
export const USTAR_MAX_SIZE = 8 ** 11 - 1;

/** [offset, width] of each field in a header block (POSIX ustar; GNU shares them up to the magic). */
export const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 8],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  /** ustar only: GNU keeps atime and ctime here. */
  prefix: [345, 155],
} as const;

type Field = readonly [offset: number, width: number];

export interface TarHeader {
  /** Byte strings (see the module comment). */
  name: string;
  linkname: string;
  /** One character; a NUL typeflag reads as '0'. */
  typeflag: string;
  /** As stored, file-type bits included when a writer put them there (Docker does). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Whole seconds since the epoch. */
  mtime: number;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

export type TarKind = 'file' | 'hardlink' | 'symlink' | 'dir' | 'char' | 'block' | 'fifo';

/** Builds the error for a malformed header; the reader's version names the stream and the byte offset. */
export type Malformed = (what: string) => Error;

const plainMalformed: Malformed = (what) => new C2vError('input', `not a valid tar header: ${what}`);

/** UTF-8 text as a byte string. */
export const byteString = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
/** A byte string as UTF-8 text (invalid sequences become U+FFFD). */
export const textOf = (bytes: string): string => Buffer.from(bytes, 'latin1').toString('utf8');

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < TAR_BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function cString(block: Buffer, [off, len]: Field): string {
  let end = off;
  while (end < off + len && block[end] !== 0) end++;
  return block.toString('latin1', off, end);
}

/** A C string: the bytes up to the first NUL, as a byte string. */
export function cStringOf(data: Buffer): string {
  return cString(data, [0, data.length]);
}

function readNumber(block: Buffer, field: Field, what: string, malformed: Malformed): number {
  const [off, len] = field;
  if (block[off] & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit as the marker.
    let v = 0n;
    for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(block[off + i]);
    const bits = BigInt(len * 8);
    v = block[off] & 0x40 ? v - (1n << bits) : v & ((1n << (bits - 1n)) - 1n);
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw malformed(`${what} out of range`);
    return n;
  }
  const text = cString(block, field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw malformed(`${what} field is not an octal number`);
  return parseInt(text, 8);
}

export function checksumMatches(block: Buffer): boolean {
  const stored = cString(block, FIELD.chksum).trim();
  if (!/^[0-7]+$/.test(stored)) return false;
  const want = parseInt(stored, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // Old BSD/Solaris tars summed signed bytes; libarchive accepts both, so do we.
  return want === unsigned || want === signed;
}

/** The fields of one header block, refusing a bad checksum. Pax records and GNU long names are the reader's. */
export function decodeHeader(block: Buffer, malformed: Malformed = plainMalformed): TarHeader {
  if (!checksumMatches(block)) throw malformed('header checksum mismatch');
  const magic = block.toString('latin1', FIELD.magic[0], FIELD.magic[0] + 6);
  const ustar = magic.startsWith('ustar');
  let name = cString(block, FIELD.name);
  if (magic === 'ustar\0' && block[FIELD.prefix[0]] !== 0) name = `${cString(block, FIELD.prefix)}/${name}`;
  const flag = block[FIELD.typeflag[0]];
  const typeflag = flag === 0 ? '0' : String.fromCharCode(flag);
  const device = typeflag === '3' || typeflag === '4';
  return {
    name,
    linkname: cString(block, FIELD.linkname),
    typeflag,
    mode: readNumber(block, FIELD.mode, 'mode', malformed),
    uid: readNumber(block, FIELD.uid, 'uid', malformed),
    gid: readNumber(block, FIELD.gid, 'gid', malformed),
    size: readNumber(block, FIELD.size, 'size', malformed),
    mtime: readNumber(block, FIELD.mtime, 'mtime', malformed),
    uname: ustar ? cString(block, FIELD.uname) : '',
    gname: ustar ? cString(block, FIELD.gname) : '',
    devmajor: device ? readNumber(block, FIELD.devmajor, 'devmajor', malformed) : 0,
    devminor: device ? readNumber(block, FIELD.devminor, 'devminor', malformed) : 0,
  };
}

export function entryKind(typeflag: string, name: string): TarKind {
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

/** Writes `value` as width - 1 zero-padded octal digits and a NUL (what GNU tar writes); false if it does not fit. */
export function putOctal(block: Buffer, [off, len]: Field, value: number): boolean {
  if (!Number.isSafeInteger(value) || value < 0) return false;
  const digits = value.toString(8);
  if (digits.length > len - 1) return false;
  block.write(`${digits.padStart(len - 1, '0')}\0`, off, len, 'latin1');
  return true;
}

/** GNU base-256: the top bit of the first byte flags a big-endian binary number in the rest. */
export function putBase256(block: Buffer, [off, len]: Field, value: number): void {
  let v = BigInt(value);
  for (let i = off + len - 1; i > off; i--) {
    block[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[off] = 0x80;
}

/** Writes a byte string, truncated to the field. */
export function putString(block: Buffer, [off, len]: Field, value: string): void {
  block.write(value, off, len, 'latin1');
}

/** Fills in the checksum: six octal digits, NUL, space, the historical form every reader accepts. */
export function sealHeader(block: Buffer): Buffer {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += block[i];
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

export function roundUpToBlock(n: number): number {
  return Math.ceil(n / TAR_BLOCK) * TAR_BLOCK;
}
