import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmSkeleton } from '../helpers/crafted-tar.js';
import { requireDockerEngine } from '../helpers/env.js';
import { importImage, removeImages } from '../helpers/images.js';
import { containersOf, stagingLeftovers, startC2v, waitFor } from '../helpers/leftovers.js';

/**
 * SIGINT and SIGTERM in the stages interrupt.test.ts does not cover (it covers the root filesystem): during the
 * build, and while the VMDK streams into the OVA. Exit 130/143, no output, no workspace, no container, and the
 * engine's build container gone too. A SIGKILL, which c2v cannot catch, leaves a workspace and a container
 * that the next run removes.
 */
const RANDOM = 'c2v-test/interrupt-random:1';
const SMALL = 'c2v-test/interrupt-small:1';

async function poll(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return check();
}

const containersRunning = async (marker: string) => String((await execa('docker', ['ps', '-a', '--no-trunc', '--format', '{{.Command}}'])).stdout).includes(marker);

describe('interrupting other stages', () => {
  let dir: string;
  let n = 0;
  const place = () => {
    const d = path.join(dir, `case-${++n}`);
    mkdirSync(d);
    return { dir: d, ova: path.join(d, 'out.ova') };
  };

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-intr-'));
    // Incompressible data: ~1.3 s of VMDK stage on two cores with native libdeflate (0.9 CPU-s per 96 MiB), so
    // the signal sent on the first progress report (0.25 s in) arrives with most of the stage still to go.
    await importImage(RANDOM, [...vmSkeleton({ name: 'random' }), { name: 'data', type: 'dir' }, { name: 'data/random', size: 256 * 1024 * 1024 }]);
    await importImage(SMALL, vmSkeleton({ name: 'small' }));
  }, 300_000);

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeImages(RANDOM, SMALL);
  });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} during the build (acquire) exits ${code}; the engine cancels the build and removes its container`, async () => {
      const p = place();
      const ctx = path.join(p.dir, 'ctx');
      mkdirSync(ctx);
      const marker = `c2v-interrupted-build-${process.pid}-${signal}`;
      writeFileSync(path.join(ctx, 'Dockerfile'), `FROM debian:bookworm\nRUN sleep 300 # ${marker}\n`);
      const child = startC2v(['convert', path.join(ctx, 'Dockerfile'), '--name', marker, '-o', p.ova]);
      await waitFor(child, /Building /, 'the build');
      expect(await poll(() => containersRunning(marker), 60_000), 'the RUN step never started').toBe(true);
      child.kill(signal);
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(code);
      expect(String(r.stderr)).toMatch(new RegExp(`c2v: interrupted \\(${signal}\\)`));
      expect(readdirSync(p.dir)).toEqual(['ctx']);
      expect(await containersOf(child.pid!)).toEqual([]);
      // The engine cancels a build whose client went away and removes its intermediate container (forcerm).
      expect(await poll(async () => !(await containersRunning(marker)), 30_000), 'the build container is still there').toBe(true);
      expect(String((await execa('docker', ['images', '-q', `c2v-build/${marker}`])).stdout)).toBe('');
    }, 180_000);

    it(`${signal} while the VMDK streams into the OVA exits ${code} and leaves no OVA, workspace or container`, async () => {
      const p = place();
      const child = startC2v(['convert', RANDOM, '--no-pull', '--json', '-o', p.ova]);
      // A progress report means grains are in the OVA already and more are to come: the signal lands mid-stream
      // however fast this machine deflates.
      await waitFor(child, /"event":"progress","stage":"vmdk"/, 'VMDK progress', 'stdout');
      child.kill(signal);
      const r = await child;
      expect(String(r.stdout)).not.toMatch(/"stage":"vmdk","status":"done"/); // really interrupted in that stage
      expect(r.exitCode, String(r.stderr)).toBe(code);
      expect(readdirSync(p.dir)).toEqual([]);
      expect(await containersOf(child.pid!)).toEqual([]);
    }, 120_000);
  }

  it('SIGKILL (which cannot be caught) leaves a workspace and a container; the next run into the same folder removes both', async () => {
    const p = place();
    const child = startC2v(['convert', RANDOM, '--no-pull', '-o', p.ova]);
    await waitFor(child, /Writing the ext4 root filesystem/, 'the rootfs stage');
    child.kill('SIGKILL');
    await child;
    expect(stagingLeftovers(p.dir)).toHaveLength(1);
    expect(await containersOf(child.pid!)).toHaveLength(1);
    const next = startC2v(['convert', SMALL, '--no-pull', '-o', path.join(p.dir, 'small.ova')]);
    const r = await next;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(readdirSync(p.dir)).toEqual(['small.ova']);
    expect(await containersOf(child.pid!)).toEqual([]);
  }, 120_000);
});
