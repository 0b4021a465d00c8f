import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootUntil } from '../../src/adapters/qemu.js';
import { EXAMPLE_DIR, PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry-server.js';
import { runC2v } from '../helpers/run-cli.js';

/**
 * One boot for the daemonless path: the example VM image, pushed to a real registry, built upon by kaniko (its
 * base pulled from that registry), and the kaniko tarball converted with DOCKER_HOST pointing at no engine, to a
 * qcow2 that boots as KVM and Proxmox run it (SeaBIOS, virtio).
 * Without ../shared (where the kaniko executor lives) the archive is `docker save` of the same derived image.
 */
const KANIKO = path.resolve(PROJECT_ROOT, '../shared/tools/kaniko/make-image');
const hasKaniko = existsSync(KANIKO);
const BASE = 'c2v-test/example-vm:1';
const MARKER_FILE = '/etc/c2v-built-by';

describe(`a daemonless conversion boots (${hasKaniko ? 'a kaniko tarball' : 'docker save: kaniko is skipped, ../shared/tools/kaniko is not beside the project'})`, () => {
  let dir: string;
  let registry: TestRegistry | undefined;
  let archive: string;
  let disk: string;
  let stderr = '';

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-daemonless-boot-'));
    await execa('docker', ['build', '-q', '-t', BASE, EXAMPLE_DIR]);
    const ctx = path.join(dir, 'ctx');
    mkdirSync(ctx);
    if (hasKaniko) {
      registry = await startRegistry({ auth: 'none' });
      await execa('skopeo', ['copy', '-q', '--dest-tls-verify=false', `docker-daemon:${BASE}`, `docker://${registry.host}/example-vm:1`]);
      writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${registry.host}/example-vm:1\nRUN echo kaniko > ${MARKER_FILE}\n`);
      const executor = String((await execa('bash', [KANIKO])).stdout).trim().split('\n').pop()!;
      await execa('docker', ['run', '--rm', '--network', 'host', '-v', `${ctx}:/workspace`, executor, '--context', 'dir:///workspace', '--dockerfile', 'Dockerfile', '--no-push', '--destination', 'example.invalid/app:1', '--tar-path', '/workspace/app.tar', '--insecure-pull', '--insecure-registry', registry.host]);
    } else {
      writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${BASE}\nRUN echo docker > ${MARKER_FILE}\n`);
      await execa('docker', ['build', '-q', '-t', 'c2v-test/example-derived:1', ctx]);
      await execa('docker', ['save', '-o', path.join(ctx, 'app.tar'), 'c2v-test/example-derived:1']);
    }
    archive = path.join(ctx, 'app.tar');
    disk = path.join(dir, 'out', 'app.qcow2');
    const r = await runC2v(['convert', `docker-archive:${archive}`, '--format', 'qcow2', '-o', disk, '--name', 'daemonless'], { env: { DOCKER_HOST: `unix://${dir}/no-engine.sock` } });
    stderr = r.stderr;
    if (r.exitCode !== 0) throw new Error(`c2v convert failed (${r.exitCode}): ${r.stderr}`);
  }, 1_200_000);

  afterAll(async () => {
    await registry?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('converted without any engine: nothing in its output speaks of one, and only the disk is left', () => {
    expect(stderr).not.toMatch(/docker engine|DOCKER_HOST/i);
    expect(readdirSync(path.dirname(disk))).toEqual(['app.qcow2']);
  });

  it('holds what the last build step wrote', () => {
    const raw = path.join(dir, 'disk.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', disk, raw]);
    const parts = JSON.parse(execFileSync('sfdisk', ['--json', raw], { encoding: 'utf8' })).partitiontable.partitions as { start: number; size: number }[];
    const root = path.join(dir, 'root.img');
    execFileSync('dd', [`if=${raw}`, `of=${root}`, 'bs=1M', 'iflag=skip_bytes,count_bytes', `skip=${parts[2].start * 512}`, `count=${parts[2].size * 512}`, 'conv=sparse', 'status=none']);
    execFileSync('e2fsck', ['-fn', root]);
    const content = execFileSync('debugfs', ['-R', `cat ${MARKER_FILE}`, root], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(content.trim()).toBe(hasKaniko ? 'kaniko' : 'docker');
  });

  // Written as a qcow2, it boots as KVM and Proxmox would run it: SeaBIOS, virtio disk and NIC.
  it('boots its qcow2 with SeaBIOS from a virtio disk to multi-user with no failed unit', async () => {
    const boot = await bootUntil({ disk, format: 'qcow2', firmware: 'bios', bus: 'virtio', nic: 'virtio', marker: /C2V-EXAMPLE-READY/, timeoutMs: 600_000 });
    await boot.stop();
    process.stderr.write(`daemonless qcow2 BIOS boot (virtio): ${boot.seconds.toFixed(1)} s: ${boot.line}\n`);
    expect(boot.line).toMatch(/failed=0\b/);
  }, 660_000);
});
