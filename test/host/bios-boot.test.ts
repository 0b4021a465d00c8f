import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CORE_SECTORS, coreImgSectors, patchBootImg, patchCoreImg } from '../../src/formats/bios-boot.js';
import { encodeProtectiveMbr } from '../../src/formats/gpt.js';

// Real GRUB images (grub-pc-bin): the offsets only mean something against GRUB's own bytes.
const BOOT_IMG = '/usr/lib/grub/i386-pc/boot.img';
const CORE_START = 2048;

let dir: string;
let bootImg: Buffer;
let coreImg: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'c2v-bios-boot-'));
  bootImg = readFileSync(BOOT_IMG);
  const core = join(dir, 'core.img');
  execFileSync('grub-mkimage', ['-O', 'i386-pc', '-p', '/boot/grub', '-o', core, 'biosdisk', 'part_gpt', 'ext2']);
  coreImg = readFileSync(core);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A protective MBR with a disk signature and a fake BPB, so preserved bytes differ from boot.img's. */
function existingMbr(): Buffer {
  const mbr = encodeProtectiveMbr(614400);
  for (let i = 0x03; i < 0x5a; i++) mbr[i] = (i * 7) & 0xff;
  mbr.writeUInt32LE(0xdeadbeef, 0x1b8);
  return mbr;
}

describe('patchBootImg', () => {
  it('writes the core.img sector, the drive byte and the hard-disk drive-check NOPs', () => {
    const out = patchBootImg(bootImg, existingMbr(), CORE_START);
    expect(out.length).toBe(512);
    expect(out.readBigUInt64LE(0x5c)).toBe(2048n);
    expect(out[0x64]).toBe(0xff);
    // boot.img ships a 2-byte jmp here (0xEB xx); grub-bios-setup replaces it for hard disks.
    expect(bootImg[0x66]).toBe(0xeb);
    expect([out[0x66], out[0x67]]).toEqual([0x90, 0x90]);
  });

  it('keeps the BPB area and the disk signature + partition table from the existing sector', () => {
    const mbr = existingMbr();
    const out = patchBootImg(bootImg, mbr, CORE_START);
    expect(out.subarray(0x03, 0x5a)).toEqual(mbr.subarray(0x03, 0x5a));
    expect(out.subarray(0x1b8, 0x200)).toEqual(mbr.subarray(0x1b8, 0x200));
    expect(out.readUInt32LE(0x1b8)).toBe(0xdeadbeef);
    expect(out[0x1c2]).toBe(0xee);
    expect(out.readUInt32LE(0x1ca)).toBe(614399);
    expect([out[0x1fe], out[0x1ff]]).toEqual([0x55, 0xaa]);
  });

  it("leaves every other byte of boot.img's code as GRUB shipped it", () => {
    const out = patchBootImg(bootImg, existingMbr(), CORE_START);
    const patched = (i: number) =>
      (i >= 0x03 && i < 0x5a) || (i >= 0x5c && i < 0x65) || i === 0x66 || i === 0x67 || i >= 0x1b8;
    const changed: number[] = [];
    for (let i = 0; i < 512; i++) if (!patched(i) && out[i] !== bootImg[i]) changed.push(i);
    expect(changed).toEqual([]);
    // The jump over the BPB, and the code right after the patched fields, are GRUB's.
    expect(out.subarray(0, 3)).toEqual(bootImg.subarray(0, 3));
    expect(out.subarray(0x68, 0x1b8)).toEqual(bootImg.subarray(0x68, 0x1b8));
  });

  it('does not modify its inputs and rejects wrong sizes, missing signatures and bad sectors', () => {
    const before = Buffer.from(bootImg);
    const mbr = existingMbr();
    const mbrBefore = Buffer.from(mbr);
    patchBootImg(bootImg, mbr, CORE_START);
    expect(bootImg).toEqual(before);
    expect(mbr).toEqual(mbrBefore);

    expect(() => patchBootImg(bootImg.subarray(0, 440), mbr, CORE_START)).toThrow(/512 bytes/);
    expect(() => patchBootImg(bootImg, Buffer.alloc(512), CORE_START)).toThrow(/0x55AA/);
    expect(() => patchBootImg(bootImg, mbr, 0)).toThrow(RangeError);
    expect(() => patchBootImg(bootImg, mbr, 1.5)).toThrow(RangeError);
  });
});

describe('patchCoreImg', () => {
  it('counts sectors rounding up', () => {
    expect(coreImgSectors(coreImg)).toBe(Math.ceil(coreImg.length / 512));
    expect(coreImgSectors(Buffer.alloc(1025))).toBe(3);
    expect(MAX_CORE_SECTORS).toBe(888);
  });

  it('points the block list at the rest of core.img, right after its first sector', () => {
    const sectors = coreImgSectors(coreImg);
    const out = patchCoreImg(coreImg, CORE_START);
    expect(out.length).toBe(sectors * 512);
    expect(out.readBigUInt64LE(0x1f4)).toBe(2049n);
    expect(out.readUInt16LE(0x1fc)).toBe(sectors - 1);
    expect(out.readUInt16LE(0x1fe)).toBe(0x820);
    // The next entry down is the terminator.
    expect(out.subarray(0x1e8, 0x1f4).every((b) => b === 0)).toBe(true);
    // Everything else is core.img, zero-padded to a whole sector.
    expect(out.subarray(0, 0x1e8)).toEqual(coreImg.subarray(0, 0x1e8));
    expect(out.subarray(512, coreImg.length)).toEqual(coreImg.subarray(512));
    expect(out.subarray(coreImg.length).every((b) => b === 0)).toBe(true);
  });

  it('agrees with grub-mkimage, which pre-fills the list for a core.img at LBA 1', () => {
    const padded = Buffer.alloc(coreImgSectors(coreImg) * 512);
    coreImg.copy(padded);
    expect(padded.readBigUInt64LE(0x1f4)).toBe(2n);
    expect(patchCoreImg(coreImg, 1)).toEqual(padded);
  });

  it('refuses a core.img that does not fit, is not an i386-pc image, or is too small', () => {
    const sectors = coreImgSectors(coreImg);
    expect(patchCoreImg(coreImg, CORE_START, { maxSectors: sectors }).length).toBe(sectors * 512);
    expect(() => patchCoreImg(coreImg, CORE_START, { maxSectors: sectors - 1 })).toThrow(/BIOS boot partition/);
    const huge = Buffer.alloc((MAX_CORE_SECTORS + 1) * 512);
    coreImg.copy(huge);
    expect(() => patchCoreImg(huge, CORE_START)).toThrow(/at most 888/);
    expect(() => patchCoreImg(Buffer.alloc(coreImg.length), CORE_START)).toThrow(/diskboot/);
    expect(() => patchCoreImg(coreImg.subarray(0, 512), CORE_START)).toThrow(/too small/);
    expect(() => patchCoreImg(coreImg, 0)).toThrow(RangeError);
  });
});
