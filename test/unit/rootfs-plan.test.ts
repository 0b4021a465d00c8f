import type { OsRelease } from '../../src/plan/os-release.js';
import { describe, expect, it } from 'vitest';
import { autoRootBytes, ext4Features, measuredRootSize, guestHasOldE2fsprogs, minimumRootBytes, mke2fsConfig } from '../../src/plan/rootfs.js';
import { deriveIdentity, derivedUuid, fatUuid } from '../../src/plan/identity.js';
import { compareDotted, parseMke2fsVersion } from '../../src/adapters/tools.js';

const MiB = 1024 * 1024;

describe('ext4 features for the guest', () => {
  it('never enables features that old e2fsck or GRUB 2.06 reject', () => {
    for (const os of [{ ID: 'debian', VERSION_ID: '11' }, { ID: 'debian', VERSION_ID: '13' }, { ID: 'alpine', VERSION_ID: '3.20.1' }, {}] as OsRelease[]) {
      const f = ext4Features(os);
      expect(f).not.toContain('orphan_file');
      expect(f).not.toContain('metadata_csum_seed');
      expect(f).toContain('has_journal');
    }
  });

  it('drops metadata_csum for guests whose e2fsprogs predates it', () => {
    expect(guestHasOldE2fsprogs({ ID: 'centos', ID_LIKE: 'rhel fedora', VERSION_ID: '7' })).toBe(true);
    expect(guestHasOldE2fsprogs({ ID: 'ubuntu', VERSION_ID: '16.04' })).toBe(true);
    expect(guestHasOldE2fsprogs({ ID: 'debian', VERSION_ID: '11' })).toBe(false);
    expect(ext4Features({ ID: 'centos', VERSION_ID: '7' })).not.toContain('metadata_csum');
    expect(ext4Features({ ID: 'debian', VERSION_ID: '12' })).toContain('metadata_csum');
  });

  it("reads each distribution's version on its own numbering", () => {
    // Fedora counts its own releases: 1.43 arrived in Fedora 25, so RHEL's "before 8" says nothing about it.
    expect(guestHasOldE2fsprogs({ ID: 'fedora', VERSION_ID: '24' })).toBe(true);
    expect(guestHasOldE2fsprogs({ ID: 'fedora', VERSION_ID: '25' })).toBe(false);
    // Rebuilds and Fedora-derived distributions that name a parent follow RHEL's numbering.
    expect(guestHasOldE2fsprogs({ ID: 'ol', ID_LIKE: 'fedora', VERSION_ID: '7.9' })).toBe(true);
    expect(guestHasOldE2fsprogs({ ID: 'rocky', ID_LIKE: 'rhel centos fedora', VERSION_ID: '8.10' })).toBe(false);
    expect(guestHasOldE2fsprogs({ ID: 'amzn', ID_LIKE: 'centos rhel fedora', VERSION_ID: '2' })).toBe(true);
    expect(guestHasOldE2fsprogs({ ID: 'amzn', ID_LIKE: 'fedora', VERSION_ID: '2023' })).toBe(false);
    // A derivative's own version is not its parent's: Mint 17 is not Ubuntu 17.
    expect(guestHasOldE2fsprogs({ ID: 'linuxmint', ID_LIKE: 'ubuntu debian', VERSION_ID: '17' })).toBe(false);
    expect(guestHasOldE2fsprogs({ ID: 'ubuntu', VERSION_ID: '17.10' })).toBe(true);
    expect(guestHasOldE2fsprogs({ ID: 'ubuntu', VERSION_ID: '18.04' })).toBe(false);
    expect(guestHasOldE2fsprogs({ ID: 'debian', VERSION_ID: '8' })).toBe(true);
    expect(guestHasOldE2fsprogs({ ID: 'debian' })).toBe(false);
  });

  it('writes a private mke2fs.conf naming exactly those features', () => {
    const conf = mke2fsConfig(['has_journal', 'extent']);
    expect(conf).toMatch(/^\t\tfeatures = has_journal,extent$/m);
    expect(conf).toMatch(/^\tblocksize = 4096$/m);
  });

  it('sizes the root from the content, auto with headroom', () => {
    expect(minimumRootBytes(600 * MiB)).toBe(754 * MiB);
    expect(autoRootBytes(600 * MiB)).toBe(1010 * MiB);
    expect(autoRootBytes(4096 * MiB)).toBeGreaterThan(minimumRootBytes(4096 * MiB) + 800 * MiB);
  });

  it('sizes measured content by its blocks and entries, with an inode for each and to spare', () => {
    // 120,000 one-byte files: 469 MiB of blocks for 120 KB of bytes.
    const tiny = measuredRootSize({ entries: 120_000, blocks: 120_000 }, { headroom: false });
    expect(tiny.bytes).toBeGreaterThan(120_000 * 4096 + 120_000 * 256 + 16 * MiB);
    expect(tiny.bytes).toBeLessThan(620 * MiB);
    expect(tiny.bytes % MiB).toBe(0);
    expect(tiny.inodes).toBeGreaterThanOrEqual(150_000);
    const auto = measuredRootSize({ entries: 120_000, blocks: 120_000 }, { headroom: true });
    expect(auto.bytes - tiny.bytes).toBeGreaterThanOrEqual(255 * MiB);
    expect(auto.inodes).toBeGreaterThanOrEqual(Math.floor(auto.bytes / 8192));
    // Large files: about the bytes, plus the journal mke2fs gives a filesystem of that size (64 MiB from 2 GiB).
    const big = measuredRootSize({ entries: 2000, blocks: (4096 * MiB) / 4096 }, { headroom: false });
    expect(big.bytes).toBeGreaterThan(4096 * MiB + 64 * MiB);
    expect(big.bytes).toBeLessThan(4096 * MiB * 1.1);
  });
});

describe('identity', () => {
  it('derives stable, distinct, RFC 4122 version 4 identifiers from a seed', () => {
    const a = deriveIdentity('seed-a');
    expect(deriveIdentity('seed-a')).toEqual(a);
    expect(deriveIdentity('seed-b').rootFsUuid).not.toBe(a.rootFsUuid);
    const ids = [a.diskGuid, a.biosBootGuid, a.espGuid, a.rootGuid, a.rootFsUuid, a.rootHashSeed];
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.espVolumeId).toMatch(/^[0-9A-F]{8}$/);
    expect(fatUuid('1234ABCD')).toBe('1234-ABCD');
    expect(derivedUuid('s', 'x')).not.toBe(derivedUuid('s', 'y'));
  });
});

describe('tool versions', () => {
  it('reads mke2fs -V and compares dotted versions', () => {
    expect(parseMke2fsVersion('mke2fs 1.47.2 (1-Jan-2025)\n\tUsing EXT2FS Library version 1.47.2')).toBe('1.47.2');
    expect(compareDotted('1.47.0', '1.47.1')).toBeLessThan(0);
    expect(compareDotted('1.47.10', '1.47.2')).toBeGreaterThan(0);
  });
});
