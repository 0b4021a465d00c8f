import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { runC2v, strayContainers } from '../helpers/run-cli.js';

/**
 * Plain app images (no kernel, no init, nothing c2v-specific in their Dockerfile) become appliances whose app
 * answers over HTTP, proven with `c2v verify` booting them in QEMU.
 */
const FIXTURE = path.join(PROJECT_ROOT, 'test/fixtures/http-app');
const GREETING = 'hello-from-c2v';

function buildApp(base: string): string {
  const tag = `c2v-test/http-app:${base.split(':')[1]}`;
  execFileSync('docker', ['build', '-q', '--build-arg', `BASE=${base}`, '-t', tag, FIXTURE], { stdio: ['ignore', 'ignore', 'inherit'] });
  return tag;
}

describe('app images become appliances', () => {
  let dir: string;

  beforeAll(() => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-app-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function convertAndVerify(image: string, extra: string[], firmware: 'bios' | 'efi' | 'both') {
    const ova = path.join(dir, `${image.replace(/[^a-z0-9]+/gi, '-')}-${extra.join('-').replace(/[^a-z0-9]+/gi, '')}.ova`);
    const conv = await runC2v(['convert', image, '-o', ova, '--json', ...extra], { cwd: PROJECT_ROOT });
    expect(conv.exitCode, conv.stderr).toBe(0);
    const events = conv.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const result = events.find((e) => e.event === 'result');
    const stages = result.timings.map((t: { stage: string }) => t.stage);
    expect(stages).toContain('appliance');
    const ver = await runC2v(['verify', ova, '--firmware', firmware, '--http', `8080:${GREETING}`, '--timeout', '420', '--json'], { cwd: PROJECT_ROOT, timeoutMs: 1_000_000 });
    expect(ver.exitCode, ver.stderr).toBe(0);
    const verified = ver.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'verified');
    const appliance = result.timings.find((t: { stage: string }) => t.stage === 'appliance').seconds;
    process.stderr.write(`${image} ${extra.join(' ')}: appliance build ${appliance.toFixed(1)} s; ${verified.map((v) => `${v.firmware} boot ${v.bootSeconds.toFixed(1)} s`).join(', ')}\n`);
    return verified;
  }

  it('Debian bookworm app, systemd: the app answers with its ENV value under BIOS (pvscsi) and EFI, as its USER and WORKDIR', async () => {
    const image = buildApp('debian:bookworm');
    const verified = await convertAndVerify(image, [], 'both');
    expect(verified.map((v) => [v.firmware, v.bus, v.nic])).toEqual([
      ['bios', 'pvscsi', 'vmxnet3'],
      ['efi', 'ahci', 'vmxnet3'],
    ]);
    for (const v of verified) expect(v.httpBody).toBe(`${GREETING} from /srv as uid 990\n`);
  }, 1_800_000);

  it('Debian bookworm app with --init openrc: the app answers', async () => {
    const verified = await convertAndVerify('c2v-test/http-app:bookworm', ['--init', 'openrc'], 'bios');
    expect(verified[0].httpBody).toContain(GREETING);
  }, 1_500_000);

  it('Debian bullseye app (older e2fsck, systemd, GRUB guest tools) boots and answers', async () => {
    const image = buildApp('debian:bullseye');
    const verified = await convertAndVerify(image, [], 'bios');
    expect(verified[0].httpBody).toContain(GREETING);
  }, 1_500_000);

  it('Debian trixie app boots and answers', async () => {
    const image = buildApp('debian:trixie');
    const verified = await convertAndVerify(image, [], 'efi');
    expect(verified[0].httpBody).toContain(GREETING);
  }, 1_500_000);

  it('left no container behind', async () => {
    expect(await strayContainers()).toEqual([]);
  });
});
