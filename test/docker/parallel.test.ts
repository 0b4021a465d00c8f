import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_ID } from '../../src/adapters/cleanup.js';
import { checkOutput, sha256File } from '../helpers/check-output.js';
import { vmSkeleton } from '../helpers/crafted-tar.js';
import { requireDockerEngine } from '../helpers/env.js';
import { importImage, removeImages } from '../helpers/images.js';
import { containersOf, runC2vWithPid, stagingLeftovers } from '../helpers/leftovers.js';

/**
 * Conversions sharing one engine and one output folder: two at once must not see each other's temporary files
 * or containers, and a run sweeps only what dead runs left.
 */
const A = 'c2v-test/parallel-a:1';
const B = 'c2v-test/parallel-b:1';

describe('two conversions at once', () => {
  let dir: string;

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-par-'));
    await importImage(A, [...vmSkeleton({ name: 'A' }), { name: 'etc/c2v-which', data: 'A\n' }]);
    await importImage(B, [...vmSkeleton({ name: 'B' }), { name: 'etc/c2v-which', data: 'B\n' }, { name: 'data', type: 'dir' }, { name: 'data/random', size: 16 << 20 }]);
  }, 300_000);

  afterAll(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeImages(A, B);
  });

  it('of different images into one folder: both complete and each holds its own content', async () => {
    const out = path.join(dir, 'different');
    mkdirSync(out);
    const [ra, rb] = await Promise.all([
      runC2vWithPid(['convert', A, '--no-pull', '-o', path.join(out, 'a.ova')]),
      runC2vWithPid(['convert', B, '--no-pull', '-o', path.join(out, 'b.ova')]),
    ]);
    expect(ra.exitCode, ra.stderr).toBe(0);
    expect(rb.exitCode, rb.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['a.ova', 'b.ova']);
    for (const [name, which] of [['a.ova', 'A'], ['b.ova', 'B']]) {
      const o = await checkOutput(path.join(out, name));
      try {
        expect(o.debugfs('cat /etc/c2v-which').toString()).toBe(`${which}\n`);
      } finally {
        o.cleanup();
      }
    }
    expect([...(await containersOf(ra.pid)), ...(await containersOf(rb.pid))]).toEqual([]);
  }, 180_000);

  it('of the same image into two outputs: both complete and are byte-identical (no shared state)', async () => {
    const out = path.join(dir, 'same');
    mkdirSync(out);
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const [r1, r2] = await Promise.all([
      runC2vWithPid(['convert', B, '--no-pull', '--name', 'same', '-o', path.join(out, 'one', 'same.ova')], { env }),
      runC2vWithPid(['convert', B, '--no-pull', '--name', 'same', '-o', path.join(out, 'two', 'same.ova')], { env }),
    ]);
    expect(r1.exitCode, r1.stderr).toBe(0);
    expect(r2.exitCode, r2.stderr).toBe(0);
    (await checkOutput(path.join(out, 'one', 'same.ova'))).cleanup();
    expect(await sha256File(path.join(out, 'one', 'same.ova'))).toBe(await sha256File(path.join(out, 'two', 'same.ova')));
    expect(stagingLeftovers(path.join(out, 'one'), path.join(out, 'two'))).toEqual([]);
  }, 180_000);
});

describe('sweeping what killed runs left', () => {
  let dir: string;
  const image = 'c2v-test/sweep:1';
  const created: string[] = [];

  /** The pid of a process that has exited. */
  const deadPid = (): number => {
    const r = execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    return Number(r);
  };
  const labelled = async (labels: Record<string, string>): Promise<string> => {
    const args = ['create', ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]), image, '/never-run'];
    const id = String((await execa('docker', args)).stdout).trim();
    created.push(id);
    return id;
  };
  const exists = async (id: string) => (await execa('docker', ['inspect', id], { reject: false })).exitCode === 0;

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-sweep-'));
    await importImage(image, vmSkeleton({ name: 'sweep' }));
  }, 120_000);

  afterAll(async () => {
    if (created.length) await execa('docker', ['rm', '-f', ...created], { reject: false });
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeImages(image);
  });

  it('removes the containers and workspaces of dead runs on this host, and leaves live and foreign ones alone', async () => {
    const dead = deadPid();
    const deadHere = await labelled({ 'c2v.session': `${dead}-deadbeef`, 'c2v.host': HOST_ID });
    const deadLegacy = await labelled({ 'c2v.session': `${dead}-0bsolete` });
    const live = await labelled({ 'c2v.session': `${process.pid}-alive000`, 'c2v.host': HOST_ID });
    const foreign = await labelled({ 'c2v.session': `${dead}-elsewhere`, 'c2v.host': 'another-host/00000000/4026531836' });

    const workspace = (name: string, owner: string) => {
      mkdirSync(path.join(dir, name));
      writeFileSync(path.join(dir, name, 'disk.raw'), 'left behind');
      writeFileSync(path.join(dir, name, 'c2v-owner'), owner);
    };
    workspace('.c2v-work-dead00', `${dead} ${HOST_ID}\n`);
    workspace('.c2v-work-live00', `${process.pid} ${HOST_ID}\n`);
    workspace('.c2v-work-other0', `${dead} another-host/00000000/4026531836\n`);

    const r = await runC2vWithPid(['convert', image, '--no-pull', '-o', path.join(dir, 'sweep.ova')]);
    expect(r.exitCode, r.stderr).toBe(0);

    expect(await exists(deadHere)).toBe(false);
    expect(await exists(deadLegacy)).toBe(false);
    expect(await exists(live)).toBe(true);
    expect(await exists(foreign)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['.c2v-work-live00', '.c2v-work-other0', 'sweep.ova']);
  }, 120_000);
});
