import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildOvf, type OvfSpec } from '../../src/plan/ovf.js';
import { padOvf, StreamingOva } from '../../src/stages/package-ova.js';
import { ovaBytes } from '../helpers/ova-writer.js';
import { parseManifest } from '../helpers/check-output.js';
import { assertOvfValid } from '../helpers/ovf-schema.js';
import { readBody, readTar } from '../../src/formats/tar/index.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-ova-stream-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, TZ: 'UTC', LC_ALL: 'C' };

const spec = (fileBytes: number): OvfSpec => ({
  name: 'app',
  disk: { fileName: 'app-disk1.vmdk', fileBytes, capacityBytes: 8 * 2 ** 30, populatedBytes: 600_000_000 },
  cpus: 2,
  memoryMiB: 2048,
  firmware: 'efi',
  os: { cimId: 96, vmwOsType: 'debian11_64Guest', description: 'Debian GNU/Linux 12 (bookworm)' },
  vmxVersion: 14,
  annotation: 'streamed',
});
const ovfFor = (fileBytes: number): string => buildOvf(spec(fileBytes));
const names = { ovfName: 'app.ovf', mfName: 'app.mf', diskName: 'app-disk1.vmdk', ovf: ovfFor, digest: 'sha256' } as const;

/** The disk arrives in odd pieces, as VMDK grains do. */
async function stream(ova: StreamingOva, disk: Buffer): Promise<void> {
  await ova.writeDisk(async (sink) => {
    let off = 0;
    let step = 1;
    while (off < disk.length) {
      const n = Math.min(disk.length - off, step);
      await sink(disk.subarray(off, off + n));
      off += n;
      step = (step * 7 + 13) % 200_003;
    }
    return {};
  });
}

describe('StreamingOva', () => {
  const disk = randomBytes(3 * 2 ** 20 + 777);
  const out = path.join(tmp, 'app.ova');
  const extracted = path.join(tmp, 'x');

  it('writes OVF, manifest and disk in that order, as plain ustar members GNU tar lists and extracts', async () => {
    const ova = await StreamingOva.create(out, names);
    await stream(ova, disk);
    const r = await ova.finish();
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect(statSync(out).size).toBe(r.bytes);
    expect(r.diskBytes).toBe(disk.length);
    expect(r.diskDigest).toBe(createHash('sha256').update(disk).digest('hex'));

    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', out], { encoding: 'utf8', env }).trim().split('\n');
    expect(listing.map((l) => l.split(/\s+/)[5])).toEqual(['app.ovf', 'app.mf', 'app-disk1.vmdk']);
    expect(Number(listing[2].split(/\s+/)[2])).toBe(disk.length);
    const archive = readFileSync(out);
    // ustar magic on every header, no PAX record anywhere
    expect(archive.subarray(257, 265).toString('latin1')).toBe('ustar\u000000');
    expect(archive.includes(Buffer.from('PaxHeader'))).toBe(false);

    mkdirSync(extracted);
    execFileSync('tar', ['-xf', out, '-C', extracted], { env });
    expect(readdirSync(extracted).sort()).toEqual(['app-disk1.vmdk', 'app.mf', 'app.ovf']);
    expect(readFileSync(path.join(extracted, 'app-disk1.vmdk')).equals(disk)).toBe(true);
  });

  it('is read back by our tar reader, as verify reads it', async () => {
    const members: [string, number][] = [];
    for await (const e of readTar(createReadStream(out))) members.push([e.header.name, (await readBody(e)).length]);
    expect(members.map(([name]) => name)).toEqual(['app.ovf', 'app.mf', 'app-disk1.vmdk']);
    expect(members[2][1]).toBe(disk.length);
  });

  it('has a manifest that matches the extracted files', () => {
    const mf = readFileSync(path.join(extracted, 'app.mf'), 'utf8');
    const lines = mf.trimEnd().split('\n');
    expect(lines.map((l) => /^SHA256\((.+)\)= [0-9a-f]{64}$/.exec(l)?.[1])).toEqual(['app.ovf', 'app-disk1.vmdk']);
    for (const line of lines) {
      const [, file, hex] = /^SHA256\((.+)\)= ([0-9a-f]{64})$/.exec(line)!;
      expect(createHash('sha256').update(readFileSync(path.join(extracted, file))).digest('hex')).toBe(hex);
    }
  });

  for (const digest of ['sha1', 'sha512'] as const) {
    it(`writes a ${digest} manifest, its room sized for that algorithm, that matches the members GNU tar extracts`, async () => {
      const p = path.join(tmp, `${digest}.ova`);
      const ova = await StreamingOva.create(p, { ...names, digest });
      await stream(ova, disk);
      const r = await ova.finish();
      expect(statSync(p).size).toBe(r.bytes);
      expect(r.diskDigest).toBe(createHash(digest).update(disk).digest('hex'));

      const x = path.join(tmp, `x-${digest}`);
      mkdirSync(x);
      execFileSync('tar', ['-xf', p, '-C', x], { env });
      expect(readdirSync(x).sort()).toEqual(['app-disk1.vmdk', 'app.mf', 'app.ovf']);
      const mf = readFileSync(path.join(x, 'app.mf'), 'utf8');
      const entries = parseManifest(mf);
      expect(entries.map((e) => [e.algorithm, e.name])).toEqual([
        [digest, 'app.ovf'],
        [digest, 'app-disk1.vmdk'],
      ]);
      for (const e of entries) expect(createHash(digest).update(readFileSync(path.join(x, e.name))).digest('hex'), e.name).toBe(e.hex);
      expect(entries[1].hex).toBe(r.diskDigest);
      // Only the manifest differs from the SHA-256 archive: same OVF, same disk, and a plain sequential tar.
      expect(readFileSync(path.join(x, 'app.ovf')).equals(readFileSync(path.join(extracted, 'app.ovf')))).toBe(true);
      const reference = ovaBytes([
        { name: 'app.ovf', data: readFileSync(path.join(x, 'app.ovf')) },
        { name: 'app.mf', data: Buffer.from(mf, 'utf8') },
        { name: 'app-disk1.vmdk', data: disk },
      ]);
      expect(reference.equals(readFileSync(p))).toBe(true);
    });
  }

  it('has an OVF that validates against the DMTF schema and states the real disk member size', () => {
    const file = path.join(extracted, 'app.ovf');
    assertOvfValid(file);
    const ovf = readFileSync(file, 'utf8');
    expect(ovf).toContain(`ovf:size="${statSync(path.join(extracted, 'app-disk1.vmdk')).size}"`);
    // The exact descriptor, then whitespace only.
    const exact = ovfFor(disk.length);
    expect(ovf.startsWith(exact)).toBe(true);
    expect(/^\s*$/.test(ovf.slice(exact.length))).toBe(true);
    expect(Buffer.byteLength(ovf)).toBe(Buffer.byteLength(ovfFor(Number.MAX_SAFE_INTEGER)));
  });

  it('gives the same bytes as a plain sequential tar of the same members', () => {
    const ovf = padOvf(ovfFor(disk.length), Buffer.byteLength(ovfFor(Number.MAX_SAFE_INTEGER)));
    const reference = ovaBytes([
      { name: 'app.ovf', data: ovf },
      { name: 'app.mf', data: readFileSync(path.join(extracted, 'app.mf')) },
      { name: 'app-disk1.vmdk', data: readFileSync(path.join(extracted, 'app-disk1.vmdk')) },
    ]);
    expect(reference.equals(readFileSync(out))).toBe(true);
  });

  it('handles a one-byte disk member and one whose size is a multiple of 512', async () => {
    for (const size of [1, 4096]) {
      const p = path.join(tmp, `s${size}.ova`);
      const ova = await StreamingOva.create(p, names);
      await stream(ova, Buffer.alloc(size, 1));
      const r = await ova.finish();
      expect(statSync(p).size).toBe(r.bytes);
      const listing = execFileSync('tar', ['-tvf', p], { encoding: 'utf8', env }).trim().split('\n');
      expect(Number(listing[2].split(/\s+/)[2])).toBe(size);
    }
  });

  it('leaves nothing behind when the disk fails mid-stream, and refuses a misordered or clashing plan', async () => {
    const p = path.join(tmp, 'failed.ova');
    const ova = await StreamingOva.create(p, names);
    await expect(
      ova.writeDisk(async (sink) => {
        await sink(Buffer.alloc(5 * 2 ** 20, 7));
        throw new Error('grain source broke');
      }),
    ).rejects.toThrow(/grain source broke/);
    expect(existsSync(p)).toBe(false);
    expect(existsSync(`${p}.partial`)).toBe(false);
    await expect(StreamingOva.create(p, { ...names, ovfName: 'app.mf2' })).rejects.toThrow(/\.ovf/);
    await expect(StreamingOva.create(p, { ...names, mfName: 'app-disk1.vmdk' })).rejects.toThrow(/differ/);
    expect(existsSync(`${p}.partial`)).toBe(false);
  });

  it('pads an OVF to its room and refuses one that outgrew it', () => {
    expect(padOvf('<a/>\n', 5).toString()).toBe('<a/>\n');
    expect(padOvf('<a/>\n', 6).toString()).toBe('<a/>\n\n');
    expect(padOvf('<a/>\n', 9).toString()).toBe('<a/>\n   \n');
    expect(() => padOvf('<a/>\n', 4)).toThrow(/outgrew/);
  });
});
