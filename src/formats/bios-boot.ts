/**
 * What grub-bios-setup does to boot.img and core.img when it embeds GRUB in a GPT disk's BIOS boot partition,
 * done on bytes. grub-bios-setup itself refuses an image file ("guessing the root device failed").
 *
 * Offsets are GRUB's (include/grub/i386/pc/boot.h, include/grub/offsets.h, util/setup.c), checked against
 * grub-pc-bin 2.06 on Debian bookworm.
 */
import { SECTOR } from '../plan/layout.js';

// boot.img (the MBR code)
const BPB_START = 0x03;
const BPB_END = 0x5a;
const KERNEL_SECTOR = 0x5c;
const BOOT_DRIVE = 0x64;
const DRIVE_CHECK = 0x66;
/** From the NT disk signature to the end of the partition table: the disk's identity, which boot.img must not replace. */
const NT_MAGIC = 0x1b8;
const PART_END = 0x1fe;

// core.img's first sector (diskboot.img): a block list growing down from the end of the sector, 12 bytes an entry.
const LIST_SIZE = 12;
const FIRST_LIST = SECTOR - LIST_SIZE; // 0x1F4
const LIST_START = 0; // u64
const LIST_LEN = 8; // u16, sectors
const LIST_SEGMENT = 10; // u16
/** diskboot.img is loaded at 0x8000 and loads the rest right after it (GRUB_BOOT_I386_PC_KERNEL_SEG 0x800 + 512/16). */
const CORE_SEGMENT = 0x820;

/** The decompressor's header in core.img's second sector; 0xFFFF here means a core.img of another GRUB version. */
const NO_RS_LENGTH = SECTOR + 0x14;
/**
 * grub-bios-setup's own cap on the sectors it embeds, (0x78000 - GRUB_KERNEL_I386_PC_LINK_ADDR 0x9000) / 512 = 888:
 * the real-mode loader has that much low memory to load into. A bigger core.img would not boot even if it fitted.
 */
export const MAX_CORE_SECTORS = (0x78000 - 0x9000) / SECTOR;

function checkLba(lba: number, what: string): void {
  if (!Number.isSafeInteger(lba) || lba < 1) {
    throw new RangeError(`${what} must be a whole LBA of at least 1, got ${lba}`);
  }
}

/** Sectors core.img occupies once padded to whole sectors (what the BIOS boot partition must hold). */
export function coreImgSectors(coreImg: Buffer): number {
  return Math.ceil(coreImg.length / SECTOR);
}

/**
 * boot.img patched for a hard disk, merged with the disk's existing sector 0 (the protective MBR). Returns the
 * 512 bytes to write at LBA 0.
 */
export function patchBootImg(bootImg: Buffer, existingMbr: Buffer, coreStartLba: number): Buffer {
  if (bootImg.length !== SECTOR) throw new RangeError(`boot.img must be ${SECTOR} bytes, got ${bootImg.length}`);
  if (existingMbr.length !== SECTOR) throw new RangeError(`the existing MBR must be ${SECTOR} bytes, got ${existingMbr.length}`);
  if (bootImg.readUInt16LE(PART_END) !== 0xaa55) throw new RangeError('boot.img has no 0x55AA boot signature');
  if (existingMbr.readUInt16LE(PART_END) !== 0xaa55) {
    throw new RangeError('the existing MBR has no 0x55AA boot signature (write the protective MBR first)');
  }
  checkLba(coreStartLba, 'core.img start sector');

  const out = Buffer.from(bootImg);
  // A BPB would belong to a filesystem starting at sector 0; grub-bios-setup keeps whatever is there.
  existingMbr.copy(out, BPB_START, BPB_START, BPB_END);
  out.writeBigUInt64LE(BigInt(coreStartLba), KERNEL_SECTOR);
  // 0xFF: use the drive number the BIOS passes in DL rather than a fixed one.
  out[BOOT_DRIVE] = 0xff;
  // The 2-byte jmp at DRIVE_CHECK skips boot.S's workaround for BIOSes that pass DL = 0x00/0x01 when booting the
  // first hard disk; grub-bios-setup turns it into two NOPs for any non-floppy target, enabling the workaround.
  out[DRIVE_CHECK] = 0x90;
  out[DRIVE_CHECK + 1] = 0x90;
  existingMbr.copy(out, NT_MAGIC, NT_MAGIC, PART_END);
  out.writeUInt16LE(0xaa55, PART_END);
  return out;
}

/**
 * core.img with its block list pointing at a contiguous run starting at coreStartLba, padded with zeros to whole
 * sectors (as grub-bios-setup writes it). Returns the bytes to write at coreStartLba.
 *
 * No Reed-Solomon recovery codes are added (grub-install adds them by default to survive partial overwrites of
 * the embedding area); GRUB boots without them.
 */
export function patchCoreImg(coreImg: Buffer, coreStartLba: number, opts: { maxSectors?: number } = {}): Buffer {
  checkLba(coreStartLba, 'core.img start sector');
  const sectors = coreImgSectors(coreImg);
  if (sectors < 2) {
    throw new RangeError(`core.img of ${coreImg.length} bytes is too small: expected diskboot.img plus the kernel`);
  }
  if (coreImg.readUInt16LE(FIRST_LIST + LIST_SEGMENT) !== CORE_SEGMENT) {
    throw new RangeError(
      'core.img does not start with an i386-pc diskboot.img block list (was it made with grub-mkimage -O i386-pc?)',
    );
  }
  if (coreImg.length >= NO_RS_LENGTH + 2 && coreImg.readUInt16LE(NO_RS_LENGTH) === 0xffff) {
    throw new RangeError('core.img version mismatch: its header has no Reed-Solomon length field');
  }
  const limit = Math.min(MAX_CORE_SECTORS, opts.maxSectors ?? MAX_CORE_SECTORS);
  if (sectors > limit) {
    throw new RangeError(
      `core.img needs ${sectors} sectors (${coreImg.length} bytes) but at most ${limit} fit` +
        (opts.maxSectors !== undefined && opts.maxSectors < MAX_CORE_SECTORS
          ? ' in the BIOS boot partition'
          : ' below the boot code buffers') +
        '; build it with fewer modules',
    );
  }

  const out = Buffer.alloc(sectors * SECTOR);
  coreImg.copy(out);

  // Clear any lists a previous setup left, down to the terminator (an entry with length 0).
  for (let off = FIRST_LIST; off > 0 && out.readUInt16LE(off + LIST_LEN) !== 0; off -= LIST_SIZE) {
    out.fill(0, off, off + LIST_SIZE);
  }
  // One entry: the rest of core.img, right after its first sector. The next entry down is the terminator.
  out.writeBigUInt64LE(BigInt(coreStartLba + 1), FIRST_LIST + LIST_START);
  out.writeUInt16LE(sectors - 1, FIRST_LIST + LIST_LEN);
  out.writeUInt16LE(CORE_SEGMENT, FIRST_LIST + LIST_SEGMENT);
  out.fill(0, FIRST_LIST - LIST_SIZE, FIRST_LIST);
  return out;
}
