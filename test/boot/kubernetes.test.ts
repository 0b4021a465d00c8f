import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_DIR, PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { loadManifest, PUBLISHED_IMAGES, runIndexedJob, runJobPod, type HarnessOptions, type PodRun } from '../helpers/k8s-harness.js';
import { startRegistry, type TestRegistry } from '../helpers/registry-server.js';
import { runC2v } from '../helpers/run-cli.js';

/**
 * The Kubernetes examples, run as written by a stand-in kubelet (test/helpers/k8s-harness.ts) on the Docker engine:
 * c2v's image from scripts/make-c2v-image, the kaniko executor from ../shared/tools/kaniko, images from a real
 * registry on 127.0.0.1. The Job's input is an image reference (the release-pipeline case: the app's CI already
 * pushed it, and no source has to reach the pod), so kaniko builds only c2v's packages stage. The Indexed Job
 * converts appliance-ready images straight from the registry: the example VM image under the list's three names.
 */
const KANIKO = path.resolve(PROJECT_ROOT, '../shared/tools/kaniko/make-image');
const hasKaniko = existsSync(KANIKO);
const JOB = path.join(PROJECT_ROOT, 'examples/kubernetes/job.yaml');
const INDEXED = path.join(PROJECT_ROOT, 'examples/kubernetes/indexed-job.yaml');
const GREETING = 'hello-from-c2v';
const MiB = 2 ** 20;

const mib = (n?: number) => (n === undefined ? '?' : `${(n / MiB).toFixed(0)} MiB`);
function describePod(pod: PodRun): string {
  const lines = pod.containers.map((c) => `  ${c.name}: exit ${c.exitCode}, ${c.seconds.toFixed(1)} s, peak anon ${mib(c.peakAnonBytes)}, cgroup peak ${mib(c.peakMemoryBytes)}, rootfs ${mib(c.rootfsBytes)}`);
  const dirs = [...Object.entries(pod.emptyDirs).map(([n, e]) => `  emptyDir ${n}: peak ${mib(e.peakBytes)}`), ...Object.entries(pod.givenVolumes).map(([n, e]) => `  volume ${n}: peak ${mib(e.peakBytes)}`)];
  return [`${pod.job}${pod.index === undefined ? '' : `[${pod.index}]`}: ${pod.seconds.toFixed(1)} s`, ...lines, ...dirs].join('\n');
}
function failure(pod: PodRun): string {
  const bad = pod.containers.find((c) => c.exitCode !== 0);
  return [...pod.violations, bad ? `${bad.name} exited ${bad.exitCode}: ${bad.errorLine}\n${bad.logs.split('\n').slice(-15).join('\n')}` : ''].join('\n');
}

describe.skipIf(!hasKaniko)(`Kubernetes Jobs run as written${hasKaniko ? '' : ' (skipped: ../shared/tools/kaniko is absent, and the Job builds with its kaniko executor)'}`, () => {
  let dir: string;
  let registry: TestRegistry;
  let images: Record<string, string>;

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-k8s-'));
    const c2v = String((await execa('bash', [path.join(PROJECT_ROOT, 'scripts/make-c2v-image')])).stdout).trim().split('\n').pop()!;
    const kaniko = String((await execa('bash', [KANIKO])).stdout).trim().split('\n').pop()!;
    images = { [PUBLISHED_IMAGES.c2v]: c2v, [PUBLISHED_IMAGES.kaniko]: kaniko };
    await execa('docker', ['build', '-q', '--build-arg', 'BASE=debian:bookworm', '-t', 'c2v-test/http-app:bookworm', path.join(PROJECT_ROOT, 'test/fixtures/http-app')]);
    await execa('docker', ['build', '-q', '-t', 'c2v-test/example-vm:1', EXAMPLE_DIR]);
    registry = await startRegistry({ auth: 'none' });
    await execa('skopeo', ['copy', '-q', '--dest-tls-verify=false', 'docker-daemon:c2v-test/http-app:bookworm', `docker://${registry.host}/team/http-app:1`]);
  }, 900_000);

  afterAll(async () => {
    await registry?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const outDir = (name: string) => {
    const d = path.join(dir, name);
    mkdirSync(d);
    return d;
  };

  it('job.yaml: prepare, kaniko and convert turn a plain app image into an OVA whose app answers after a BIOS boot', async () => {
    const out = outDir('job');
    const opts: HarnessOptions = { images, volumes: { out }, env: { APP_IMAGE: `${registry.host}/team/http-app:1`, APP_USER: 'app', APP_NAME: 'http-app' } };
    const pod = await runJobPod(JOB, opts);
    try {
      process.stderr.write(`${describePod(pod)}\n`);
      expect(pod.ok, failure(pod)).toBe(true);
      expect(pod.containers.map((c) => c.name)).toEqual(['prepare', 'build', 'convert']);
      // kaniko restored the app's USER after the packages stage, and the tarball is what c2v read.
      const tar = path.join(pod.emptyDirs.work.dir, 'appliance.tar');
      const manifest = JSON.parse(execFileSync('tar', ['-xOf', tar, 'manifest.json'], { encoding: 'utf8' }));
      const config = JSON.parse(execFileSync('tar', ['-xOf', tar, manifest[0].Config], { encoding: 'utf8', maxBuffer: 16 * MiB }));
      expect(config.config.User).toBe('app');
    } finally {
      pod.cleanup();
    }
    expect(readdirSync(out)).toEqual(['http-app.ova']);
    const ver = await runC2v(['verify', path.join(out, 'http-app.ova'), '--firmware', 'bios', '--http', `8080:${GREETING}`, '--timeout', '420', '--json'], { cwd: PROJECT_ROOT, timeoutMs: 600_000 });
    expect(ver.exitCode, ver.stderr).toBe(0);
    const verified = ver.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'verified');
    process.stderr.write(`job.yaml OVA: BIOS boot ${verified[0].bootSeconds.toFixed(1)} s, app answered ${JSON.stringify(verified[0].httpBody)}\n`);
    expect(verified[0].httpBody).toMatch(new RegExp(`^${GREETING} from /srv as uid 990 on \\S+\n$`));
  }, 1_200_000);

  it('job.yaml with an image the registry lacks: kaniko fails, the harness surfaces its exit code and error line, and convert never runs', async () => {
    const out = outDir('job-missing');
    const pod = await runJobPod(JOB, { images, volumes: { out }, env: { APP_IMAGE: `${registry.host}/team/missing:1`, APP_USER: '', APP_NAME: 'missing' } });
    pod.cleanup();
    process.stderr.write(`job.yaml, missing image: ${pod.containers.map((c) => `${c.name} exit ${c.exitCode}`).join(', ')}: ${pod.containers.at(-1)?.errorLine}\n`);
    expect(pod.ok).toBe(false);
    expect(pod.containers.map((c) => [c.name, c.exitCode])).toEqual([['prepare', 0], ['build', 1]]);
    expect(pod.containers[1].errorLine).toMatch(/error building image.*team\/missing/i);
    expect(readdirSync(out)).toEqual([]);
  }, 300_000);

  it('indexed-job.yaml: three appliances from the registry at once, each OVA named by its index, against one alone', async () => {
    const docs = loadManifest(INDEXED);
    const list: string[] = docs.find((d) => d.kind === 'ConfigMap')!.data.images.trim().split('\n');
    const job = docs.find((d) => d.kind === 'Job')!;
    const prefix = `${registry.host}/appliances`;
    await execa('skopeo', ['copy', '-q', '--dest-tls-verify=false', 'docker-daemon:c2v-test/example-vm:1', `docker://${prefix}/${list[0]}`]);
    for (const ref of list.slice(1)) await execa('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${prefix}/${list[0]}`, `docker://${prefix}/${ref}`]);
    const opts = (out: string): HarnessOptions => ({ images, volumes: { out }, env: { REGISTRY: prefix } });

    const alone = await runIndexedJob(docs, { ...opts(outDir('alone')), indexes: [0], parallelism: 1 });
    alone.pods.forEach((p) => p.cleanup());
    expect(alone.pods[0].ok, failure(alone.pods[0])).toBe(true);

    const out = outDir('release');
    const all = await runIndexedJob(docs, opts(out));
    all.pods.forEach((p) => p.cleanup());
    const one = alone.pods[0].containers[0];
    process.stderr.write(
      [
        `indexed-job.yaml: one alone ${alone.seconds.toFixed(1)} s (convert ${one.seconds.toFixed(1)} s, peak anon ${mib(one.peakAnonBytes)}); ${all.pods.length} at once ${all.seconds.toFixed(1)} s: ${(all.pods.length * alone.seconds / all.seconds).toFixed(2)}x the throughput of one at a time`,
        ...all.pods.map(describePod),
      ].join('\n') + '\n',
    );
    expect(all.pods.map((p) => p.index)).toEqual([...Array(job.spec.completions).keys()]);
    for (const pod of all.pods) expect(pod.ok, failure(pod)).toBe(true);
    const names = list.map((ref) => ref.split(':')[0]);
    expect(readdirSync(out).sort()).toEqual(names.map((n) => `${n}.ova`).sort());
    for (const name of names) {
      const members = execFileSync('tar', ['-tf', path.join(out, `${name}.ova`)], { encoding: 'utf8' }).trim().split('\n');
      expect(members[0]).toBe(`${name}.ovf`);
      expect(members).toContain(`${name}.mf`);
      expect(members.some((m) => m.endsWith('.vmdk'))).toBe(true);
      const ovf = execFileSync('tar', ['-xOf', path.join(out, `${name}.ova`), `${name}.ovf`], { encoding: 'utf8' });
      expect(ovf).toContain(`<Name>${name}</Name>`);
    }
  }, 900_000);
});
