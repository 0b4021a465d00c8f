import { describe, expect, it } from 'vitest';
import { MiB, PARTITION_TYPE, SECTOR, planLayout, type LayoutRequest } from '../../src/plan/layout.js';

const guids = {
  disk: '0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5',
  biosBoot: '11111111-2222-4333-8444-555555555555',
  esp: '66666666-7777-4888-9999-AAAAAAAAAAAA',
  root: 'BBBBBBBB-CCCC-4DDD-AEEE-FFFFFFFFFFFF',
};

function req(over: Partial<LayoutRequest> = {}): LayoutRequest {
  return { rootBytes: 200 * MiB, guids, ...over };
}

describe('planLayout', () => {
  it('uses the Discoverable Partitions Spec and UEFI type GUIDs', () => {
    expect(PARTITION_TYPE.root).toBe('4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709');
    expect(PARTITION_TYPE.esp).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    expect(PARTITION_TYPE['bios-boot']).toBe('21686148-6449-6E6F-744E-656564454649');
  });

  it('places BIOS boot, ESP and root on 1 MiB boundaries from LBA 2048, sizing the disk to fit', () => {
    const l = planLayout(req());
    // root needs 409600 sectors from 135168, plus 33 for the backup GPT: 544801, rounded up to 2048 = 546816.
    expect(l.totalSectors).toBe(546816);
    expect(l.diskBytes).toBe(546816 * 512);
    expect(l.sectorSize).toBe(512);
    expect(l.diskGuid).toBe('0C1D2E3F-4A5B-4C6D-8E7F-8091A2B3C4D5');
    expect(l.partitions.map((p) => [p.role, p.name, p.typeGuid, p.uuid, p.firstLba, p.lastLba])).toEqual([
      ['bios-boot', 'BIOS boot', '21686148-6449-6E6F-744E-656564454649', guids.biosBoot, 2048, 4095],
      ['esp', 'EFI System', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', guids.esp, 4096, 135167],
      ['root', 'Linux root (x86-64)', '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709', guids.root, 135168, 546782],
    ]);
    for (const p of l.partitions) {
      expect(p.firstLba % 2048).toBe(0);
      expect(p.offsetBytes).toBe(p.firstLba * SECTOR);
      expect(p.sizeBytes).toBe((p.lastLba - p.firstLba + 1) * SECTOR);
    }
    expect(l.partitions[0].sizeBytes).toBe(1 * MiB);
    expect(l.partitions[1].sizeBytes).toBe(64 * MiB);
    // The root takes the rounding slack, up to the last usable LBA (total - 34).
    expect(l.partitions[2].sizeBytes).toBeGreaterThanOrEqual(200 * MiB);
    expect(l.partitions[2].lastLba).toBe(l.totalSectors - 34);
  });

  it('grows the root partition to fill an explicit disk size', () => {
    const l = planLayout(req({ diskBytes: 300 * MiB }));
    expect(l.totalSectors).toBe(614400);
    const root = l.partitions[2];
    expect(root.firstLba).toBe(135168);
    expect(root.lastLba).toBe(614366);
    expect(root.sizeBytes).toBe((614366 - 135168 + 1) * 512);
  });

  it('honours custom ESP and BIOS boot sizes, rounding them up to whole MiB so the next partition stays aligned', () => {
    const l = planLayout(req({ espBytes: 100 * MiB + 1, biosBootBytes: 2 * MiB }));
    expect(l.partitions[0]).toMatchObject({ firstLba: 2048, lastLba: 6143, sizeBytes: 2 * MiB });
    expect(l.partitions[1]).toMatchObject({ firstLba: 6144, sizeBytes: 101 * MiB });
    expect(l.partitions[2].firstLba).toBe(6144 + 101 * 2048);
    expect(l.partitions[2].firstLba % 2048).toBe(0);
  });

  it('accepts a disk exactly big enough and refuses one sector less with a RangeError naming the minimum', () => {
    const minBytes = (135168 + 409600 + 33) * 512;
    const l = planLayout(req({ diskBytes: minBytes }));
    expect(l.partitions[2].sizeBytes).toBe(200 * MiB);

    expect(() => planLayout(req({ diskBytes: minBytes - 512 }))).toThrow(RangeError);
    expect(() => planLayout(req({ diskBytes: minBytes - 512 }))).toThrow(
      new RegExp(`too small.*at least ${minBytes} bytes`),
    );
    expect(() => planLayout(req({ rootBytes: 300 * MiB, diskBytes: 300 * MiB }))).toThrow(/too small/);
  });

  it('rejects sizes that are not positive whole numbers or not sector multiples', () => {
    expect(() => planLayout(req({ diskBytes: 300 * MiB + 1 }))).toThrow(/diskBytes: .* not a multiple of the 512-byte sector/);
    expect(() => planLayout(req({ rootBytes: 0 }))).toThrow(RangeError);
    expect(() => planLayout(req({ espBytes: 1.5 }))).toThrow(/espBytes/);
  });

  it('validates every GUID and reports all problems at once, with their paths', () => {
    let err: unknown;
    try {
      planLayout(req({ guids: { disk: 'nope', biosBoot: guids.biosBoot, esp: guids.biosBoot.toLowerCase(), root: '00000000-0000-0000-0000-000000000000' } }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TypeError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/guids\.disk: expected a GUID/);
    expect(msg).toMatch(/guids\.esp: same GUID as guids\.biosBoot/);
    expect(msg).toMatch(/guids\.root: the nil GUID/);
    expect(() => planLayout(req({ guids: { ...guids, root: '{BBBBBBBB-CCCC-4DDD-AEEE-FFFFFFFFFFFF}' } }))).toThrow(
      /guids\.root/,
    );
  });

  it('is deterministic: the same request gives the same plan', () => {
    expect(planLayout(req({ diskBytes: 1024 * MiB }))).toEqual(planLayout(req({ diskBytes: 1024 * MiB })));
  });
});
