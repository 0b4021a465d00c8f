/**
 * Tar headers for OVA packages.
 *
 * vSphere reads ustar and GNU tar but not PAX extended headers, so this never writes a PAX ('x')
 * record: members below 8 GiB get a plain ustar header, larger ones a GNU header whose size field
 * is base-256. Owners are numeric 0 with empty names, and mtime defaults to 0, so the same members
 * always give the same bytes. The layout matches what GNU tar writes with
 * `--numeric-owner --owner=0 --group=0 --mtime=@0` (`--format=ustar`, or `--format=gnu` for big
 * members), which the tests check byte for byte.
 */

export const TAR_BLOCK = 512;

/** Two zero blocks end an archive; readers stop at the first one, GNU tar warns without the second. */
export const TAR_END: Buffer = Buffer.alloc(2 * TAR_BLOCK);

/** The largest size an 11-digit octal field can hold: 8 GiB - 1. */
export const USTAR_MAX_SIZE = 8 ** 11 - 1;

export interface TarHeaderInput {
  name: string;
  size: number;
  /** Seconds since the epoch; 0 unless the caller clamps to SOURCE_DATE_EPOCH. */
  mtime?: number;
  mode?: number;
}

// Field offsets and widths from the POSIX ustar layout (GNU shares them up to the magic).
const NAME = [0, 100] as const;
const MODE = [100, 8] as const;
const UID = [108, 8] as const;
const GID = [116, 8] as const;
const SIZE = [124, 12] as const;
const MTIME = [136, 12] as const;
const CHKSUM = [148, 8] as const;
const TYPEFLAG = 156;
const MAGIC = 257;
const DEVMAJOR = [329, 8] as const;
const DEVMINOR = [337, 8] as const;

function writeOctal(buf: Buffer, [offset, width]: readonly [number, number], value: number): void {
  // width - 1 digits, zero-padded, then a NUL terminator (what GNU tar writes).
  const digits = value.toString(8);
  if (digits.length > width - 1) throw new RangeError(`tar field at ${offset}: ${value} does not fit in ${width - 1} octal digits`);
  buf.write(digits.padStart(width - 1, '0'), offset, 'ascii');
  buf[offset + width - 1] = 0;
}

function writeBase256(buf: Buffer, [offset, width]: readonly [number, number], value: number): void {
  // GNU extension: the top bit of the first byte flags a big-endian binary number in the rest.
  let v = BigInt(value);
  for (let i = offset + width - 1; i > offset; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[offset] = 0x80;
}

function checkName(name: string): void {
  const bytes = Buffer.byteLength(name, 'utf8');
  // OVA members are flat: vSphere looks them up by their References href, with no directories.
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new RangeError(`tar member name ${JSON.stringify(name)} must be a plain file name`);
  }
  // Longer names need a PAX or GNU long-name record; neither is worth it for OVA members.
  if (bytes > NAME[1]) throw new RangeError(`tar member name ${JSON.stringify(name)} is ${bytes} bytes; the limit is 100`);
}

function checkUint(what: string, value: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`tar ${what} ${value} must be an integer between 0 and ${max}`);
  }
}

/** The 512-byte header of a regular file member. */
export function encodeTarHeader({ name, size, mtime = 0, mode = 0o644 }: TarHeaderInput): Buffer {
  checkName(name);
  checkUint('size', size, Number.MAX_SAFE_INTEGER);
  checkUint('mtime', mtime, USTAR_MAX_SIZE);
  checkUint('mode', mode, 0o7777);

  const gnu = size > USTAR_MAX_SIZE;
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(name, NAME[0], 'utf8');
  writeOctal(h, MODE, mode);
  writeOctal(h, UID, 0);
  writeOctal(h, GID, 0);
  if (gnu) writeBase256(h, SIZE, size);
  else writeOctal(h, SIZE, size);
  writeOctal(h, MTIME, mtime);
  h.write('0', TYPEFLAG, 'ascii');
  if (gnu) {
    // Base-256 numbers are a GNU extension, so say so in the magic instead of claiming ustar.
    h.write('ustar  \0', MAGIC, 'ascii');
  } else {
    h.write('ustar\u000000', MAGIC, 'ascii');
    writeOctal(h, DEVMAJOR, 0);
    writeOctal(h, DEVMINOR, 0);
  }
  // uname/gname stay empty: ownership is numeric, never mapped through anyone's passwd.

  h.fill(0x20, CHKSUM[0], CHKSUM[0] + CHKSUM[1]);
  let sum = 0;
  for (const byte of h) sum += byte;
  // Six octal digits, NUL, space: the historical form every reader accepts.
  h.write(sum.toString(8).padStart(6, '0'), CHKSUM[0], 'ascii');
  h[CHKSUM[0] + 6] = 0;
  h[CHKSUM[0] + 7] = 0x20;
  return h;
}

/** Zeros from the end of a member's data to the next 512-byte boundary. */
export function tarPadding(size: number): Buffer {
  checkUint('size', size, Number.MAX_SAFE_INTEGER);
  const rest = size % TAR_BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : TAR_BLOCK - rest);
}
