import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

/**
 * A tar writer for hostile test input: names and link targets as raw bytes (not UTF-8, '../', absolute), pax
 * records with binary values (xattrs), device nodes, GNU PAX 1.0 sparse files, and member data produced on the
 * fly (a 256 MiB random file is never held in memory). It validates nothing on purpose.
 */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarEntry {
  name: string | Buffer;
  type?: EntryType;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  /** Extra pax records, e.g. { 'SCHILY.xattr.security.capability': Buffer }. */
  pax?: Record<string, string | Buffer>;
  /** File content. */
  data?: Buffer | string;
  /** Or: content of `size` bytes produced in chunks (random unless a generator is given). */
  size?: number;
  chunks?: () => Iterable<Buffer>;
  /** A sparse file of `size` bytes whose only data are these (offset, bytes) pieces; written as GNU PAX 1.0. */
  sparse?: { offset: number; data: Buffer }[];
}

const BLOCK = 512;
const TYPEFLAG: Record<EntryType, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

const bytes = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);
const pad = (n: number): Buffer => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

function octal(block: Buffer, off: number, len: number, value: number): void {
  block.write(`${value.toString(8).padStart(len - 1, '0')}\0`, off, len, 'latin1');
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (body.length + String(len).length !== len) len = body.length + String(len).length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function header(name: Buffer, typeflag: string, size: number, e: TarEntry): Buffer {
  const b = Buffer.alloc(BLOCK);
  name.copy(b, 0, 0, Math.min(100, name.length));
  octal(b, 100, 8, (e.mode ?? (typeflag === '5' ? 0o755 : 0o644)) & 0o7777);
  octal(b, 108, 8, Math.min(e.uid ?? 0, 0o7777777));
  octal(b, 116, 8, Math.min(e.gid ?? 0, 0o7777777));
  octal(b, 124, 12, size);
  octal(b, 136, 12, e.mtime ?? 1_700_000_000);
  b[156] = typeflag.charCodeAt(0);
  if (e.linkname) bytes(e.linkname).copy(b, 157, 0, Math.min(100, bytes(e.linkname).length));
  b.write('ustar\x0000', 257, 8, 'latin1');
  octal(b, 329, 8, e.devmajor ?? 0);
  octal(b, 337, 8, e.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

function* entryBlocks(e: TarEntry): Generator<Buffer> {
  const type = e.type ?? 'file';
  const name = bytes(e.name);
  const records: Buffer[] = [];
  for (const [k, v] of Object.entries(e.pax ?? {})) records.push(paxRecord(k, bytes(v)));
  if (name.length > 100) records.push(paxRecord('path', name));
  if (e.linkname && bytes(e.linkname).length > 100) records.push(paxRecord('linkpath', bytes(e.linkname)));
  if ((e.uid ?? 0) > 0o7777777) records.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if ((e.gid ?? 0) > 0o7777777) records.push(paxRecord('gid', Buffer.from(String(e.gid))));

  let body: Buffer | undefined;
  let size = 0;
  let headerName = name;
  if (e.sparse) {
    const realSize = e.size ?? 0;
    records.push(
      paxRecord('GNU.sparse.major', Buffer.from('1')),
      paxRecord('GNU.sparse.minor', Buffer.from('0')),
      paxRecord('GNU.sparse.name', name),
      paxRecord('GNU.sparse.realsize', Buffer.from(String(realSize))),
    );
    headerName = Buffer.concat([Buffer.from('GNUSparseFile.0/'), name.subarray(name.lastIndexOf(0x2f) + 1)]);
    const map = [String(e.sparse.length), ...e.sparse.flatMap((p) => [String(p.offset), String(p.data.length)])].join('\n') + '\n';
    const mapBlock = Buffer.concat([Buffer.from(map), pad(map.length)]);
    body = Buffer.concat([mapBlock, ...e.sparse.map((p) => p.data)]);
    size = body.length;
  } else if (type === 'file') {
    if (e.data !== undefined) {
      body = bytes(e.data);
      size = body.length;
    } else {
      size = e.size ?? 0;
    }
  }
  if (records.length > 0) {
    const data = Buffer.concat(records);
    const x = header(Buffer.from('PaxHeaders/entry'), 'x', data.length, { name: 'PaxHeaders/entry' });
    yield x;
    yield data;
    yield pad(data.length);
  }
  yield header(headerName, TYPEFLAG[type], size, e);
  if (body) {
    yield body;
  } else if (size > 0) {
    let left = size;
    const source = e.chunks?.() ?? randomChunks(size);
    for (const c of source) {
      const piece = c.subarray(0, Math.min(c.length, left));
      left -= piece.length;
      yield piece;
      if (left === 0) break;
    }
    if (left > 0) yield Buffer.alloc(left);
  }
  yield pad(size);
}

function* randomChunks(size: number): Generator<Buffer> {
  for (let left = size; left > 0; left -= 1 << 20) yield randomBytes(Math.min(left, 1 << 20));
}

/** The whole archive as a stream (end-of-archive marker included). */
export function tarStream(entries: Iterable<TarEntry>): Readable {
  function* all(): Generator<Buffer> {
    for (const e of entries) yield* entryBlocks(e);
    yield Buffer.alloc(2 * BLOCK);
  }
  return Readable.from(all(), { objectMode: false });
}

export async function tarBuffer(entries: Iterable<TarEntry>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of tarStream(entries)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** What c2v needs to treat an image as a VM already (no appliance build): a kernel file, an init, os-release. */
export function vmSkeleton(opts: { name?: string } = {}): TarEntry[] {
  return [
    ...['boot', 'etc', 'sbin', 'lib', 'lib/systemd', 'tmp', 'dev', 'usr', 'usr/bin'].map((d): TarEntry => ({ name: d, type: 'dir', mode: d === 'tmp' ? 0o1777 : 0o755 })),
    { name: 'boot/vmlinuz-6.1.0-0-amd64', data: 'not a real kernel: c2v only needs a file here to write grub.cfg\n' },
    { name: 'boot/initrd.img-6.1.0-0-amd64', data: 'not a real initrd\n' },
    { name: 'etc/os-release', data: `ID=debian\nVERSION_ID="12"\nPRETTY_NAME="c2v test image${opts.name ? ` ${opts.name}` : ''}"\n` },
    { name: 'sbin/init', type: 'symlink', linkname: '/lib/systemd/systemd' },
    { name: 'lib/systemd/systemd', data: '#!/bin/sh\n', mode: 0o755 },
  ];
}
