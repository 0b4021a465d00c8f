import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { C2V_BIN, requireDockerEngine } from '../helpers/env.js';
import { strayContainers } from '../helpers/run-cli.js';

const IMAGE = 'c2v-test/slow-export:latest';

describe('interruption', () => {
  let dir: string;

  beforeAll(() => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-int-'));
    const ctx = path.join(dir, 'ctx');
    mkdirSync(ctx);
    // Incompressible data makes the root filesystem stage last long enough to be interrupted in.
    writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM debian:bookworm\nRUN head -c 1500M /dev/urandom > /payload\n');
    execFileSync('docker', ['build', '-q', '-t', IMAGE, ctx], { stdio: 'ignore' });
  }, 300_000);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    execFileSync('docker', ['rmi', '-f', IMAGE], { stdio: 'ignore' });
  });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`${signal} during the root filesystem stage exits ${code} and leaves nothing behind`, async () => {
      const out = path.join(dir, `out-${signal}`);
      mkdirSync(out);
      const child = execa('node', [C2V_BIN, 'convert', IMAGE, '-o', path.join(out, 'x.ova')], { reject: false, stdin: 'ignore' });
      let stderr = '';
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`the rootfs stage never started: ${stderr}`)), 60_000);
        child.stderr!.on('data', (c: Buffer) => {
          stderr += c.toString();
          if (stderr.includes('Writing the ext4 root filesystem')) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      await new Promise((r) => setTimeout(r, 1500));
      child.kill(signal);
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(code);
      expect(String(r.stderr)).toMatch(/interrupted/);
      expect(readdirSync(out)).toEqual([]);
      expect(await strayContainers()).toEqual([]);
    }, 120_000);
  }
});
