import { execFileSync } from 'node:child_process';
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

  /** Small images built without apt: one of no known distribution, one that looks like a VM already. */
  function buildImage(tag: string, dockerfile: string) {
    const ctx = path.join(dir, tag.replace(/[^a-z0-9]+/g, '-'));
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'Dockerfile'), dockerfile);
    execFileSync('docker', ['build', '-q', '-t', tag, ctx], { stdio: 'ignore' });
  }

  beforeAll(() => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-bad-'));
    buildImage('c2v-test/no-distro:1', 'FROM debian:bookworm\nRUN rm -f /etc/os-release /usr/lib/os-release\n');
    buildImage(
      'c2v-test/fake-vm:1',
      'FROM debian:bookworm\nRUN touch /boot/vmlinuz-6.1.0-0-amd64 && mkdir -p /usr/lib/systemd && cp /bin/true /usr/lib/systemd/systemd && ln -sf /usr/lib/systemd/systemd /usr/sbin/init\nCMD ["/sbin/init"]\n',
    );
    // A kernel whose modules have overlay and loop, but no squashfs, neither as a module nor built in.
    buildImage(
      'c2v-test/no-squashfs:1',
      'FROM c2v-test/fake-vm:1\nRUN mkdir -p /usr/lib/modules/6.1.0-0-amd64 && printf "kernel/drivers/block/loop.ko:\\nkernel/fs/overlayfs/overlay.ko:\\n" > /usr/lib/modules/6.1.0-0-amd64/modules.dep && echo kernel/fs/ext4/ext4.ko > /usr/lib/modules/6.1.0-0-amd64/modules.builtin\n',
    );
  }, 300_000);
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    execFileSync('docker', ['rmi', '-f', 'c2v-test/no-distro:1', 'c2v-test/fake-vm:1', 'c2v-test/no-squashfs:1'], { stdio: 'ignore' });
  });

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

  it('an image without a kernel of a distribution c2v has no packages step for, saying what to do', async () => {
    await expectFailure(['convert', 'c2v-test/no-distro:1', '--no-pull'], 3, /no packages step for an unknown distribution .*add a kernel and an init to the image yourself/);
  }, 300_000);

  it('a --disk-size too small for the content', async () => {
    await expectFailure(['convert', 'c2v-test/fake-vm:1', '--disk-size', '64M'], 3, /--disk-size 64\.0 MiB is too small for this image .*use at least/);
  }, 120_000);

  it('--format netboot for a kernel without squashfs, said before the packages step would add busybox', async () => {
    const r = await expectFailure(
      ['convert', 'c2v-test/no-squashfs:1', '--no-pull', '--format', 'netboot'],
      3,
      /--format netboot mounts the root as squashfs under overlay, and the image's kernel 6\.1\.0-0-amd64 has no squashfs support \(neither built in nor a module in \/lib\/modules\/6\.1\.0-0-amd64\): install a kernel that has it/,
      'out-netboot',
    );
    expect(r.stderr).not.toMatch(/packages step|busybox/);
  }, 120_000);

  it('an --ssh-key that is not a public key', async () => {
    const key = path.join(dir, 'id_ed25519');
    writeFileSync(key, '-----BEGIN OPENSSH PRIVATE KEY-----\nxxx\n-----END OPENSSH PRIVATE KEY-----\n');
    await expectFailure(['convert', 'c2v-test/fake-vm:1', '--ssh-key', key], 3, /is not an OpenSSH public key .*pass the \.pub file/);
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
