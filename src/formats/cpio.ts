/**
 * The "newc" cpio archive the Linux kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
 * buffer-format.rst): a 110-byte ASCII header per entry, its name and data each padded to 4 bytes, and a
 * TRAILER!!! entry. The kernel unpacks archives one after another, so one appended to a distribution's initrd
 * adds files to it without rebuilding it.
 */

export interface CpioEntry {
  /** Relative to the initramfs root, without a leading '/'. */
  path: string;
  kind: 'dir' | 'file';
  mode: number;
  data?: Buffer;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const TRAILER = 'TRAILER!!!';

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');
const pad4 = (n: number): number => (4 - (n % 4)) % 4;

function header(fields: { ino: number; mode: number; nlink: number; mtime: number; size: number; nameSize: number }): string {
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  return ['070701', hex8(fields.ino), hex8(fields.mode), hex8(0), hex8(0), hex8(fields.nlink), hex8(fields.mtime), hex8(fields.size), hex8(0), hex8(0), hex8(0), hex8(0), hex8(fields.nameSize), hex8(0)].join('');
}

function record(name: string, fields: { ino: number; mode: number; nlink: number; mtime: number }, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const head = Buffer.from(header({ ...fields, size: data.length, nameSize: nameBytes.length }), 'latin1');
  return [head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length)), data, Buffer.alloc(pad4(data.length))];
}

/** The archive, owned by root, every time `mtime`: the same entries give the same bytes. */
export function encodeNewc(entries: readonly CpioEntry[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((e, i) => {
    if (e.path === '' || e.path.startsWith('/') || e.path.split('/').includes('..')) throw new Error(`cpio: bad entry path ${JSON.stringify(e.path)}`);
    const type = e.kind === 'dir' ? S_IFDIR : S_IFREG;
    parts.push(...record(e.path, { ino: i + 1, mode: type | (e.mode & 0o7777), nlink: e.kind === 'dir' ? 2 : 1, mtime }, e.kind === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0)));
  });
  parts.push(...record(TRAILER, { ino: 0, mode: 0, nlink: 1, mtime: 0 }, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** Zero bytes that bring an archive of `length` bytes to the 4-byte boundary where the next one must start. */
export function appendPadding(length: number): Buffer {
  return Buffer.alloc(pad4(length));
}
