import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deflateSync, inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeDescriptor, encodeHeader, encodeMarker, GD_AT_END, GRAIN_BYTES, MARKER, vmdkGeometry, type VmdkOptions } from '../../src/formats/vmdk.js';
import { isZero } from '../../src/formats/zero.js';
import { writeVmdk } from '../../src/stages/vmdk.js';
import { encodeVmdk, type Grain } from '../helpers/vmdk-encoder.js';
import { firstDifferentGrain, parseDescriptor, parseHeader, parseVmdk, reconstruct } from '../helpers/vmdk-reader.js';
import { makeSparseFile } from '../helpers/sparse-file.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;

/** A raw disk image in memory from the same grains, as the expected result of a round trip. */
function rawOf(grains: Grain[], capacityBytes: number): Buffer {
  const raw = Buffer.alloc(capacityBytes);
  for (const g of grains) g.data.copy(raw, g.index * GRAIN_BYTES);
  return raw;
}

describe('encodeHeader', () => {
  const h = parseHeader(encodeHeader({ capacityBytes: 10 * MiB, gdOffset: GD_AT_END }));

  it('writes the fields vSphere requires', () => {
    expect(h.magic).toBe('KDMV');
    expect(h.version).toBe(3);
    expect(h.flags).toBe(0x30001);
    expect(h.capacitySectors).toBe(20480n);
    expect(h.grainSize).toBe(128n);
    expect(h.descriptorOffset).toBe(1n);
    expect(h.descriptorSize).toBe(20n);
    expect(h.numGTEsPerGT).toBe(512);
    expect(h.rgdOffset).toBe(0n);
    expect(h.gdOffset).toBe(0xffffffffffffffffn);
    expect(h.overHead).toBe(128n);
    expect(h.uncleanShutdown).toBe(0);
    expect([...h.newlineTest]).toEqual([0x0a, 0x20, 0x0d, 0x0a]);
    expect(h.compressAlgorithm).toBe(1);
  });

  it('is one sector with the golden leading bytes and a zero tail', () => {
    const b = encodeHeader({ capacityBytes: 10 * MiB, gdOffset: 1234n });
    expect(b.length).toBe(512);
    expect(b.subarray(0, 12).toString('hex')).toBe('4b444d560300000001000300');
    expect(b.readBigUInt64LE(56)).toBe(1234n);
    expect(isZero(b.subarray(79))).toBe(true);
  });

  it('holds a 2 TiB capacity exactly', () => {
    expect(parseHeader(encodeHeader({ capacityBytes: 2 ** 41, gdOffset: 5n })).capacitySectors).toBe(2n ** 32n);
  });
});

describe('encodeMarker', () => {
  it('is a sector with numSectors, size 0 and type', () => {
    const m = encodeMarker(MARKER.GRAIN_DIRECTORY, 3);
    expect(m.length).toBe(512);
    expect(m.readBigUInt64LE(0)).toBe(3n);
    expect(m.readUInt32LE(8)).toBe(0);
    expect(m.readUInt32LE(12)).toBe(2);
    expect(isZero(m.subarray(16))).toBe(true);
  });
});

describe('vmdkGeometry', () => {
  it('uses 255/63 for SCSI with cylinders rounded down', () => {
    expect(vmdkGeometry(16 * 1024 * MiB)).toEqual({ cylinders: 2088, heads: 255, sectors: 63 });
  });
  it('caps cylinders at 65535 for SCSI and uses 16 heads (16383 cylinders max) for IDE', () => {
    expect(vmdkGeometry(2 ** 41).cylinders).toBe(65535);
    expect(vmdkGeometry(2 ** 41, 'ide')).toEqual({ cylinders: 16383, heads: 16, sectors: 63 });
    expect(vmdkGeometry(1 * 1024 * MiB, 'ide')).toEqual({ cylinders: 2080, heads: 16, sectors: 63 });
  });
});

describe('encodeDescriptor', () => {
  const opts: VmdkOptions = { capacityBytes: 16 * 1024 * MiB, fileName: 'myapp-disk1.vmdk', virtualHwVersion: 14 };
  const buf = encodeDescriptor(opts);
  const d = parseDescriptor(buf);

  it('is exactly 20 sectors, NUL padded', () => {
    expect(buf.length).toBe(20 * 512);
    expect(d.padding.length).toBeGreaterThan(0);
    expect(isZero(d.padding)).toBe(true);
  });

  it('describes a streamOptimized disk vSphere accepts', () => {
    expect(d.text.startsWith('# Disk DescriptorFile\nversion=1\n')).toBe(true);
    expect(d.fields.encoding).toBe('UTF-8');
    expect(d.fields.CID).toMatch(/^[0-9a-f]{8}$/);
    expect(d.fields.parentCID).toBe('ffffffff');
    expect(d.fields.createType).toBe('streamOptimized');
    expect(d.extents).toEqual([{ access: 'RW', sectors: 33554432, type: 'SPARSE', file: 'myapp-disk1.vmdk' }]);
    expect(d.text).toContain('RW 33554432 SPARSE "myapp-disk1.vmdk"\n');
    expect(d.fields['ddb.adapterType']).toBe('lsilogic');
    expect(d.fields['ddb.geometry.cylinders']).toBe('2088');
    expect(d.fields['ddb.geometry.heads']).toBe('255');
    expect(d.fields['ddb.geometry.sectors']).toBe('63');
    expect(d.fields['ddb.virtualHWVersion']).toBe('14');
    expect(d.fields['ddb.toolsInstallType']).toBe('4');
    expect(d.fields['ddb.toolsVersion']).toBe('2147483647');
    expect(d.fields['ddb.longContentID']).toMatch(/^[0-9a-f]{32}$/);
    expect(d.fields['ddb.longContentID'].endsWith(d.fields.CID)).toBe(true);
  });

  it('is reproducible by default and honours explicit ids and options', () => {
    expect(encodeDescriptor(opts).equals(buf)).toBe(true);
    expect(parseDescriptor(encodeDescriptor({ ...opts, fileName: 'other.vmdk' })).fields.CID).not.toBe(d.fields.CID);
    const e = parseDescriptor(
      encodeDescriptor({ ...opts, cid: 0xabc, longContentId: 'ABCDEF0123456789abcdef0123456789', adapterType: 'ide', virtualHwVersion: 19 }),
    );
    expect(e.fields.CID).toBe('00000abc');
    expect(e.fields['ddb.longContentID']).toBe('abcdef0123456789abcdef0123456789');
    expect(e.fields['ddb.adapterType']).toBe('ide');
    expect(e.fields['ddb.geometry.heads']).toBe('16');
    expect(e.fields['ddb.virtualHWVersion']).toBe('19');
  });

  it('reports every invalid option at once', () => {
    expect(() => encodeDescriptor({ capacityBytes: 1000, fileName: 'a"b', virtualHwVersion: 3, compressLevel: 0 })).toThrowError(
      /capacityBytes.*; fileName.*; virtualHwVersion.*; compressLevel/,
    );
    expect(() => encodeDescriptor({ capacityBytes: 2 ** 41 + 512, fileName: 'x.vmdk', virtualHwVersion: 14 })).toThrowError(/2 TiB/);
  });
});

describe('StreamOptimizedEncoder', () => {
  // 100 MiB + 3 sectors: four grain-table groups (a group covers 32 MiB), the third without data, and a last
  // grain of 1536 bytes.
  const capacityBytes = 100 * MiB + 1536;
  const lastIndex = Math.ceil(capacityBytes / GRAIN_BYTES) - 1;
  const grains: Grain[] = [
    { index: 0, data: randomBytes(GRAIN_BYTES) },
    { index: 5, data: Buffer.alloc(GRAIN_BYTES) }, // all zeros: must be skipped
    { index: 7, data: Buffer.alloc(GRAIN_BYTES, 0x41) }, // compressible
    { index: 600, data: randomBytes(GRAIN_BYTES) }, // second grain-table group
    { index: lastIndex, data: randomBytes(1536) },
  ];
  const opts: VmdkOptions = { capacityBytes, fileName: 'scattered.vmdk', virtualHwVersion: 14 };
  let file: Buffer;
  beforeAll(() => {
    file = encodeVmdk(grains, opts);
  });

  it('lays the stream out in the required order, with nothing after the EOS marker', () => {
    const v = parseVmdk(file);
    expect(v.header.gdOffset).toBe(GD_AT_END);
    expect(v.events.map((e) => e.kind)).toEqual(['grain', 'grain', 'gt', 'grain', 'gt', 'grain', 'gt', 'gd', 'footer', 'eos']);
    expect(v.trailingBytes).toBe(0);
    expect(file.length % 512).toBe(0);
    // footer marker + footer + EOS are the last three sectors
    const tail = file.subarray(file.length - 3 * 512);
    expect(tail.readUInt32LE(12)).toBe(3);
    expect(tail.readBigUInt64LE(0)).toBe(1n);
    expect(tail.toString('latin1', 512, 516)).toBe('KDMV');
    expect(tail.readUInt32LE(1024 + 12)).toBe(0);
    expect(tail.readBigUInt64LE(1024)).toBe(0n);
    expect(isZero(tail.subarray(1024))).toBe(true);
  });

  it('puts the real GD offset in the footer and points GD and GTs at what was written', () => {
    const v = parseVmdk(file);
    const gd = v.events.find((e) => e.kind === 'gd')!;
    const footer = v.events.find((e) => e.kind === 'footer')!;
    const gts = v.events.filter((e) => e.kind === 'gt');
    const gs = v.events.filter((e) => e.kind === 'grain');
    if (footer.kind !== 'footer' || gd.kind !== 'gd') throw new Error('unreachable');
    expect(footer.header.gdOffset).toBe(BigInt(gd.sector));
    expect({ ...footer.header, gdOffset: 0n }).toEqual({ ...v.header, gdOffset: 0n });
    // 1601 grains -> 4 tables -> a GD of 16 bytes in one sector; group 2 had no data, so no table
    expect(lastIndex).toBe(1600);
    expect(gd.entries.length).toBe(128);
    expect(gd.entries.slice(0, 5)).toEqual([gts[0].sector, gts[1].sector, 0, gts[2].sector, 0]);
    if (gts[0].kind !== 'gt' || gts[1].kind !== 'gt' || gts[2].kind !== 'gt') throw new Error('unreachable');
    expect(gts[0].entries[0]).toBe(gs[0].sector);
    expect(gts[0].entries[7]).toBe(gs[1].sector);
    expect(gts[0].entries.filter((x) => x !== 0).length).toBe(2);
    expect(gts[1].entries[600 - 512]).toBe(gs[2].sector);
    expect(gts[1].entries.filter((x) => x !== 0).length).toBe(1);
    expect(gts[2].entries[lastIndex - 3 * 512]).toBe(gs[3].sector);
    expect(gs[0].sector).toBe(128);
  });

  it('stores each grain as a zlib stream with its LBA, inflating to a full grain', () => {
    const gs = parseVmdk(file).events.filter((e) => e.kind === 'grain');
    expect(gs.map((g) => (g.kind === 'grain' ? g.lba : -1n))).toEqual([0n, 7n * 128n, 600n * 128n, BigInt(lastIndex) * 128n]);
    for (const g of gs) {
      if (g.kind !== 'grain') continue;
      expect(g.compressed[0]).toBe(0x78);
      expect(inflateSync(g.compressed).length).toBe(GRAIN_BYTES);
    }
    const seven = gs[1];
    if (seven.kind === 'grain') expect(seven.size).toBeLessThan(1000);
  });

  it('round-trips through the independent reader', () => {
    expect(reconstruct(file).equals(rawOf(grains, capacityBytes))).toBe(true);
  });

  it('still writes GD, footer and EOS for an all-zero disk, and no grain table', () => {
    const empty = encodeVmdk([{ index: 3, data: Buffer.alloc(GRAIN_BYTES) }], { capacityBytes: 64 * MiB, fileName: 'e.vmdk', virtualHwVersion: 14 });
    const v = parseVmdk(empty);
    expect(v.events.map((e) => e.kind)).toEqual(['gd', 'footer', 'eos']);
    expect(v.trailingBytes).toBe(0);
    expect(empty.length).toBe((128 + 2 + 2 + 1) * 512);
    const gd = v.events[0];
    if (gd.kind === 'gd') expect(gd.entries.every((x) => x === 0)).toBe(true);
    expect(isZero(reconstruct(empty))).toBe(true);
  });

  it('rejects grains out of order or beyond the disk', () => {
    const data = Buffer.alloc(GRAIN_BYTES, 1);
    expect(() => encodeVmdk([{ index: 2, data }, { index: 1, data }], opts)).toThrow(/out of order/);
    expect(() => encodeVmdk([{ index: 2, data }, { index: 2, data }], opts)).toThrow(/out of order/);
    expect(() => encodeVmdk([{ index: lastIndex + 1, data }], opts)).toThrow(/beyond the disk/);
  });
});

describe('raw disk to VMDK on disk', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'c2v-vmdk-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function sparseRaw(name: string, size: number, writes: [number, Buffer][]): Promise<string> {
    const p = join(dir, name);
    await makeSparseFile(p, size, writes);
    return p;
  }

  it('writes a VMDK that qemu-img checks and finds identical to the raw disk, hashed as written', async () => {
    const size = 200 * MiB;
    const raw = await sparseRaw('disk.raw', size, [
      [0, randomBytes(3 * GRAIN_BYTES + 100)],
      [MiB + 123, randomBytes(5000)],
      [40 * MiB, randomBytes(MiB)], // second grain-table group
      [130 * MiB + 7, Buffer.alloc(2 * GRAIN_BYTES, 0x5a)],
      [size - 700, randomBytes(700)],
    ]);
    const out = join(dir, 'disk.vmdk');
    const result = await writeVmdk(raw, out, { capacityBytes: size, fileName: 'disk.vmdk', virtualHwVersion: 14, digest: 'sha512' });

    const bytes = await readFile(out);
    expect(result.bytes).toBe(bytes.length);
    expect(result.digest).toBe(createHash('sha512').update(bytes).digest('hex'));
    expect(parseVmdk(bytes).trailingBytes).toBe(0);
    expect(await firstDifferentGrain(bytes, raw)).toBeNull();

    await execFileAsync('qemu-img', ['check', '-f', 'vmdk', out]);
    const cmp = await execFileAsync('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, out]);
    expect(cmp.stdout).toMatch(/Images are identical/);
    const info = JSON.parse((await execFileAsync('qemu-img', ['info', '--output=json', '-f', 'vmdk', out])).stdout);
    expect(info['virtual-size']).toBe(size);
    expect(info['format-specific'].data['create-type']).toBe('streamOptimized');
    expect(info['format-specific'].data.extents[0].compressed).toBe(true);

    // The comparison has teeth: a grain whose stored data inflates to one changed byte is reported.
    const bad = Buffer.from(bytes);
    const index = (130 * MiB) / GRAIN_BYTES;
    const grain = parseVmdk(bad).events.find((e) => e.kind === 'grain' && e.lba === BigInt(index * 128));
    if (grain?.kind !== 'grain') throw new Error(`grain ${index} not found`);
    const altered = Buffer.from(grain.data);
    altered[1000] ^= 0xff;
    const patched = deflateSync(altered);
    expect(12 + patched.length).toBeLessThanOrEqual(Math.ceil((12 + grain.size) / 512) * 512);
    patched.copy(bad, grain.sector * 512 + 12);
    bad.writeUInt32LE(patched.length, grain.sector * 512 + 8);
    const badPath = join(dir, 'bad.vmdk');
    await writeFile(badPath, bad);
    await expect(execFileAsync('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, badPath])).rejects.toMatchObject({ code: 1 });
    expect(await firstDifferentGrain(bad, raw)).toBe(index);
  }, 120_000);

  it('leaves no partial output when encoding fails', async () => {
    const raw = await sparseRaw('small.raw', MiB, [[0, Buffer.from('data')]]);
    const out = join(dir, 'failed.vmdk');
    await expect(writeVmdk(raw, out, { capacityBytes: MiB, fileName: 'bad"name.vmdk', virtualHwVersion: 14, digest: 'sha256' })).rejects.toThrow(/fileName/);
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(writeVmdk(raw, out, { capacityBytes: MiB / 2, fileName: 'x.vmdk', virtualHwVersion: 14, digest: 'sha256' })).rejects.toThrow(/larger than the VMDK capacity/);
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reads a raw file shorter than the capacity as zeros past its end', async () => {
    const raw = await sparseRaw('short.raw', MiB + 1000, [[MiB + 999, Buffer.from('e')]]);
    const out = join(dir, 'short.vmdk');
    await writeVmdk(raw, out, { capacityBytes: 4 * MiB, fileName: 'short.vmdk', virtualHwVersion: 14, digest: 'sha256' });
    const disk = reconstruct(await readFile(out));
    expect(disk.length).toBe(4 * MiB);
    expect(disk[MiB + 999]).toBe(0x65);
    expect(isZero(disk.subarray(MiB + 1000))).toBe(true);
  });
});

describe('writer output, pinned', () => {
  let dir: string;
  let raw: string;
  // A fixed disk: text-like data (so the deflate engine's choices show in the bytes), an island of pseudo-random
  // bytes in the third grain-table group, allocated zeros, and a raw file ending short of the capacity.
  const capacityBytes = 70 * MiB + 1536;
  const opts = { capacityBytes, fileName: 'pinned-disk1.vmdk', virtualHwVersion: 14 };
  // SHA-256 of the VMDK as the writer produced it when this pin was set; any change to a byte of c2v's VMDK
  // output (layout, descriptor, grain order, deflate engine or level) changes it.
  const PINNED = 'ec53efbbab53db73df0575d4562ebf3becbfb2f1aff57e067af513460c781170';

  function text(bytes: number): Buffer {
    const lines: string[] = [];
    let n = 0;
    for (let i = 0; n < bytes; i++) {
      const line = `${i.toString(36)} ${createHash('sha256').update(String(i % 97)).digest('hex').slice(0, (i * 7) % 40)} /usr/lib/x86_64-linux-gnu/lib${i % 13}.so.${i % 5}\n`;
      lines.push(line);
      n += line.length;
    }
    return Buffer.from(lines.join('')).subarray(0, bytes);
  }

  function noise(bytes: number): Buffer {
    const parts: Buffer[] = [];
    for (let i = 0; parts.length * 32 < bytes; i++) parts.push(createHash('sha256').update(`noise ${i}`).digest());
    return Buffer.concat(parts).subarray(0, bytes);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'c2v-vmdk-pin-'));
    raw = join(dir, 'pinned.raw');
    await writeFile(raw, '');
    await truncate(raw, 70 * MiB + 1000);
    const fh = await open(raw, 'r+');
    try {
      for (const [at, data] of [
        [0, text(600 * 1024)],
        [5 * MiB + 7, Buffer.alloc(3 * GRAIN_BYTES)],
        [5 * MiB + 3 * GRAIN_BYTES, text(70_000)],
        [66 * MiB, noise(200 * 1024)],
        [70 * MiB + 999, Buffer.from('e')],
      ] as [number, Buffer][]) {
        await fh.write(data, 0, data.length, at);
      }
    } finally {
      await fh.close();
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const engine of ['libdeflate-native', 'libdeflate-wasm'] as const) {
    it(`has not changed a byte (${engine})`, async () => {
      const out = join(dir, `${engine}.vmdk`);
      const result = await writeVmdk(raw, out, { ...opts, engine, threads: 2, digest: 'sha256' });
      expect(result.engine).toBe(engine);
      expect(result.digest).toBe(createHash('sha256').update(await readFile(out)).digest('hex'));
      expect(reconstruct(await readFile(out)).subarray(0, 70 * MiB + 1000).equals(await readFile(raw))).toBe(true);
      expect(result.digest).toBe(PINNED);
    }, 60_000);
  }
});
