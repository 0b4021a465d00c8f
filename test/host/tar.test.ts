import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { extract as tarStreamExtract, pack as tarStreamPack } from 'tar-stream';
import { afterAll, describe, expect, it } from 'vitest';
import { C2vError } from '../../src/errors.js';
import {
  FIELD,
  TAR_BLOCK,
  TAR_END,
  TarParser,
  byteString,
  decodeHeader,
  encodeEntry,
  encodeOvaMemberHeader,
  encodePaxRecord,
  parsePax,
  putBase256,
  readBody,
  readTar,
  sealHeader,
  tarPadding,
  textOf,
  type GlobalHeader,
  type TarEntry,
  type TarEntryFields,
  type TarReadOptions,
} from '../../src/formats/tar/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-tar-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, TZ: 'UTC', LC_ALL: 'C' };

interface Parsed {
  entries: (TarEntry & { data: Buffer })[];
  trailing: GlobalHeader[];
}

/** Everything TarParser reports, fed in chunks of `chunk` bytes. */
function parse(archive: Buffer, chunk = archive.length || 1, options: TarReadOptions = {}): Parsed {
  const entries: Parsed['entries'] = [];
  let trailing: GlobalHeader[] = [];
  const data: Buffer[] = [];
  const close = () => {
    if (entries.length > 0) entries[entries.length - 1].data = Buffer.concat(data.splice(0));
  };
  const parser = new TarParser(
    {
      entry: (e) => {
        close();
        entries.push({ ...e, data: Buffer.alloc(0) });
      },
      data: (c) => data.push(Buffer.from(c)),
      end: (g) => (trailing = g),
    },
    options,
  );
  for (let i = 0; i < archive.length; i += chunk) parser.write(archive.subarray(i, i + chunk));
  parser.end();
  close();
  return { entries, trailing };
}

function fields(over: Partial<TarEntryFields> & { name: string }): TarEntryFields {
  return { linkname: '', typeflag: '0', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [], ...over };
}

function archiveOf(entries: { fields: TarEntryFields; data?: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(...encodeEntry(e.fields));
    if (e.data) parts.push(e.data, tarPadding(e.data.length));
  }
  return Buffer.concat([...parts, TAR_END]);
}

async function tarStreamRead(archive: Buffer): Promise<{ name: string; type: string | null | undefined; linkname: string | null | undefined; size: number | undefined; uid: number | undefined; data: Buffer }[]> {
  const ex = tarStreamExtract();
  const out: { name: string; type: string | null | undefined; linkname: string | null | undefined; size: number | undefined; uid: number | undefined; data: Buffer }[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      const h = entry.header;
      out.push({ name: h.name, type: h.type, linkname: h.linkname, size: h.size, uid: h.uid, data: Buffer.concat(chunks) });
    }
  })();
  ex.end(archive);
  await done;
  return out;
}

describe('encodeEntry and TarParser', () => {
  const longDir = `usr/share/${'d'.repeat(120)}`;
  const cases: { fields: TarEntryFields; data?: Buffer }[] = [
    { fields: fields({ name: 'etc/', typeflag: '5', mode: 0o755 }) },
    { fields: fields({ name: 'etc/passwd', size: 11, uid: 1000, gid: 1000, uname: 'alice', gname: 'staff' }), data: Buffer.from('root:x:0:0\n') },
    // needs the ustar prefix field
    { fields: fields({ name: `${longDir}/file`, size: 2 }), data: Buffer.from('p\n') },
    // needs pax path and linkpath
    { fields: fields({ name: `${longDir}/${'f'.repeat(130)}`, typeflag: '2', linkname: `../${'t'.repeat(200)}` }) },
    // numbers beyond the octal fields, names beyond theirs
    { fields: fields({ name: 'big-ids', uid: 0o7777777 + 1, gid: 3_000_000_000, uname: 'u'.repeat(40), mtime: 8 ** 11 + 5 }) },
    { fields: fields({ name: 'dev/sda', typeflag: '4', devmajor: 8, devminor: 16, mode: 0o660 }) },
    { fields: fields({ name: 'dev/huge', typeflag: '3', devmajor: 0o7777777 + 1, devminor: 1 }) },
    // a name that is not UTF-8: bytes 0xe9 and 0xff
    { fields: fields({ name: `bin/caf\xe9-\xff-${'x'.repeat(100)}`, size: 1 }), data: Buffer.from('c') },
  ];
  const archive = archiveOf(cases);

  it('reads back every field it wrote, whatever the chunk boundaries', () => {
    for (const chunk of [1, 100, 511, 512, 513, archive.length]) {
      const { entries } = parse(archive, chunk);
      expect(entries.map((e) => e.header.name), `chunks of ${chunk}`).toEqual(cases.map((c) => c.fields.name));
      entries.forEach((e, i) => {
        const { pax: _pax, ...want } = cases[i].fields;
        expect(e.header).toEqual(want);
        expect(e.data.equals(cases[i].data ?? Buffer.alloc(0))).toBe(true);
      });
    }
  });

  it('keeps each entry’s header blocks exactly as read', () => {
    const { entries } = parse(archive, 700);
    expect(Buffer.concat(entries.flatMap((e, i) => [...e.raw, cases[i].data ?? Buffer.alloc(0), tarPadding(cases[i].data?.length ?? 0)]))).toEqual(archive.subarray(0, archive.length - 1024));
    expect(entries.map((e) => e.kind)).toEqual(['dir', 'file', 'file', 'symlink', 'file', 'block', 'char', 'file']);
    expect(entries[0].raw).toHaveLength(1);
    expect(entries[3].raw).toHaveLength(3); // the pax header, its data with padding, the entry's header
  });

  it('declares hdrcharset=BINARY for a non-UTF-8 pax name, and writes only what needs pax in pax', () => {
    const { entries } = parse(archive);
    const keys = (i: number) => entries[i].pax.map((r) => r.key);
    expect(keys(0)).toEqual([]);
    expect(keys(2)).toEqual([]);
    expect(keys(3)).toEqual(['path', 'linkpath']);
    expect(keys(4)).toEqual(['uid', 'gid', 'mtime', 'uname']);
    expect(keys(6)).toEqual(['SCHILY.devmajor']);
    expect(keys(7)).toEqual(['path', 'hdrcharset']);
  });

  it('is read the same by tar-stream, an independent codec', async () => {
    const theirs = await tarStreamRead(archive);
    expect(theirs.map((e) => e.name)).toEqual(cases.map((c) => textOf(c.fields.name)));
    expect(theirs[3]).toMatchObject({ type: 'symlink', linkname: `../${'t'.repeat(200)}` });
    expect(theirs[5]).toMatchObject({ type: 'block-device', size: 0 });
    expect(theirs[1].data.toString()).toBe('root:x:0:0\n');
  });

  it('lists the same names and sizes as GNU tar', () => {
    const file = path.join(tmp, 'ours.tar');
    writeFileSync(file, archive);
    const names = execFileSync('tar', ['--quoting-style=literal', '-tf', file], { env, stdio: ['ignore', 'pipe', 'pipe'] }).toString('latin1').trim().split('\n');
    expect(names).toEqual(cases.map((c) => c.fields.name));
  });
});

describe('pax records', () => {
  const capability = Buffer.from([0x01, 0, 0, 0x02, 0x80, 0x20, 0, 0, 0xff, 0x0a, 0, 0x3d, 0, 0, 0, 0, 0, 0, 0, 0]);

  it('carries a binary value byte for byte through a read and a re-encoding', () => {
    const record = Buffer.concat([Buffer.from('57 SCHILY.xattr.security.capability='), capability, Buffer.from('\n')]);
    const [parsed] = parsePax(record, (w) => new Error(w));
    expect(parsed.key).toBe('SCHILY.xattr.security.capability');
    expect(Buffer.from(parsed.value, 'latin1').equals(capability)).toBe(true);
    expect(parsed.raw.equals(record)).toBe(true);
    expect(encodePaxRecord(parsed.key, parsed.value).equals(record)).toBe(true);

    // Renamed (so re-encoded), the record is copied raw.
    const archive = archiveOf([{ fields: fields({ name: 'usr/bin/ping', size: 1, pax: [parsed] }), data: Buffer.from('p') }]);
    expect(archive.includes(record)).toBe(true);
    const { entries } = parse(archive);
    expect(entries[0].pax.map((r) => r.key)).toEqual(['SCHILY.xattr.security.capability']);
    expect(Buffer.from(entries[0].pax[0].value, 'latin1').equals(capability)).toBe(true);
  });

  it('counts its own digits in the length', () => {
    for (const n of [0, 1, 80, 89, 90, 91, 990, 995, 1000]) {
      const r = encodePaxRecord('k', 'v'.repeat(n));
      expect(Number(r.toString('latin1').split(' ')[0])).toBe(r.length);
    }
  });

  it('refuses a record whose length is wrong', () => {
    const refuse = (w: string) => new C2vError('input', w);
    expect(() => parsePax(Buffer.from('99 path=x\n'), refuse)).toThrow(/wrong length/);
    expect(() => parsePax(Buffer.from('path=x\n'), refuse)).toThrow(/without a length/);
    expect(parsePax(Buffer.from('10 path=x\n\0\0\0'), refuse).map((r) => r.value)).toEqual(['x']);
  });

  it('applies size, times, ids and GNU.sparse.name, and leaves a field alone for an empty value', () => {
    const records = Buffer.concat([
      encodePaxRecord('size', '70000'),
      encodePaxRecord('mtime', '1700000000.75'),
      encodePaxRecord('uid', '5000000'),
      encodePaxRecord('gname', ''),
      encodePaxRecord('GNU.sparse.name', 'real/name'),
      encodePaxRecord('path', 'GNUSparseFile.0/name'),
    ]);
    const x = sealHeader(encodeEntry(fields({ name: 'PaxHeaders/x', typeflag: 'x', size: records.length }))[0]);
    const entry = encodeEntry(fields({ name: 'short', gname: 'group' }))[0];
    const archive = Buffer.concat([x, records, tarPadding(records.length), entry, Buffer.alloc(70000), tarPadding(70000), TAR_END]);
    const [e] = parse(archive).entries;
    expect(e.header).toMatchObject({ name: 'real/name', size: 70000, mtime: 1_700_000_000, uid: 5_000_000, gname: 'group' });
    expect(e.data.length).toBe(70000);
  });
});

describe('header numbers and checksums', () => {
  it('decodes GNU base-256 numbers, positive and negative', () => {
    const h = encodeOvaMemberHeader({ name: 'big.vmdk', size: 9 * 2 ** 30 });
    expect(decodeHeader(h).size).toBe(9 * 2 ** 30);

    const b = encodeEntry(fields({ name: 'neg' }))[0];
    b.fill(0xff, FIELD.mtime[0], FIELD.mtime[0] + FIELD.mtime[1]); // -1 in two's complement
    putBase256(b, FIELD.uid, 70_000);
    sealHeader(b);
    expect(decodeHeader(b)).toMatchObject({ mtime: -1, uid: 70_000 });

    b.fill(0, FIELD.size[0], FIELD.size[0] + FIELD.size[1]);
    b[FIELD.size[0]] = 0x80;
    b.fill(0xff, FIELD.size[0] + 1, FIELD.size[0] + 12); // 2^88 - 1: no safe integer
    sealHeader(b);
    expect(() => decodeHeader(b)).toThrow(/size out of range/);
  });

  it('refuses a header with a bad checksum, and accepts the signed sums of old tars', () => {
    const good = encodeEntry(fields({ name: 'caf\xe9' }))[0];
    expect(decodeHeader(good).name).toBe('caf\xe9');
    const bad = Buffer.from(good);
    bad[3] ^= 0x01;
    expect(() => decodeHeader(bad)).toThrow(/checksum mismatch/);
    expect(() => parse(Buffer.concat([bad, TAR_END]), 512, { source: 'the test input' })).toThrow(
      /^the test input is not a valid tar stream: header checksum mismatch \(at byte 0\)$/,
    );

    const signed = Buffer.from(good);
    signed.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of signed) sum += byte > 127 ? byte - 256 : byte;
    signed.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    expect(signed.equals(good)).toBe(false);
    expect(decodeHeader(signed).name).toBe('caf\xe9');
  });

  it('refuses a non-octal number field', () => {
    const b = encodeEntry(fields({ name: 'x' }))[0];
    b.write('12x4567\0', FIELD.mode[0], 'latin1');
    sealHeader(b);
    expect(() => decodeHeader(b)).toThrow(/mode field is not an octal number/);
  });
});

describe('archives written by GNU tar', () => {
  const src = path.join(tmp, 'gnu-src');
  mkdirSync(path.join(src, 'd'), { recursive: true });
  const longName = `d/${'n'.repeat(150)}`;
  const longTarget = `${'t'.repeat(150)}`;
  writeFileSync(path.join(src, longName), 'long name\n');
  symlinkSync(longTarget, path.join(src, 'd/link'));
  writeFileSync(path.join(src, 'd/caf\u00e9'), 'utf-8 name\n');

  for (const format of ['gnu', 'pax'] as const) {
    it(`reads --format=${format}: long names and link targets, UTF-8 names`, () => {
      const archive = execFileSync('tar', [`--format=${format}`, '--sort=name', '-C', src, '-cf', '-', 'd'], { env, maxBuffer: 1 << 24 });
      const { entries } = parse(archive, 333);
      const byName = new Map(entries.map((e) => [textOf(e.header.name), e]));
      expect([...byName.keys()].sort()).toEqual(['d/', longName, 'd/caf\u00e9', 'd/link'].sort());
      expect(byName.get(longName)!.data.toString()).toBe('long name\n');
      expect(byName.get('d/link')!).toMatchObject({ kind: 'symlink', header: { linkname: longTarget } });
      if (format === 'gnu') expect(String.fromCharCode(byName.get(longName)!.raw[0][156])).toBe('L');
      if (format === 'gnu') expect(String.fromCharCode(byName.get('d/link')!.raw[0][156])).toBe('K');
      if (format === 'pax') expect(byName.get(longName)!.pax.map((r) => r.key)).toContain('path');
    });
  }
});

describe('archive structure', () => {
  const entryA = archiveOf([{ fields: fields({ name: 'a', size: 3 }), data: Buffer.from('aaa') }]).subarray(0, 1024);
  const global = (text: string): Buffer => {
    const data = encodePaxRecord('comment', text);
    return Buffer.concat([...encodeEntry(fields({ name: 'pax_global_header', typeflag: 'g', size: data.length })).slice(-1), data, tarPadding(data.length)]);
  };

  it('hands global headers to the next entry, and those after the last entry to end()', () => {
    const archive = Buffer.concat([global('one'), global('two'), entryA, global('three'), TAR_END]);
    const { entries, trailing } = parse(archive, 1);
    expect(entries).toHaveLength(1);
    expect(entries[0].globals.map((g) => parsePax(g.data, (w) => new Error(w))[0].value)).toEqual(['one', 'two']);
    expect(Buffer.concat(entries[0].globals.flatMap((g) => g.raw)).equals(archive.subarray(0, 2048))).toBe(true);
    expect(trailing.map((g) => parsePax(g.data, (w) => new Error(w))[0].value)).toEqual(['three']);
  });

  it('stops at the first zero block and ignores what follows', () => {
    const { entries } = parse(Buffer.concat([entryA, Buffer.alloc(512), Buffer.from('garbage after the end')]));
    expect(entries.map((e) => e.header.name)).toEqual(['a']);
  });

  it('refuses a cut stream, a missing end marker (unless optional), a lone extension header, a huge one', () => {
    expect(() => parse(entryA.subarray(0, 700))).toThrow(/stream ended inside an entry \(at byte 700\)/);
    expect(() => parse(entryA)).toThrow(/stream ended without the end-of-archive marker/);
    expect(parse(entryA, 512, { endMarkerOptional: true }).entries).toHaveLength(1);
    const x = Buffer.concat(encodeEntry(fields({ name: 'x', pax: [{ key: 'comment', value: 'c', raw: encodePaxRecord('comment', 'c') }] })).slice(0, 3));
    expect(() => parse(Buffer.concat([x, TAR_END]))).toThrow(/extension header without an entry/);
    expect(() => parse(Buffer.concat([x, TAR_END]), 512, { endMarkerOptional: true })).toThrow(/extension header without an entry/);
    const big = encodeEntry(fields({ name: 'L', typeflag: 'L', size: 2048 }))[0];
    expect(() => parse(Buffer.concat([big, Buffer.alloc(2048, 0x41), entryA, TAR_END]), 512, { maxExtension: 1024 })).toThrow(/extension header of 2048 bytes/);
  });

  it('refuses data on a link and an old GNU sparse entry', () => {
    const link = sealHeader(encodeEntry(fields({ name: 'l', typeflag: '1', linkname: 'a', size: 5 }))[0]);
    expect(() => parse(Buffer.concat([link, Buffer.alloc(512), TAR_END]))).toThrow(/hardlink entry l claims 5 data bytes/);
    const sparse = encodeEntry(fields({ name: 's', typeflag: 'S' }))[0];
    expect(() => parse(Buffer.concat([sparse, TAR_END]))).toThrow(/old-style GNU sparse entry \(s\)/);
  });
});

describe('readTar', () => {
  const files = [
    { name: 'one', data: Buffer.alloc(100_000, 1) },
    { name: 'two', data: Buffer.alloc(0) },
    { name: 'three', data: Buffer.from('three\n') },
  ];
  const archive = archiveOf(files.map((f) => ({ fields: fields({ name: f.name, size: f.data.length }), data: f.data })));

  function chunks(buf: Buffer, size: number): Readable {
    return Readable.from(
      (function* () {
        for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
      })(),
      { objectMode: false },
    );
  }

  it('yields entries with streamed bodies; bodies left unread are skipped', async () => {
    const read: [string, string][] = [];
    for await (const e of readTar(chunks(archive, 4096))) {
      if (e.header.name === 'one') continue;
      read.push([e.header.name, (await readBody(e)).toString()]);
    }
    expect(read).toEqual([
      ['two', ''],
      ['three', 'three\n'],
    ]);
    const bodies: number[] = [];
    for await (const e of readTar(chunks(archive, 1000))) bodies.push((await readBody(e)).length);
    expect(bodies).toEqual([100_000, 0, 6]);
  });

  it('refuses a body read after the next entry, and a body over the limit given', async () => {
    const it = readTar(chunks(archive, 4096));
    const first = (await it.next()).value!;
    await it.next();
    await expect(readBody(first)).rejects.toThrow(/after the next entry/);
    await it.return(undefined);
    const again = readTar(chunks(archive, 4096));
    await expect(readBody((await again.next()).value!, 10)).rejects.toThrow(/100000 bytes, more than the 10 expected/);
    await again.return(undefined);
  });

  it('reads input only as the consumer asks, and releases it when done', async () => {
    const size = 64 * 2 ** 20;
    const head = encodeEntry(fields({ name: 'huge', size }))[0];
    let produced = 0;
    const input = Readable.from(
      (function* () {
        yield head;
        for (let left = size; left > 0; left -= 2 ** 16) {
          produced += 2 ** 16;
          yield Buffer.alloc(2 ** 16);
        }
        yield TAR_END;
      })(),
      { objectMode: false, highWaterMark: 2 ** 16 },
    );
    for await (const e of readTar(input)) {
      let got = 0;
      for await (const c of e.body) {
        got += c.length;
        if (got >= 2 ** 20) break;
      }
      expect(produced).toBeLessThan(4 * 2 ** 20);
      break;
    }
    expect(input.destroyed).toBe(true);
  });

  it('rejects a truncated stream with the reader’s error', async () => {
    const cut = chunks(archive.subarray(0, 50_000), 4096);
    await expect(
      (async () => {
        for await (const e of readTar(cut, { source: 'x.ova' })) await readBody(e);
      })(),
    ).rejects.toThrow(/^x\.ova is not a valid tar stream: stream ended inside an entry/);
  });

  it('reads tar-stream archives', async () => {
    const p = tarStreamPack();
    p.entry({ name: 'dir', type: 'directory' });
    p.entry({ name: `dir/${'x'.repeat(140)}`, size: 4 }, Buffer.from('body'));
    p.entry({ name: 'dir/link', type: 'symlink', linkname: 'target' });
    p.finalize();
    const names: string[] = [];
    for await (const e of readTar(p as unknown as AsyncIterable<Buffer>)) names.push(`${e.kind}:${textOf(e.header.name)}:${(await readBody(e)).toString()}`);
    expect(names).toEqual(['dir:dir:', `file:dir/${'x'.repeat(140)}:body`, 'symlink:dir/link:']);
  });
});

describe('byte strings', () => {
  it('convert UTF-8 text to bytes and back', () => {
    expect(byteString('é')).toBe('\xc3\xa9');
    expect(textOf('\xc3\xa9')).toBe('é');
    expect(TAR_BLOCK).toBe(512);
  });
});
