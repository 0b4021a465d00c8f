import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendsFor } from '../../src/adapters/backends.js';
import { DockerEngine } from '../../src/adapters/docker.js';
import type { ImageInfo } from '../../src/adapters/engine.js';
import { acquireImage } from '../../src/stages/acquire.js';
import { classifyInput } from '../../src/stages/input.js';
import { probeImage, readOsRelease } from '../../src/stages/probe.js';
import { PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { startRegistry, type TestRegistry } from '../helpers/registry-server.js';
import { rootTree, treeDiff, type TreeEntry } from '../helpers/root-tree.js';
import { runC2v } from '../helpers/run-cli.js';

const TAG = 'c2v-test/layered:1';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-daemonless-'));
let engineInfo: ImageInfo;
let exported: Map<string, TreeEntry>;
let engineProbe: Awaited<ReturnType<typeof probeImage>>;
let registry: TestRegistry;

const ctx = { platform: { os: 'linux', architecture: 'amd64' }, insecureRegistries: [], workParent: tmp };

beforeAll(async () => {
  requireDockerEngine();
  await execa('docker', ['build', '-q', '-t', TAG, path.join(PROJECT_ROOT, 'test/fixtures/layered-image')]);
  const engine = new DockerEngine();
  engineInfo = (await engine.inspect(TAG))!;
  const rootfs = await engine.openRootfs(engineInfo.id);
  try {
    engineProbe = await probeImage(rootfs, await readOsRelease(rootfs));
    exported = await rootTree(await rootfs.export());
  } finally {
    await rootfs.release();
  }
  await execa('docker', ['save', '-o', path.join(tmp, 'docker.tar'), TAG]);
  const skopeo = (args: string[]) => execa('skopeo', ['copy', '-q', ...args]);
  await skopeo([`docker-daemon:${TAG}`, `oci:${tmp}/layout:1`]);
  await skopeo([`docker-daemon:${TAG}`, `oci-archive:${tmp}/app.oci.tar:1`]);
  await skopeo([`docker-daemon:${TAG}`, `docker-archive:${tmp}/skopeo.tar:${TAG}`]);
  await skopeo(['--dest-compress-format', 'zstd', '--dest-compress', `docker-daemon:${TAG}`, `oci:${tmp}/zstd:1`]);
  registry = await startRegistry({ auth: 'htpasswd' });
  await skopeo(['--dest-tls-verify=false', '--dest-creds', `${registry.user}:${registry.password}`, `docker-daemon:${TAG}`, `docker://${registry.host}/team/layered:1`]);
}, 600_000);

afterAll(async () => {
  await registry?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('images read without an engine flatten to the tree docker export shows', () => {
  const forms = [
    ['docker save', () => `docker-archive:${tmp}/docker.tar`],
    ['docker save, picked by tag', () => `docker-archive:${tmp}/docker.tar:${TAG}`],
    ['skopeo docker-archive', () => `docker-archive:${tmp}/skopeo.tar`],
    ['OCI layout (gzip layers)', () => `oci:${tmp}/layout:1`],
    ['OCI archive', () => `oci-archive:${tmp}/app.oci.tar`],
    ['OCI layout (zstd layers)', () => `oci:${tmp}/zstd`],
    ['a registry with htpasswd, credentials from REGISTRY_AUTH_FILE', () => `docker://${registry.host}/team/layered:1`],
  ] as const;

  it('the test image has what it is meant to exercise', () => {
    expect(exported.get('data/link1')?.inode).toBe('data/link1 data/link2');
    expect(exported.has('data/orig')).toBe(false);
    expect(exported.get('data/replacedlink')?.size).toBe(4);
    expect(exported.get('data/typechange')?.type).toBe('file');
    expect([...exported.keys()].filter((k) => k.startsWith('data/opaque/'))).toEqual(['data/opaque/new']);
    expect(exported.get('data/capped')?.xattrs).toMatch(/^security\.capability=/);
    expect([...exported.keys()].some((k) => Buffer.from(k).includes(Buffer.from([0xef, 0xbf, 0xbd])))).toBe(true);
    expect(exported.get('srv/owned')).toMatchObject({ owner: '1234:5678', mode: '2710' });
    const zstdLayers = readdirSync(path.join(tmp, 'zstd/blobs/sha256')).map((f) => readFileSync(path.join(tmp, 'zstd/blobs/sha256', f)).subarray(0, 4).toString('hex'));
    expect(zstdLayers).toContain('28b52ffd');
  });

  it.each(forms)('%s', async (_what, spelling) => {
    const authFile = path.join(tmp, 'auth.json');
    writeFileSync(authFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${registry.user}:${registry.password}`).toString('base64') } } }));
    process.env.REGISTRY_AUTH_FILE = authFile;
    const input = await classifyInput(spelling(), { pull: true });
    const backends = await backendsFor(input, ctx);
    expect(backends.builder).toBeUndefined();
    try {
      const info = await acquireImage(backends, input, { name: 'layered' });
      // skopeo writes the config anew for an OCI manifest; docker-archive keeps the engine's bytes, so its id.
      if (spelling().startsWith('docker-archive:')) expect(info.id).toBe(engineInfo.id);
      expect(info.config).toEqual(engineInfo.config);
      expect(info.created).toBe(engineInfo.created);
      const rootfs = await backends.source.openRootfs(info.id);
      expect(await probeImage(rootfs, await readOsRelease(rootfs))).toEqual(engineProbe);
      expect(engineProbe.osRelease.ID).toBe('debian');
      const tree = await rootTree((await rootfs.export()) as Readable);
      expect(treeDiff(exported, tree)).toEqual([]);
    } finally {
      await backends.close?.();
      delete process.env.REGISTRY_AUTH_FILE;
    }
    expect(readdirSync(tmp).filter((f) => f.startsWith('.c2v-blobs-'))).toEqual([]);
  });
});

describe('the daemonless path', () => {
  it('never asks the engine: a plan from a docker save archive with DOCKER_HOST pointing nowhere', async () => {
    const r = await runC2v(['convert', `docker-archive:${tmp}/docker.tar`, '--plan', '--json'], { env: { DOCKER_HOST: `unix://${tmp}/no-engine.sock` } });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const plan = JSON.parse(r.stdout.trim().split('\n').pop()!).plan;
    expect(plan.image).toMatchObject({ id: engineInfo.id, ref: `docker-archive:${tmp}/docker.tar` });
    expect(plan.appliance).toBeDefined();
  });

  it('takes a bare reference from its registry when no engine answers', async () => {
    const auth = path.join(tmp, 'bare-auth.json');
    writeFileSync(auth, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${registry.user}:${registry.password}`).toString('base64') } } }));
    const r = await runC2v(['convert', `${registry.host}/team/layered:1`, '--plan', '--json'], { env: { DOCKER_HOST: `unix://${tmp}/no-engine.sock`, REGISTRY_AUTH_FILE: auth } });
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout.trim().split('\n').pop()!).plan;
    expect(plan.image.ref).toBe(`${registry.host}/team/layered:1`);
    expect(plan.image.id).toBe(engineInfo.id);
    expect(readdirSync(tmp).filter((f) => f.startsWith('.c2v-blobs-'))).toEqual([]);
  });

  it('a registry that refuses the credentials: one line, exit 3, no blob cache left', async () => {
    const auth = path.join(tmp, 'wrong-auth.json');
    writeFileSync(auth, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${registry.user}:wrong`).toString('base64') } } }));
    const r = await runC2v(['convert', `docker://${registry.host}/team/layered:1`, '-o', path.join(tmp, 'refused.ova'), '--workdir', tmp], { env: { DOCKER_HOST: `unix://${tmp}/no-engine.sock`, REGISTRY_AUTH_FILE: auth } });
    const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('c2v:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`registry ${registry.host.replace(/\./g, '\\.')} refused access to team/layered`));
    expect(r.exitCode).toBe(3);
    expect(readdirSync(tmp).filter((f) => f.startsWith('.c2v-blobs-') || f.startsWith('refused'))).toEqual([]);
  });

  it('says in one line that an image without kernel or init needs a builder, with the ways out', async () => {
    const out = path.join(tmp, 'out.ova');
    const r = await runC2v(['convert', `oci:${tmp}/layout:1`, '-o', out], { env: { DOCKER_HOST: `unix://${tmp}/no-engine.sock` } });
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('c2v:'))).toHaveLength(1);
    expect(r.stderr.trim().split('\n').pop()).toMatch(/^c2v: /);
    expect(r.exitCode).toBe(4);
    expect(r.stderr).toMatch(/needs an image builder, and an image read from a file or a registry has none here: convert an image that already has a kernel and init/);
    expect(readdirSync(tmp).filter((f) => f.startsWith('out') || f.startsWith('.c2v'))).toEqual([]);
  });
});
