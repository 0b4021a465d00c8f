import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { runC2v, strayContainers } from '../helpers/run-cli.js';
import { FIRMWARE_REFUSAL, SHIM_REFUSAL, unsignedBootRefusals } from '../helpers/secure-boot.js';

/**
 * Plain app images (no kernel, no init) become appliances whose app answers over HTTP, proven with `c2v verify`
 * booting them in QEMU with an OVF environment and a grown disk, on each Debian suite and both inits. Bookworm
 * with systemd, under BIOS and EFI, is test/boot/deploy-time.test.ts.
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

  /**
   * Converts with --property GREETING, then `c2v verify` boots it with another GREETING on an OVF environment ISO
   * and the disk grown by 1 GiB: the app must answer with that value, and the root must have grown.
   */
  async function convertAndVerify(image: string, extra: string[], firmware: 'bios' | 'efi' | 'both', verifyExtra: string[] = []) {
    const ova = path.join(dir, `${image.replace(/[^a-z0-9]+/gi, '-')}-${extra.join('-').replace(/[^a-z0-9]+/gi, '')}.ova`);
    const conv = await runC2v(['convert', image, '-o', ova, '--json', ...extra], { cwd: PROJECT_ROOT });
    expect(conv.exitCode, conv.stderr).toBe(0);
    const events = conv.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const result = events.find((e) => e.event === 'result');
    const stages = result.timings.map((t: { stage: string }) => t.stage);
    expect(stages).toContain('appliance');
    const ver = await runC2v(['verify', ova, '--firmware', firmware, '--timeout', '420', '--json', '--verbose', ...verifyExtra], { cwd: PROJECT_ROOT, timeoutMs: 1_000_000 });
    expect(ver.exitCode, ver.stderr.slice(-4000)).toBe(0);
    const verified = ver.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'verified');
    const appliance = result.timings.find((t: { stage: string }) => t.stage === 'appliance').seconds;
    process.stderr.write(`${image} ${extra.join(' ')}: appliance build ${appliance.toFixed(1)} s; ${verified.map((v) => `${v.firmware} boot ${v.bootSeconds.toFixed(1)} s`).join(', ')}\n`);
    return { verified, serial: ver.stderr, ova };
  }

  /** The agent's work, seen from outside: the app's value from the environment, and the root grown. */
  async function deployed(image: string, extra: string[], firmware: 'bios' | 'efi', greeting: string) {
    const { verified, serial, ova } = await convertAndVerify(image, ['--property', 'GREETING', ...extra], firmware, ['--property', `app.GREETING=${greeting}`, '--grow-disk', '1G', '--http', `8080:${greeting}`]);
    expect(verified[0].ovfEnvironment.properties).toBeGreaterThan(3);
    expect(verified[0].httpBody).toMatch(new RegExp(`^${greeting} from /srv as uid 990 on `));
    expect(serial).toMatch(/c2v-grow-root: grew \/dev\/\w+/);
    return { verified, ova };
  }

  it('Debian bookworm app with --init openrc: the agent applies the environment and grows the root', async () => {
    await deployed(buildApp('debian:bookworm'), ['--init', 'openrc'], 'bios', 'hello-openrc');
  }, 1_500_000);

  it('Debian bullseye app (older e2fsck, systemd, GRUB guest tools): the agent applies the environment and grows the root', async () => {
    await deployed(buildApp('debian:bullseye'), [], 'bios', 'hello-bullseye');
  }, 1_500_000);

  /**
   * One EFI boot proves Secure Boot as well: OVMF enforcing it with Microsoft's keys (verify picks that firmware
   * because the OVF turns Secure Boot on), the image's signed shim, GRUB and kernel, and the kernel's own report.
   */
  let secureOva: string | undefined;
  it('Debian trixie app with --secure-boot: boots through the signed shim with Secure Boot enforced; the agent applies the environment and grows the root', async () => {
    const { verified, ova } = await deployed(buildApp('debian:trixie'), ['--secure-boot', '--boot', 'efi'], 'efi', 'hello-trixie');
    expect(verified[0].secureBoot).toBe(true);
    secureOva = ova;
  }, 1_500_000);

  it('the same firmware refuses an unsigned GRUB: in place of shim, and in place of the signed GRUB shim loads', async () => {
    if (!secureOva) throw new Error('the --secure-boot conversion failed, so there is no disk to tamper with');
    const refusals = await unsignedBootRefusals(secureOva, dir);
    // OVMF refuses to start an unsigned EFI/BOOT/BOOTX64.EFI; shim refuses an unsigned grubx64.efi.
    expect(refusals.firmware).toMatch(FIRMWARE_REFUSAL);
    expect(refusals.shim).toMatch(SHIM_REFUSAL);
    expect(refusals.kernelStarted).toBe(false);
  }, 600_000);

  it('--cloud-init: cloud-init instead of the agent, configured from its OVF properties on the CD-ROM', async () => {
    const { verified, serial } = await convertAndVerify(buildApp('debian:bookworm'), ['--cloud-init'], 'bios', [
      '--property',
      'hostname=cloudy',
      '--property',
      'instance-id=cloudy-1',
      '--http',
      '8080:on cloudy',
    ]);
    // The host name came from cloud-init's OVF datasource: the app reports it.
    expect(verified[0].httpBody).toBe(`${GREETING} from /srv as uid 990 on cloudy\n`);
    expect(serial).not.toMatch(/c2v-guest:/);
  }, 1_500_000);

  it('left no container behind', async () => {
    expect(await strayContainers()).toEqual([]);
  });
});
