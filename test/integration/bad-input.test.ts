import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { runC2v, strayContainers } from '../helpers/run-cli.js';

/**
 * Each bad input gets one line naming the problem and the fix, a non-zero exit, no output file, no stray
 * container and no staging folder.
 */
describe('bad input', () => {
  let dir: string;

  beforeAll(() => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-bad-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function expectFailure(args: string[], exitCode: number, message: RegExp, outName = 'out.ova') {
    const outDir = path.join(dir, `case-${Math.random().toString(36).slice(2)}`);
    mkdirSync(outDir);
    const r = await runC2v([...args, '-o', path.join(outDir, outName)], { cwd: PROJECT_ROOT });
    expect(r.exitCode, r.stderr).toBe(exitCode);
    const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('c2v:'));
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --debug
    expect(readdirSync(outDir)).toEqual([]);
    expect(await strayContainers()).toEqual([]);
    return r;
  }

  it('an image that does not exist', async () => {
    await expectFailure(['convert', 'c2v-test/does-not-exist:1.0'], 3, /c2v-test\/does-not-exist:1.0 is not present locally and could not be pulled/);
  }, 120_000);

  it('a Dockerfile whose build fails, with the builder error text', async () => {
    const ctx = path.join(dir, 'failing');
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM debian:bookworm\nRUN echo c2v-build-marker && exit 42\n');
    await expectFailure(['convert', path.join(ctx, 'Dockerfile')], 5, /Dockerfile build failed: .*returned a non-zero code: 42/);
  }, 300_000);

  it('an image without a kernel, saying how to add one', async () => {
    await expectFailure(['convert', 'debian:bookworm', '--no-pull'], 3, /has no kernel in \/boot: add one .*linux-image-amd64/);
  }, 300_000);

  it('a --disk-size too small for the content', async () => {
    await expectFailure(['convert', 'debian:bookworm', '--disk-size', '64M'], 3, /--disk-size 64\.0 MiB is too small for this image .*use at least/);
  }, 120_000);

  it('unknown flag values, all reported at once', async () => {
    const r = await expectFailure(['convert', 'debian:bookworm', '--boot', 'floppy', '--format', 'zip', '--cpus', '0'], 2, /--format must be one of: ova, ovf, vmdk, raw/);
    expect(r.stderr).toMatch(/--boot must be one of: hybrid, bios, efi/);
    expect(r.stderr).toMatch(/--cpus must be at least 1/);
  }, 60_000);

  it('an unknown flag', async () => {
    await expectFailure(['convert', 'debian:bookworm', '--frobnicate'], 2, /Unknown argument: frobnicate/);
  }, 60_000);

  it('a path that does not exist', async () => {
    await expectFailure(['convert', './no/such/Dockerfile'], 3, /does not exist/);
  }, 60_000);
});
