import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOutput } from '../helpers/check-output.js';
import { vmSkeleton, type TarEntry } from '../helpers/crafted-tar.js';
import { dyingEngine } from '../helpers/dying-engine.js';
import { requireDockerEngine } from '../helpers/env.js';
import { importImage, removeImages } from '../helpers/images.js';
import { containersOf, expectCleanFailure, runC2vWithPid, stagingLeftovers } from '../helpers/leftovers.js';

/**
 * Faults a release pipeline meets: too little disk, a dying engine, a failing build, a missing image, engine or
 * host tool. Each ends in one line naming the problem and the fix, the exit code of its kind, and nothing left
 * behind: no output under the final name, no workspace, no container.
 */
const SMALL = 'c2v-test/faults-small:1';
const RANDOM = 'c2v-test/faults-random:1';
const MANY = 'c2v-test/faults-many-files:1';
const MANY_MORE = 'c2v-test/faults-many-more-files:1';
const MiB = 1024 * 1024;

/** The OVA's root filesystem has room for more than `minInodes` files, holds `file` with `content`, and is at least `minRootBytes`. */
async function expectRoot(ova: string, want: { minInodes: number; file: string; content: string; minRootBytes?: number }): Promise<void> {
  const out = await checkOutput(ova);
  try {
    if (want.minRootBytes !== undefined) expect(out.root.bytes).toBeGreaterThan(want.minRootBytes);
    const stats = out.debugfs('stats').toString();
    expect(Number(/Inode count:\s+(\d+)/.exec(stats)![1])).toBeGreaterThan(want.minInodes);
    expect(out.debugfs(`cat ${want.file}`).toString()).toBe(want.content);
  } finally {
    out.cleanup();
  }
}

describe('faults', () => {
  let dir: string;
  const mounts: string[] = [];
  let n = 0;
  /** A fresh, empty output folder, and the output path in it. */
  const place = () => {
    const d = path.join(dir, `case-${++n}`);
    mkdirSync(d);
    return { dir: d, ova: path.join(d, 'out.ova') };
  };
  /** A tmpfs of `size`, allowed in tests (CI runs as root); c2v itself never mounts. */
  const tmpfs = (size: string) => {
    const d = path.join(dir, `tmpfs-${++n}`);
    mkdirSync(d);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', d]);
    mounts.push(d);
    return d;
  };

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-faults-'));
    await importImage(SMALL, vmSkeleton({ name: 'small' }));
    // Incompressible content, so every stage writes about this much.
    await importImage(RANDOM, [...vmSkeleton({ name: 'random' }), { name: 'data', type: 'dir' }, { name: 'data/random', size: 96 * MiB }]);
    // Many tiny files: few bytes (what --disk-size is checked against) but many inodes and blocks.
    const many: TarEntry[] = [{ name: 'many', type: 'dir' }];
    for (let i = 0; i < 20_000; i++) many.push({ name: `many/f${i}`, data: 'x' });
    await importImage(MANY, [...vmSkeleton({ name: 'many' }), ...many]);
    // 120,000 one-byte files: ~470 MiB of blocks, far more than --disk-size auto gives ~200 KB of content.
    const more: TarEntry[] = [];
    for (let d = 0; d < 120; d++) {
      more.push({ name: `more${d}`, type: 'dir' });
      for (let i = 0; i < 1000; i++) more.push({ name: `more${d}/f${i}`, data: 'y' });
    }
    await importImage(MANY_MORE, [...vmSkeleton({ name: 'many-more' }), ...more]);
  }, 300_000);

  afterAll(async () => {
    for (const m of mounts) execFileSync('umount', ['-l', m]);
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeImages(SMALL, RANDOM, MANY, MANY_MORE);
  });

  it('content larger than --disk-size (by bytes): refused before any work, exit 3', async () => {
    const p = place();
    const r = await runC2vWithPid(['convert', RANDOM, '--no-pull', '--disk-size', '140M', '-o', p.ova]);
    await expectCleanFailure(r, 3, /--disk-size 140\.0 MiB is too small for this image .*use at least/, { output: p.ova, dirs: [p.dir] });
  }, 120_000);

  it('content larger than --disk-size (by inodes and blocks: 20,000 tiny files in the minimum size): measured, exit 3 with the size it needs', async () => {
    const p = place();
    const r = await runC2vWithPid(['convert', MANY, '--no-pull', '--disk-size', '136M', '-o', p.ova]);
    await expectCleanFailure(r, 3, /image content \(200\d\d files and folders, .*\) does not fit --disk-size 136\.0 MiB: use at least \d+(\.\d)? MiB, or --disk-size auto/, {
      output: p.ova,
      dirs: [p.dir],
    });
    // The size it names is enough.
    const need = /use at least (\d+(?:\.\d)?) MiB/.exec(r.stderr)![1];
    const q = place();
    const ok = await runC2vWithPid(['convert', MANY, '--no-pull', '--disk-size', `${Math.ceil(Number(need))}M`, '-o', q.ova]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    (await checkOutput(q.ova)).cleanup();
  }, 240_000);

  it('20,000 tiny files in a --disk-size with room for their blocks but not for one inode per 8 KiB: same size, more inodes', async () => {
    const p = place();
    const r = await runC2vWithPid(['convert', MANY, '--no-pull', '--disk-size', '220M', '--json', '-o', p.ova]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).diskBytes).toBe(220 * MiB);
    await expectRoot(p.ova, { minInodes: 20_000, file: '/many/f19999', content: 'x' });
  }, 240_000);

  it('120,000 tiny files with --disk-size auto: sized by bytes they do not fit, so c2v measures them and sizes again', async () => {
    const p = place();
    const r = await runC2vWithPid(['convert', MANY_MORE, '--no-pull', '-o', p.ova]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/more files than its size suggests/);
    await expectRoot(p.ova, { minRootBytes: 470 * MiB, minInodes: 120_000, file: '/more119/f999', content: 'y' });
  }, 300_000);

  it('workspace full while mke2fs writes the root filesystem: exit 7, workspace removed', async () => {
    const p = place();
    const work = tmpfs('48m');
    const r = await runC2vWithPid(['convert', RANDOM, '--no-pull', '--workdir', work, '-o', p.ova]);
    await expectCleanFailure(r, 7, /ran out of (disk )?space/, { output: p.ova, dirs: [p.dir, work] });
    expect(readdirSync(work)).toEqual([]);
  }, 120_000);

  it('workspace full while the VMDK is written: exit 7, workspace removed', async () => {
    const p = place();
    // Room for the raw disk's ~100 MiB of data but not for the VMDK beside it.
    const work = tmpfs('160m');
    const r = await runC2vWithPid(['convert', RANDOM, '--no-pull', '--workdir', work, '-o', p.ova]);
    await expectCleanFailure(r, 7, /space/, { output: p.ova, dirs: [p.dir, work] });
    expect(r.stderr).toMatch(/Writing the streamOptimized VMDK/);
    expect(readdirSync(work)).toEqual([]);
  }, 120_000);

  it('output filesystem full while the finished OVA is copied there from another --workdir: exit 7, no partial file', async () => {
    const out = tmpfs('48m');
    const work = path.join(dir, `work-${++n}`);
    mkdirSync(work);
    const ova = path.join(out, 'out.ova');
    const r = await runC2vWithPid(['convert', RANDOM, '--no-pull', '--workdir', work, '-o', ova]);
    await expectCleanFailure(r, 7, /out of disk space writing .*out\.ova \(ENOSPC\)/, { output: ova, dirs: [out, work] });
    expect(readdirSync(out)).toEqual([]);
    expect(readdirSync(work)).toEqual([]);
  }, 120_000);

  it('--workdir on another filesystem than the output: the OVA is copied into place and is whole', async () => {
    const out = tmpfs('64m');
    const work = path.join(dir, `work-${++n}`);
    mkdirSync(work);
    const ova = path.join(out, 'small.ova');
    const r = await runC2vWithPid(['convert', SMALL, '--no-pull', '--workdir', work, '-o', ova]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(out)).toEqual(['small.ova']);
    expect(readdirSync(work)).toEqual([]);
    (await checkOutput(ova)).cleanup();
  }, 120_000);

  it('the engine drops the connection mid-export: exit 4, names the engine, container removed', async () => {
    const p = place();
    const engine = await dyingEngine(dir, { cutAfterBytes: 8 * MiB });
    try {
      const r = await runC2vWithPid(['convert', RANDOM, '--no-pull', '-o', p.ova], { env: { DOCKER_HOST: engine.dockerHost } });
      expect(engine.cut).toBe(true);
      await expectCleanFailure(r, 4, /the container engine stopped sending the image's file system .*check that the engine still runs/, { output: p.ova, dirs: [p.dir] });
    } finally {
      await engine.close();
    }
  }, 120_000);

  it('the engine dies mid-export and stays dead: exit 4; its container is swept by the next run', async () => {
    const p = place();
    const engine = await dyingEngine(dir, { cutAfterBytes: 8 * MiB, dieCompletely: true });
    let pid: number;
    try {
      const r = await runC2vWithPid(['convert', RANDOM, '--no-pull', '-o', p.ova], { env: { DOCKER_HOST: engine.dockerHost } });
      pid = r.pid;
      expect(r.exitCode, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/c2v: the container engine stopped sending/);
      expect(existsSync(p.ova)).toBe(false);
      expect(stagingLeftovers(p.dir)).toEqual([]);
    } finally {
      await engine.close();
    }
    // The engine could not be asked to remove the container; it carries the dead run's session label.
    expect(await containersOf(pid)).toHaveLength(1);
    const q = place();
    const next = await runC2vWithPid(['convert', SMALL, '--no-pull', '-o', q.ova]);
    expect(next.exitCode, next.stderr).toBe(0);
    expect(await containersOf(pid)).toEqual([]);
  }, 180_000);

  it('a build that fails: exit 5 with the builder error, no image tagged, no build container', async () => {
    const p = place();
    const ctx = path.join(dir, 'failing-build');
    mkdirSync(ctx);
    const marker = `c2v-failing-build-${process.pid}`;
    writeFileSync(path.join(ctx, 'Dockerfile'), `FROM debian:bookworm\nRUN echo ${marker} && exit 42\n`);
    const r = await runC2vWithPid(['convert', path.join(ctx, 'Dockerfile'), '--name', marker, '-o', p.ova]);
    await expectCleanFailure(r, 5, /the Dockerfile build failed: .*returned a non-zero code: 42/, { output: p.ova, dirs: [p.dir] });
    expect(String((await execa('docker', ['images', '-q', `c2v-build/${marker}`])).stdout)).toBe('');
    const cmds = String((await execa('docker', ['ps', '-a', '--no-trunc', '--format', '{{.Command}}'])).stdout);
    expect(cmds).not.toContain(marker);
  }, 300_000);

  it('an image that does not exist (and cannot be pulled): exit 3', async () => {
    const p = place();
    const r = await runC2vWithPid(['convert', 'c2v-test/no-such-image:1', '--no-pull', '-o', p.ova]);
    await expectCleanFailure(r, 3, /image c2v-test\/no-such-image:1 is not present locally: build or pull it first/, { output: p.ova, dirs: [p.dir] });
  }, 60_000);

  it('an engine that is not running: exit 4, says how to start one', async () => {
    const p = place();
    const r = await runC2vWithPid(['convert', SMALL, '-o', p.ova], { env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
    await expectCleanFailure(r, 4, /no Docker engine answers at unix:\/\/\/nonexistent\/docker\.sock .*start one \(sudo systemctl start docker/, { output: p.ova, dirs: [p.dir] });
  }, 60_000);

  it('missing host tools: exit 6 before any work, naming every missing tool and its Debian package', async () => {
    const p = place();
    const bin = path.join(dir, 'bin-without-mtools');
    mkdirSync(bin);
    // Everything c2v runs except mcopy and mkfs.vfat.
    for (const t of ['mke2fs', 'grub-mkimage', 'mmd']) {
      const found = String((await execa('sh', ['-c', `command -v ${t}`])).stdout).trim();
      symlinkSync(found, path.join(bin, t));
    }
    const r = await runC2vWithPid(['convert', SMALL, '--no-pull', '-o', p.ova], { env: { PATH: bin }, extendEnv: true });
    await expectCleanFailure(r, 6, /missing host tools: mkfs\.vfat \(Debian package dosfstools\), mcopy \(Debian package mtools\); install with apt-get install dosfstools mtools/, {
      output: p.ova,
      dirs: [p.dir],
    });
    expect(r.stderr).not.toMatch(/Finding image/); // checked before the engine is asked anything
  }, 60_000);

  it('a malformed SOURCE_DATE_EPOCH: exit 2 before any work', async () => {
    const p = place();
    const r = await runC2vWithPid(['convert', SMALL, '--no-pull', '-o', p.ova], { env: { SOURCE_DATE_EPOCH: 'yesterday' } });
    await expectCleanFailure(r, 2, /SOURCE_DATE_EPOCH must be a whole number of seconds/, { output: p.ova, dirs: [p.dir] });
  }, 60_000);

  it('an output folder that cannot be created: exit 2 (before the image is touched when the path is plainly wrong)', async () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, '');
    const r = await runC2vWithPid(['convert', SMALL, '--no-pull', '-o', path.join(file, 'out.ova')]);
    await expectCleanFailure(r, 2, /cannot create .*a-file: .*a-file is not a directory/, { output: path.join(file, 'out.ova'), dirs: [dir] });
    expect(r.stderr).not.toMatch(/Finding image/);
    // /proc looks writable to root but refuses the mkdir (node's own recursive mkdir would spin on it forever).
    const q = await runC2vWithPid(['convert', SMALL, '--no-pull', '-o', '/proc/c2v-cannot/out.ova']);
    await expectCleanFailure(q, 2, /cannot create a workspace in \/proc\/c2v-cannot \(ENOENT\)/, { output: '/proc/c2v-cannot/out.ova', dirs: [] });
  }, 60_000);
});
