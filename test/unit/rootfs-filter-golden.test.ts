import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { filterRootfs, type RootfsFixes } from '../../src/formats/rootfs-filter.js';
import { tarBuffer, type TarEntry } from '../helpers/crafted-tar.js';

/**
 * Golden bytes: the filter's output for crafted inputs that exercise every corner of its tar handling (GNU long
 * names, global headers, base-256 numbers, signed checksums, v7 headers, ustar prefixes, pax records kept raw,
 * re-encoded entries, clamped times, replaced and added files). The digests were recorded from the filter before
 * its tar codec moved to src/formats/tar/, so any byte the move changed fails here.
 */

const BLOCK = 512;
const pad = (n: number): Buffer => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);
const CLAMP = 1_650_000_000;
const NEW = 1_900_000_000;
const CAPABILITY = Buffer.from([0x01, 0, 0, 0x02, 0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

interface RawHeader {
  name: string | Buffer;
  typeflag: string;
  size?: number;
  mode?: number;
  uid?: number | Buffer;
  gid?: number;
  mtime?: number;
  linkname?: string;
  magic?: 'ustar' | 'gnu' | 'v7';
  prefix?: string;
  uname?: string;
  gname?: string;
  /** Bytes written at offset 345 in a GNU header (where GNU keeps atime). */
  gnuAtime?: string;
  signedChecksum?: boolean;
}

function octal(b: Buffer, off: number, len: number, v: number): void {
  b.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, len, 'latin1');
}

/** One header block written by hand, for what the crafted-tar helper does not produce. */
function raw(h: RawHeader): Buffer {
  const b = Buffer.alloc(BLOCK);
  (typeof h.name === 'string' ? Buffer.from(h.name, 'latin1') : h.name).copy(b, 0, 0, 100);
  octal(b, 100, 8, h.mode ?? 0o644);
  if (Buffer.isBuffer(h.uid)) h.uid.copy(b, 108);
  else octal(b, 108, 8, h.uid ?? 0);
  octal(b, 116, 8, h.gid ?? 0);
  octal(b, 124, 12, h.size ?? 0);
  octal(b, 136, 12, h.mtime ?? 1_600_000_000);
  b[156] = h.typeflag.charCodeAt(0);
  if (h.linkname) b.write(h.linkname, 157, 100, 'latin1');
  const magic = h.magic ?? 'ustar';
  if (magic === 'ustar') b.write('ustar\x0000', 257, 8, 'latin1');
  if (magic === 'gnu') b.write('ustar  \0', 257, 8, 'latin1');
  if (magic !== 'v7') {
    b.write(h.uname ?? 'root', 265, 32, 'latin1');
    b.write(h.gname ?? 'root', 297, 32, 'latin1');
  }
  if (h.prefix) b.write(h.prefix, 345, 155, 'latin1');
  if (h.gnuAtime) b.write(h.gnuAtime, 345, 12, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h.signedChecksum && b[i] > 127 ? b[i] - 256 : b[i];
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

function member(h: RawHeader, data: Buffer | string = ''): Buffer {
  const body = Buffer.from(data as string);
  return Buffer.concat([raw({ ...h, size: h.size ?? body.length }), body, pad(body.length)]);
}

function paxRecord(key: string, value: Buffer | string): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), Buffer.from(value as string, 'latin1'), Buffer.from('\n')]);
  let len = body.length + 1;
  while (body.length + String(len).length !== len) len = body.length + String(len).length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function ext(typeflag: 'x' | 'g' | 'L' | 'K', data: Buffer, name = '././@LongLink'): Buffer {
  return member({ name, typeflag, magic: typeflag === 'L' || typeflag === 'K' ? 'gnu' : 'ustar', mtime: 0 }, data);
}

const base256 = (v: number): Buffer => {
  const b = Buffer.alloc(8);
  b[0] = 0x80;
  b.writeUIntBE(v, 2, 6);
  return b;
};

async function richInput(): Promise<Buffer> {
  const crafted: TarEntry[] = [
    { name: './', type: 'dir', mtime: 1_600_000_000 },
    { name: './etc/', type: 'dir', mtime: NEW },
    { name: 'etc/fstab', data: '# UNCONFIGURED\n' },
    { name: 'etc/hostname', data: '', mode: 0o755 },
    { name: 'etc/hosts', data: '127.0.0.1 localhost\n', mode: 0o600 },
    { name: 'etc/resolv.conf', type: 'symlink', linkname: '../run/resolv.conf' },
    { name: 'etc/machine-id', type: 'symlink', linkname: '/var/lib/dbus/machine-id', uid: 5, gid: 6, pax: { 'SCHILY.xattr.user.x': 'y' } },
    { name: 'etc/issue', data: 'replaced by an extra file\n' },
    { name: '.dockerenv', data: '' },
    { name: 'dev', type: 'dir' },
    { name: 'dev/console', data: '' },
    { name: 'dev/console-link', type: 'hardlink', linkname: 'dev/console' },
    { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', type: 'block', devmajor: 8, devminor: 0, mode: 0o660 },
    { name: 'boot', type: 'dir' },
    { name: 'boot/vmlinuz-6.1.0-9-amd64', data: Buffer.alloc(9000, 0x4b), mtime: NEW },
    { name: 'boot/initrd.img-6.1.0-9-amd64', data: Buffer.alloc(700, 0x49) },
    { name: 'vmlinuz', type: 'symlink', linkname: 'boot/vmlinuz-6.1.0-9-amd64' },
    { name: 'usr', type: 'dir' },
    { name: 'usr/bin', type: 'dir' },
    // unchanged: copied raw, binary xattr included
    { name: 'usr/bin/ping', data: 'ping\n', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': CAPABILITY } },
    // changed (mtime clamp): re-encoded, the binary xattr and the atime record carried over
    { name: 'usr/bin/arping', data: 'arping\n', mode: 0o755, mtime: NEW, pax: { 'SCHILY.xattr.security.capability': CAPABILITY, atime: `${NEW}.5`, mtime: `${NEW}.25` } },
    // changed (./ prefix): re-encoded with an empty-valued record and a long uname
    { name: './usr/bin/tool', data: 'tool\n', pax: { comment: '', uname: 'u'.repeat(40), 'SCHILY.xattr.trusted.t': Buffer.from([0, 1, 0xff]) } },
    // a hard link with Docker's file-type bits: re-encoded without them
    { name: 'usr/bin/tool2', type: 'hardlink', linkname: 'usr/bin/tool', mode: 0o100755 },
    // uid and gid beyond octal, via pax
    { name: 'usr/bin/big-ids', data: 'ids\n', uid: 0o7777777 + 10, gid: 0o7777777 + 20, mtime: NEW },
    // a non-UTF-8 pax name without hdrcharset: re-encoded with hdrcharset=BINARY
    { name: Buffer.concat([Buffer.from('usr/bin/lat'), Buffer.from([0xe9]), Buffer.from('n-'.repeat(60))]), data: 'latin1\n' },
    // names too long for the name field alone: a ustar prefix split, and one only pax can hold
    { name: `usr/${'p'.repeat(120)}`, type: 'dir', mtime: NEW },
    { name: `./usr/${'p'.repeat(120)}/${'q'.repeat(90)}`, data: 'split\n' },
    { name: `./usr/${'p'.repeat(120)}/${'r'.repeat(140)}`, data: 'pax only\n' },
    { name: 'usr/lib', type: 'dir' },
    { name: 'usr/lib/os-release', data: 'ID=debian\nVERSION_ID="12"\n' },
    { name: 'usr/lib/long-link', type: 'symlink', linkname: `../${'l'.repeat(150)}`, mtime: NEW },
    { name: 'usr/lib/sparse', sparse: [{ offset: 4096, data: Buffer.from('sparse data') }], size: 100_000, mtime: NEW },
    { name: 'usr/lib/sparse-kept', sparse: [{ offset: 0, data: Buffer.from('kept') }], size: 5000 },
    { name: 'sbin', type: 'dir' },
    { name: 'sbin/init', type: 'symlink', linkname: '/lib/systemd/systemd' },
    { name: 'orphan/deep/file', data: 'parents are added\n' },
  ];
  const head = await tarBuffer(crafted);
  const body = head.subarray(0, head.length - 2 * BLOCK);

  const handMade = Buffer.concat([
    // a global header kept in place, then a GNU long name and a GNU long link
    ext('g', paxRecord('comment', 'global')),
    ext('L', Buffer.from(`usr/lib/${'n'.repeat(130)}\0`)),
    member({ name: 'usr/lib/nnnn', typeflag: '0', magic: 'gnu' }, 'gnu long name\n'),
    ext('L', Buffer.from(`usr/lib/${'s'.repeat(120)}\0`)),
    ext('K', Buffer.from(`${'t'.repeat(140)}\0`)),
    member({ name: 'usr/lib/ssss', typeflag: '2', magic: 'gnu', linkname: 'tttt' }),
    // GNU header with atime where ustar has its prefix, a base-256 uid and a signed checksum over a high byte
    member({ name: Buffer.from('usr/lib/gnu-\xf6', 'latin1'), typeflag: '0', magic: 'gnu', gnuAtime: '14000000000', uid: base256(70000), signedChecksum: true }, 'g\n'),
    // the same, changed by the clamp
    member({ name: 'usr/lib/gnu-new', typeflag: '0', magic: 'gnu', uid: base256(80000), mtime: NEW }, 'n\n'),
    // a v7 header: no magic, a directory by its trailing slash, and a file under it
    member({ name: 'usr/v7/', typeflag: '0', magic: 'v7', mode: 0o755 }),
    member({ name: 'usr/v7/old', typeflag: '\0', magic: 'v7' }, 'v7\n'),
    // a ustar prefix that is already normal, and one that is not
    member({ name: 'prefixed', typeflag: '0', prefix: 'usr/lib' }, 'prefix\n'),
    member({ name: 'prefixed2', typeflag: '0', prefix: './usr/lib/' }, 'prefix2\n'),
    // an empty pax header, and a pax header whose mtime record is empty
    ext('x', Buffer.alloc(0), 'PaxHeaders/empty'),
    member({ name: 'usr/lib/after-empty-pax', typeflag: '0', mtime: NEW }, 'e\n'),
    ext('x', paxRecord('mtime', ''), 'PaxHeaders/e'),
    member({ name: 'usr/lib/empty-mtime', typeflag: '0' }, 'm\n'),
    ext('g', paxRecord('comment', 'trailing global')),
  ]);
  // End of archive, then record padding that is not part of the archive.
  return Buffer.concat([body, handMade, Buffer.alloc(2 * BLOCK), Buffer.alloc(3 * BLOCK, 0)]);
}

/** An input that already has every file the filter would add, so nothing carries the wall-clock time. */
async function completeInput(): Promise<Buffer> {
  return tarBuffer([
    { name: 'etc', type: 'dir', mtime: NEW },
    { name: 'etc/fstab', data: 'x\n', mtime: NEW },
    { name: 'etc/hosts', data: 'h\n', mtime: NEW, mode: 0o644 },
    { name: 'etc/resolv.conf', data: 'r\n', mtime: NEW, mode: 0o644 },
    { name: 'etc/hostname', data: 'n\n', mtime: NEW, mode: 0o644 },
    { name: 'etc/machine-id', data: '', mtime: NEW, mode: 0o444 },
    { name: 'usr', type: 'dir', mtime: NEW, pax: { mtime: `${NEW}.5`, 'SCHILY.xattr.security.selinux': Buffer.from('system_u:object_r:usr_t:s0\0') } },
    { name: 'usr/file', data: 'unclamped\n', mtime: NEW, uid: 0o7777777 + 1 },
    { name: 'usr/link', type: 'hardlink', linkname: './usr/file', mode: 0o100644 },
  ]);
}

const FIXES: RootfsFixes = {
  hostname: 'golden',
  fstab: 'UUID=0b6c7c2e-0000-4000-8000-000000000001 / ext4 defaults 0 1\n',
  ensureDirs: ['boot/efi', 'usr/bin'],
  extraFiles: [
    { path: 'etc/issue', content: 'c2v\n' },
    { path: '/boot/grub/grub.cfg', content: Buffer.from('set timeout=0\n'), mode: 0o600 },
  ],
  finalFiles: (info) => [{ path: 'boot/grub/info.json', content: JSON.stringify({ ...info, osRelease: undefined }) }],
  mtimeClamp: CLAMP,
};

function chunked(buf: Buffer, size: number): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
    })(),
    { objectMode: false },
  );
}

async function filtered(input: Buffer, fixes: RootfsFixes, chunk: number): Promise<{ sha256: string; length: number }> {
  const { output, info } = filterRootfs(chunked(input, chunk), fixes);
  const hash = createHash('sha256');
  let length = 0;
  for await (const c of output) {
    hash.update(c as Buffer);
    length += (c as Buffer).length;
  }
  await info;
  return { sha256: hash.digest('hex'), length };
}

describe('filterRootfs golden output', () => {
  it('gives the recorded bytes for a stream with every tar feature, whatever the chunking', async () => {
    const input = await richInput();
    for (const chunk of [1, 7, 512, 4096, input.length]) {
      expect(await filtered(input, FIXES, chunk), `chunks of ${chunk}`).toEqual({ sha256: 'cdb45457b8fb5a96e0999472782b061ddc19787b582f2fe7758f827cd80f83ac', length: 67072 });
    }
  });

  it('gives the recorded bytes without a clamp when nothing has to be added', async () => {
    const input = await completeInput();
    expect(await filtered(input, { hostname: 'h', fstab: 'f\n' }, 1000)).toEqual({ sha256: '94595e8d32c1cfd636ee3b57a4c2c1024e07bc305f170103cc80df1aa7df86d0', length: 10240 });
  });
});
