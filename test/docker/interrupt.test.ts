import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmSkeleton } from '../helpers/crafted-tar.js';
import { C2V_BIN, requireDockerEngine } from '../helpers/env.js';
import { importImage, removeImages } from '../helpers/images.js';
import { waitFor } from '../helpers/leftovers.js';
import { strayContainers } from '../helpers/run-cli.js';

const IMAGE = 'c2v-test/slow-export:latest';

describe('interruption', () => {
  let dir: string;

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-int-'));
    // A VM image already (kernel and init present), so no appliance build runs before the root filesystem stage:
    // how long such a build takes must not decide whether the signal lands in time. Incompressible data makes the
    // root filesystem stage last long enough to be interrupted in.
    await importImage(IMAGE, [...vmSkeleton({ name: 'slow-export' }), { name: 'payload', size: 1500 * 1024 * 1024 }]);
  }, 300_000);

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await removeImages(IMAGE);
  });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} during the root filesystem stage exits ${code} and leaves nothing behind`, async () => {
      const out = path.join(dir, `out-${signal}`);
      mkdirSync(out);
      const child = execa('node', [C2V_BIN, 'convert', IMAGE, '--json', '-o', path.join(out, 'x.ova')], { reject: false, stdin: 'ignore' });
      // Progress means the tar is streaming into mke2fs: the signal lands inside the stage, not before it.
      await waitFor(child, /"event":"progress","stage":"rootfs"/, 'rootfs progress', 'stdout', 60_000);
      child.kill(signal);
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(code);
      expect(String(r.stderr)).toMatch(/interrupted/);
      expect(String(r.stdout)).not.toMatch(/"stage":"rootfs","status":"done"/);
      expect(readdirSync(out)).toEqual([]);
      expect(await strayContainers()).toEqual([]);
    }, 120_000);
  }
});
