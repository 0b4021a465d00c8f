import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32, encodeGpt, encodeProtectiveMbr, guidToBytes } from '../../src/formats/gpt.js';
import { MiB, planLayout, type DiskLayout } from '../../src/plan/layout.js';
import { bytesToGuid, crc32Table, GptFormatError, parseGpt } from '../helpers/gpt-reader.js';

const guids = {
  disk: '0C1D2E3F-4A5B-4C6D-8E7F-8091A2B3C4D5',
  biosBoot: '11111111-2222-4333-8444-555555555555',
  esp: '66666666-7777-4888-9999-AAAAAAAAAAAA',
  root: 'BBBBBBBB-CCCC-4DDD-AEEE-FFFFFFFFFFFF',
};
const DISK = 300 * MiB;
const TOTAL = DISK / 512;

function layout(): DiskLayout {
  return planLayout({ rootBytes: 100 * MiB, diskBytes: DISK, guids });
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('crc32', () => {
  it('matches the CRC-32 check value for "123456789"', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Table(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });

  it("agrees with the test reader's own table-driven CRC", () => {
    const b = Buffer.alloc(70_000);
    for (let i = 0; i < b.length; i++) b[i] = (i * 2654435761) >>> 24;
    expect(crc32(b)).toBe(crc32Table(b));
  });
});

describe('GUID byte order (guidToBytes, read back by the test reader)', () => {
  it('stores the first three fields little-endian and the rest as written', () => {
    expect(guidToBytes('C12A7328-F81F-11D2-BA4B-00A0C93EC93B')).toEqual(hex('28732AC1 1FF8 D211 BA4B 00A0C93EC93B'));
    // The BIOS boot type GUID is chosen so its on-disk bytes read "Hah!IdontNeedEFI".
    expect(guidToBytes('21686148-6449-6E6F-744E-656564454649').toString('latin1')).toBe('Hah!IdontNeedEFI');
    expect(guidToBytes('c12a7328-f81f-11d2-ba4b-00a0c93ec93b')).toEqual(guidToBytes('C12A7328-F81F-11D2-BA4B-00A0C93EC93B'));
  });

  it('round trips and rejects malformed input', () => {
    expect(bytesToGuid(hex('28732AC1 1FF8 D211 BA4B 00A0C93EC93B'))).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    expect(bytesToGuid(guidToBytes(guids.root))).toBe(guids.root);
    expect(() => guidToBytes('C12A7328F81F11D2BA4B00A0C93EC93B')).toThrow(TypeError);
    expect(() => bytesToGuid(Buffer.alloc(15))).toThrow(RangeError);
  });
});

describe('encodeProtectiveMbr', () => {
  it('has one 0xEE record from LBA 1 over the rest of the disk and the 0x55AA signature', () => {
    const mbr = encodeProtectiveMbr(TOTAL);
    expect(mbr.length).toBe(512);
    expect(mbr.subarray(0, 0x1be).every((b) => b === 0)).toBe(true);
    expect(mbr[0x1be]).toBe(0x00);
    expect([...mbr.subarray(0x1bf, 0x1c2)]).toEqual([0x00, 0x02, 0x00]);
    expect(mbr[0x1c2]).toBe(0xee);
    // LBA 614399 with 255 heads x 63 sectors: cylinder 38, head 62, sector 24.
    expect([...mbr.subarray(0x1c3, 0x1c6)]).toEqual([62, 24, 38]);
    expect(mbr.readUInt32LE(0x1c6)).toBe(1);
    expect(mbr.readUInt32LE(0x1ca)).toBe(TOTAL - 1);
    expect(mbr.subarray(0x1ce, 0x1fe).every((b) => b === 0)).toBe(true);
    expect([mbr[0x1fe], mbr[0x1ff]]).toEqual([0x55, 0xaa]);
  });

  it('caps the size at 0xFFFFFFFF and the CHS at 0xFFFFFF for disks beyond their reach', () => {
    const mbr = encodeProtectiveMbr(2 ** 33);
    expect(mbr.readUInt32LE(0x1ca)).toBe(0xffffffff);
    expect([...mbr.subarray(0x1c3, 0x1c6)]).toEqual([0xff, 0xff, 0xff]);
  });
});

describe('encodeGpt', () => {
  const l = layout();
  const { primary, backup, backupOffsetBytes } = encodeGpt(l);

  it('lays out the primary header fields at the UEFI spec offsets', () => {
    expect(primary.length).toBe(33 * 512);
    const h = primary.subarray(0, 512);
    expect(h.toString('latin1', 0, 8)).toBe('EFI PART');
    expect([...h.subarray(8, 12)]).toEqual([0x00, 0x00, 0x01, 0x00]);
    expect(h.readUInt32LE(12)).toBe(92);
    expect(h.readUInt32LE(20)).toBe(0);
    expect(h.readBigUInt64LE(24)).toBe(1n);
    expect(h.readBigUInt64LE(32)).toBe(BigInt(TOTAL - 1));
    expect(h.readBigUInt64LE(40)).toBe(34n);
    expect(h.readBigUInt64LE(48)).toBe(BigInt(TOTAL - 34));
    expect(h.subarray(56, 72)).toEqual(hex('3F2E1D0C 5B4A 6D4C 8E7F 8091A2B3C4D5'));
    expect(h.readBigUInt64LE(72)).toBe(2n);
    expect(h.readUInt32LE(80)).toBe(128);
    expect(h.readUInt32LE(84)).toBe(128);
    expect(h.readUInt32LE(88)).toBe(crc32(primary.subarray(512)));
    const zeroed = Buffer.from(h.subarray(0, 92));
    zeroed.writeUInt32LE(0, 16);
    expect(h.readUInt32LE(16)).toBe(crc32(zeroed));
    expect(h.subarray(92).every((b) => b === 0)).toBe(true);
  });

  it('encodes the partition entries: type, unique GUID, LBAs, attributes and a UTF-16LE name', () => {
    const e0 = primary.subarray(512, 640);
    expect(e0.subarray(0, 16).toString('latin1')).toBe('Hah!IdontNeedEFI');
    expect(e0.subarray(16, 32)).toEqual(hex('11111111 2222 3343 8444 555555555555'));
    expect(e0.readBigUInt64LE(32)).toBe(2048n);
    expect(e0.readBigUInt64LE(40)).toBe(4095n);
    expect(e0.readBigUInt64LE(48)).toBe(0n);
    expect(e0.subarray(56, 56 + 18)).toEqual(Buffer.from('BIOS boot', 'utf16le'));
    expect(e0.subarray(56 + 18).every((b) => b === 0)).toBe(true);

    const e1 = primary.subarray(640, 768);
    expect(e1.subarray(0, 16)).toEqual(hex('28732AC1 1FF8 D211 BA4B 00A0C93EC93B'));
    expect(e1.readBigUInt64LE(32)).toBe(4096n);
    const e2 = primary.subarray(768, 896);
    expect(e2.subarray(0, 16)).toEqual(hex('E3BC684F CDE8 B14D 96E7 FBCAF984B709'));
    expect(e2.readBigUInt64LE(32)).toBe(135168n);
    expect(e2.readBigUInt64LE(40)).toBe(BigInt(TOTAL - 34));
    // Entries 4..128 are unused: all zero.
    expect(primary.subarray(896).every((b) => b === 0)).toBe(true);
  });

  it('writes the backup as the same entries followed by a header with the LBAs swapped', () => {
    expect(backup.length).toBe(33 * 512);
    expect(backupOffsetBytes).toBe((TOTAL - 33) * 512);
    expect(backup.subarray(0, 32 * 512)).toEqual(primary.subarray(512));
    const h = backup.subarray(32 * 512);
    expect(h.toString('latin1', 0, 8)).toBe('EFI PART');
    expect(h.readBigUInt64LE(24)).toBe(BigInt(TOTAL - 1));
    expect(h.readBigUInt64LE(32)).toBe(1n);
    expect(h.readBigUInt64LE(72)).toBe(BigInt(TOTAL - 33));
    expect(h.readUInt32LE(88)).toBe(primary.subarray(0, 512).readUInt32LE(88));
    expect(h.readUInt32LE(16)).not.toBe(primary.readUInt32LE(16));
  });

  it('round trips through the test reader, primary and backup', () => {
    const expected = l.partitions.map((p, index) => ({
      index,
      typeGuid: p.typeGuid,
      uuid: p.uuid,
      firstLba: p.firstLba,
      lastLba: p.lastLba,
      attributes: 0n,
      name: p.name,
    }));
    const p = parseGpt(primary);
    expect(p.header).toMatchObject({
      revision: 0x00010000,
      headerSize: 92,
      myLba: 1,
      alternateLba: TOTAL - 1,
      firstUsableLba: 34,
      lastUsableLba: TOTAL - 34,
      diskGuid: guids.disk,
      partitionEntryLba: 2,
      numberOfPartitionEntries: 128,
      sizeOfPartitionEntry: 128,
    });
    expect(p.partitions).toEqual(expected);

    const b = parseGpt(backup, { copy: 'backup' });
    expect(b.header).toMatchObject({ myLba: TOTAL - 1, alternateLba: 1, partitionEntryLba: TOTAL - 33, diskGuid: guids.disk });
    expect(b.partitions).toEqual(expected);
  });

  it('rejects a corrupt signature, revision, header or entry array', () => {
    const bad = (mutate: (b: Buffer) => void, re: RegExp, copy: 'primary' | 'backup' = 'primary') => {
      const b = Buffer.from(copy === 'primary' ? primary : backup);
      mutate(b);
      expect(() => parseGpt(b, { copy })).toThrow(GptFormatError);
      expect(() => parseGpt(b, { copy })).toThrow(re);
    };
    bad((b) => (b[0] = 0x46), /no GPT signature/);
    bad((b) => (b[48] ^= 1), /header CRC mismatch/);
    bad((b) => (b[512 + 100] ^= 1), /entries CRC mismatch/);
    bad((b) => (b[10] ^= 1), /entries CRC mismatch/, 'backup');
    bad((b) => {
      b.writeUInt32LE(0x00020000, 8);
      b.writeUInt32LE(0, 16);
      b.writeUInt32LE(crc32(b.subarray(0, 92)), 16);
    }, /unsupported GPT revision 0x00020000/);
    expect(() => parseGpt(primary.subarray(0, 512))).toThrow(/not inside the buffer/);
  });

  it('refuses layouts that cannot be encoded', () => {
    expect(() => encodeGpt({ ...l, partitions: [{ ...l.partitions[0], name: 'x'.repeat(37) }] })).toThrow(/longer than 36/);
    expect(() => encodeGpt({ ...l, partitions: [{ ...l.partitions[2], lastLba: TOTAL - 33 }] })).toThrow(/usable range/);
    expect(() => encodeGpt({ ...l, partitions: [l.partitions[0], { ...l.partitions[1], firstLba: 4095 }] })).toThrow(
      /overlap/,
    );
  });
});

function hasTool(name: string): boolean {
  return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
}

// External check: util-linux and GPT fdisk read what we wrote (install with `apt-get install fdisk gdisk`).
describe('written image, read by sfdisk and sgdisk', () => {
  let dir: string;
  let img: string;
  const l = layout();

  // A sparse file: only the MBR and the two GPT copies are written.
  function writeImage(path: string, withPrimary = true): void {
    const { primary, backup, backupOffsetBytes } = encodeGpt(l);
    const fd = openSync(path, 'w');
    try {
      ftruncateSync(fd, l.diskBytes);
      writeSync(fd, encodeProtectiveMbr(l.totalSectors), 0, 512, 0);
      if (withPrimary) writeSync(fd, primary, 0, primary.length, 512);
      writeSync(fd, backup, 0, backup.length, backupOffsetBytes);
    } finally {
      closeSync(fd);
    }
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'c2v-gpt-'));
    img = join(dir, 'disk.img');
    writeImage(img);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sfdisk reports the planned partitions', () => {
    expect(hasTool('sfdisk'), 'sfdisk (util-linux fdisk package) is required').toBe(true);
    const out = JSON.parse(execFileSync('sfdisk', ['--json', img], { encoding: 'utf8' }));
    const t = out.partitiontable;
    expect(t.label).toBe('gpt');
    expect(t.id).toBe(guids.disk);
    expect(t.firstlba).toBe(34);
    expect(t.lastlba).toBe(TOTAL - 34);
    expect(t.sectorsize ?? 512).toBe(512);
    expect(
      t.partitions.map((p: { start: number; size: number; type: string; uuid: string; name: string }) => ({
        start: p.start,
        size: p.size,
        type: p.type,
        uuid: p.uuid,
        name: p.name,
      })),
    ).toEqual(
      l.partitions.map((p) => ({
        start: p.firstLba,
        size: p.lastLba - p.firstLba + 1,
        type: p.typeGuid,
        uuid: p.uuid,
        name: p.name,
      })),
    );
    const verify = execFileSync('sfdisk', ['--verify', img], { encoding: 'utf8' });
    expect(verify).toMatch(/No errors detected/);
    expect(verify).toMatch(/Header version: 1\.0/);
  });

  it('sgdisk -v finds no problems in the MBR, headers or backup', () => {
    expect(hasTool('sgdisk'), 'sgdisk (gdisk package) is required').toBe(true);
    const v = spawnSync('sgdisk', ['-v', img], { encoding: 'utf8' });
    expect(v.stdout + v.stderr).toMatch(/No problems found/);
    expect(v.status).toBe(0);
    const info = execFileSync('sgdisk', ['-i', '3', img], { encoding: 'utf8' });
    expect(info).toMatch(/Partition GUID code: 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709/);
    expect(info).toContain(`Partition unique GUID: ${guids.root}`);
    expect(info).toContain(`First sector: 135168 `);
    expect(info).toContain(`Last sector: ${TOTAL - 34} `);
    expect(info).toContain(`Partition name: 'Linux root (x86-64)'`);
  });

  it('the backup alone is enough: with no primary GPT, sfdisk reads the same table', () => {
    const copy = join(dir, 'no-primary.img');
    writeImage(copy, false);
    const r = spawnSync('sfdisk', ['--json', copy], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const t = JSON.parse(r.stdout).partitiontable;
    expect(t.id).toBe(guids.disk);
    expect(t.partitions.map((p: { start: number; uuid: string }) => [p.start, p.uuid])).toEqual(
      l.partitions.map((p) => [p.firstLba, p.uuid]),
    );
  });
});
