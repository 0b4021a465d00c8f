import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOutput, sha256File, type CheckedOutput } from '../helpers/check-output.js';
import { requireDockerEngine } from '../helpers/env.js';
import { buildImage, removeImages } from '../helpers/images.js';
import { runC2vWithPid } from '../helpers/leftovers.js';

/**
 * The same image and options give the same bytes: identifiers come from a seed (image id + options), and every
 * time written into the disk is SOURCE_DATE_EPOCH, or by default the image's creation date. A real Debian
 * userland (thousands of files, hard links, symlinks, old mtimes) with a fake kernel keeps it fast.
 */
const IMAGE = 'c2v-test/reproducible:1';
const EPOCH = 1_700_000_000; // 2023-11-14 22:13:20 UTC

describe('reproducible output', () => {
  let dir: string;
  let n = 0;
  const convert = async (env: Record<string, string>, extra: string[] = []) => {
    const d = path.join(dir, `run-${++n}`);
    const work = path.join(dir, `work-${n}`);
    mkdirSync(work, { recursive: true });
    const ova = path.join(d, 'repro.ova');
    const r = await runC2vWithPid(['convert', IMAGE, '--no-pull', '--name', 'repro', '--workdir', work, '-o', ova, ...extra], { env });
    if (r.exitCode !== 0) throw new Error(`c2v convert failed (${r.exitCode}): ${r.stderr}`);
    return { ova, sha256: await sha256File(ova) };
  };

  beforeAll(async () => {
    requireDockerEngine();
    process.env.TZ = 'UTC'; // for debugfs's dates; c2v's runs get their TZ explicitly
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-repro-'));
    const ctx = path.join(dir, 'ctx');
    mkdirSync(ctx);
    await buildImage(
      IMAGE,
      [
        'FROM debian:bookworm',
        'RUN echo fake > /boot/vmlinuz-6.1.0-0-amd64 && mkdir -p /lib/systemd && cp /bin/true /lib/systemd/systemd && ln -s /lib/systemd/systemd /sbin/init',
        'CMD ["/sbin/init"]',
        '',
      ].join('\n'),
      ctx,
    );
  }, 300_000);

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeImages(IMAGE);
  });

  describe('with SOURCE_DATE_EPOCH', () => {
    let first: { ova: string; sha256: string };
    let out: CheckedOutput;

    beforeAll(async () => {
      first = await convert({ SOURCE_DATE_EPOCH: String(EPOCH), TZ: 'UTC' });
      out = await checkOutput(first.ova);
    }, 300_000);
    afterAll(() => out?.cleanup());

    it('gives a byte-identical OVA on a second run (other folders, another time zone, seconds later)', async () => {
      await new Promise((r) => setTimeout(r, 1100));
      const second = await convert({ SOURCE_DATE_EPOCH: String(EPOCH), TZ: 'Asia/Tokyo' });
      expect(second.sha256).toBe(first.sha256);
    }, 300_000);

    it('writes the epoch as the ext4 superblock times, and clamps newer file mtimes to it', () => {
      const sb = out.debugfs('stats').toString();
      expect(sb).toMatch(/Filesystem created:\s+Tue Nov 14 22:13:20 2023/);
      expect(sb).toMatch(/Last write time:\s+Tue Nov 14 22:13:20 2023/);
      // Files newer than the epoch (the fake kernel, made by the build) are clamped to it; c2v's own files get it.
      expect(out.debugfs('stat /boot/vmlinuz-6.1.0-0-amd64').toString()).toMatch(/mtime: 0x6553f100/);
      expect(out.debugfs('stat /etc/fstab').toString()).toMatch(/mtime: 0x6553f100/);
      expect(out.debugfs('stat /boot/grub/grub.cfg').toString()).toMatch(/mtime: 0x6553f100/);
    });

    it('writes the epoch (in UTC) as every FAT timestamp of the ESP', () => {
      const espImg = path.join(out.dir, 'esp.img');
      execFileSync('dd', [`if=${out.raw}`, `of=${espImg}`, 'bs=1M', 'iflag=skip_bytes,count_bytes', `skip=${out.esp.offset}`, `count=${out.esp.bytes}`, 'status=none']);
      const listing = execFileSync('mdir', ['-i', espImg, '-a', '::/EFI/BOOT'], { encoding: 'utf8', env: { ...process.env, MTOOLS_SKIP_CHECK: '1', TZ: 'UTC' } });
      const stamps = listing.split('\n').filter((l) => /\d{4}-\d\d-\d\d/.test(l));
      expect(stamps.length).toBeGreaterThanOrEqual(3); // ., .., BOOTX64.EFI
      for (const l of stamps) expect(l).toMatch(/2023-11-14\s+22:13/);
    });

    it('changes the bytes when an input that should changes them: the epoch, a VM setting', async () => {
      const otherEpoch = await convert({ SOURCE_DATE_EPOCH: String(EPOCH + 86_400) });
      expect(otherEpoch.sha256).not.toBe(first.sha256);
      const otherCpus = await convert({ SOURCE_DATE_EPOCH: String(EPOCH) }, ['--cpus', '2']);
      expect(otherCpus.sha256).not.toBe(first.sha256);
    }, 300_000);
  });

  it('by default (no SOURCE_DATE_EPOCH) is reproducible from the image creation date', async () => {
    const env = { SOURCE_DATE_EPOCH: '' };
    const a = await convert(env);
    await new Promise((r) => setTimeout(r, 1100));
    const b = await convert(env);
    expect(b.sha256).toBe(a.sha256);
  }, 300_000);
});
