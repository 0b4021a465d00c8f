import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_DIR, PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry-server.js';
import { runC2v, strayContainers } from '../helpers/run-cli.js';

/**
 * `c2v convert --builder kaniko` and `c2v prepare`, with the real kaniko executor from ../shared and a real
 * registry for its base images. The base is the example VM image (it has a kernel and an init), so kaniko's
 * build is quick and the packages stage must find nothing to add and say so; the app images' packages are
 * proven by the boots (test/boot).
 */
const KANIKO = path.resolve(PROJECT_ROOT, '../shared/tools/kaniko/make-image');
const hasKaniko = existsSync(KANIKO);

describe.skipIf(!hasKaniko)(`kaniko as the builder${hasKaniko ? '' : ' (skipped: ../shared/tools/kaniko is not beside the project)'}`, () => {
  let dir: string;
  let registry: TestRegistry;
  let executor: string;
  let base: string;

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-kaniko-'));
    await execa('docker', ['build', '-q', '-t', 'c2v-test/example-vm:1', EXAMPLE_DIR]);
    executor = String((await execa('bash', [KANIKO])).stdout).trim().split('\n').pop()!;
    registry = await startRegistry({ auth: 'none' });
    base = `${registry.host}/example-vm:1`;
    await execa('skopeo', ['copy', '-q', '--dest-tls-verify=false', 'docker-daemon:c2v-test/example-vm:1', `docker://${base}`]);
  }, 600_000);

  afterAll(async () => {
    await registry?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function context(name: string, dockerfile: string): string {
    const ctx = path.join(dir, name);
    mkdirSync(ctx);
    writeFileSync(path.join(ctx, 'Dockerfile'), dockerfile);
    return ctx;
  }

  it('builds a multi-stage Dockerfile with its packages stage in one kaniko run, and converts the tarball', async () => {
    const ctx = context('multi', `FROM ${base} AS tools\nRUN echo built-by-kaniko > /tmp/marker\nFROM ${base}\nCOPY --from=tools /tmp/marker /etc/c2v-marker\nCMD ["/sbin/init"]\n`);
    const out = path.join(dir, 'out', 'multi.vmdk');
    const r = await runC2v(['convert', ctx, '--builder', 'kaniko', '--kaniko-image', executor, '--format', 'vmdk', '-o', out, '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const logs = events.filter((e) => e.event === 'log').map((e) => String(e.line));
    // The image has kernel and systemd: the stage ran, found nothing missing, and said so.
    expect(logs.some((l) => /c2v-packages: .*nothing to add/.test(l))).toBe(true);
    // No second build: the stage was part of the first.
    expect(events.filter((e) => e.event === 'stage' && e.stage === 'appliance')).toEqual([]);
    expect(readdirSync(path.dirname(out))).toEqual(['multi.vmdk']);
    expect(readdirSync(dir).filter((f) => f.startsWith('.c2v'))).toEqual([]);
    expect(await strayContainers()).toEqual([]);
  }, 600_000);

  it('c2v prepare writes a context that kaniko builds as it is, and the result converts with no builder', async () => {
    const ctx = context('prep', `FROM ${base}\nRUN true\nUSER nobody\n`);
    const prepared = path.join(dir, 'prepared');
    const p = await runC2v(['prepare', ctx, '-o', prepared, '--json']);
    expect(p.exitCode, p.stderr).toBe(0);
    const info = JSON.parse(p.stdout.trim().split('\n').pop()!);
    expect(info).toMatchObject({ event: 'prepared', base: 'c2v-app', user: 'nobody', userFrom: 'the Dockerfile' });
    const dockerfile = readFileSync(path.join(prepared, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM .* AS c2v-app$/m);
    expect(dockerfile).toMatch(/^USER \$\{C2V_USER\}$/m);
    const k = await execa('docker', ['run', '--rm', '--network', 'host', '-v', `${prepared}:/workspace`, executor, '--context', 'dir:///workspace', '--dockerfile', 'Dockerfile', '--no-push', '--destination', 'c2v.invalid/prep:1', '--tar-path', '/workspace/out.tar', '--insecure-pull', '--insecure-registry', registry.host], { reject: false, all: true });
    expect(k.exitCode, String(k.all).split('\n').slice(-15).join('\n')).toBe(0);
    const plan = await runC2v(['convert', `docker-archive:${prepared}/out.tar`, '--plan', '--json'], { env: { DOCKER_HOST: `unix://${dir}/no-engine.sock` } });
    expect(plan.exitCode, plan.stderr).toBe(0);
    const { plan: conv } = JSON.parse(plan.stdout.trim().split('\n').pop()!);
    expect(conv.appliance).toBeUndefined();
    expect(conv.disk).toBeDefined();
  }, 600_000);

  it('a build that fails inside kaniko: exit 5 with its error, nothing left', async () => {
    const ctx = context('fails', `FROM ${base}\nRUN echo about to fail && exit 42\n`);
    const out = path.join(dir, 'fail-out', 'x.ova');
    const r = await runC2v(['convert', ctx, '--builder', 'kaniko', '--kaniko-image', executor, '-o', out]);
    expect(r.exitCode).toBe(5);
    const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('c2v:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^c2v: the kaniko build failed \(exit 42\): .*exit status 42$/);
    expect(existsSync(path.dirname(out))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('.c2v'))).toEqual([]);
    expect(await strayContainers()).toEqual([]);
  }, 300_000);

  it('a missing executor image: exit 5, naming the flag and the variable that choose another', async () => {
    const ctx = context('noexec', `FROM ${base}\n`);
    const r = await runC2v(['convert', ctx, '--builder', 'kaniko', '--kaniko-image', '127.0.0.1:1/no/such-kaniko:0', '-o', path.join(dir, 'none.ova')]);
    expect(r.exitCode).toBe(5);
    expect(r.stderr.trim().split('\n').pop()).toMatch(/^c2v: the kaniko executor image 127\.0\.0\.1:1\/no\/such-kaniko:0 is not in the engine and could not be pulled: .*--kaniko-image or C2V_KANIKO_IMAGE/);
  }, 120_000);
});
