import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRegistryImage, type RegistryOptions } from '../../src/adapters/registry/image.js';
import type { ResolvedImage } from '../../src/adapters/oci/resolved-image.js';
import { C2vError } from '../../src/errors.js';
import { parseReference } from '../../src/formats/oci/reference.js';
import { tarBuffer, vmSkeleton } from '../helpers/crafted-tar.js';
import { freePort, pushOciLayout, putManifest, startFaultProxy, startRegistry, writeOciLayout, type FaultProxy, type TestRegistry, type WrittenLayout } from '../helpers/registry-server.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-registry-test-'));
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  rmSync(tmp, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const AMD64 = { os: 'linux', architecture: 'amd64' };
const FAST = { attempts: 3, baseDelayMs: 5 };
let caches = 0;
/** An environment without anyone's real credentials: HOME is an empty folder. */
const home = path.join(tmp, 'empty-home');
mkdirSync(home);
const bareEnv = { HOME: home, PATH: process.env.PATH ?? '/usr/bin:/bin' };

function options(over: Partial<RegistryOptions> = {}): RegistryOptions {
  return { platform: AMD64, insecureRegistries: [], cacheDir: path.join(tmp, `cache-${++caches}`), env: bareEnv, retry: FAST, ...over };
}

function pull(reg: { host: string }, repoAndTag: string, over: Partial<RegistryOptions> = {}): { image: Promise<ResolvedImage>; opts: RegistryOptions; log: string[] } {
  const log: string[] = [];
  const opts = options({ onLog: (l) => log.push(l), ...over });
  const given = `docker://${reg.host}/${repoAndTag}`;
  return { image: openRegistryImage(parseReference(`${reg.host}/${repoAndTag}`), given, opts), opts, log };
}

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function decompress(b: Buffer): Buffer {
  if (b[0] === 0x1f && b[1] === 0x8b) return gunzipSync(b);
  if (b.readUInt32LE(0) === 0xfd2fb528) return execFileSync('zstd', ['-d', '-c', '-q'], { input: b, maxBuffer: 64 << 20 });
  return b;
}

/** Every file under `dir` that is not a complete blob whose sha256 is its name. */
function leftovers(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const bad: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (path.dirname(p) !== path.join(dir, 'blobs', 'sha256') || sha256(readFileSync(p)) !== `sha256:${name}`) bad.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return bad;
}

/** The image as the flattener will read it: each layer's stream hashes to its digest and, unpacked, to its diff_id. */
async function expectWhole(image: ResolvedImage, cacheDir: string): Promise<void> {
  expect(image.layers.length).toBe(image.config.rootfs.diff_ids.length);
  expect(readFileSync(path.join(cacheDir, 'blobs', 'sha256', image.id.slice(7))).length).toBeGreaterThan(0);
  for (const [i, layer] of image.layers.entries()) {
    const bytes = await bytesOf(await layer.open());
    expect(sha256(bytes)).toBe(layer.digest);
    expect(bytes.length).toBe(layer.size);
    expect(layer.diffId).toBe(image.config.rootfs.diff_ids[i]);
    expect(sha256(decompress(bytes))).toBe(layer.diffId);
    // Opened again, from the start.
    expect(sha256(await bytesOf(await layer.open()))).toBe(layer.digest);
  }
  expect(leftovers(cacheDir)).toEqual([]);
  await image.close();
}

/** The one-line C2vError a promise fails with. */
async function failure(p: Promise<unknown>): Promise<C2vError> {
  const e = await p.then(
    () => new Error('expected a failure, but it succeeded'),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(C2vError);
  expect((e as Error).message).not.toContain('\n');
  return e as C2vError;
}

async function registry(auth: 'none' | 'htpasswd' | 'token'): Promise<TestRegistry> {
  const r = await startRegistry({ auth });
  stops.push(r.stop);
  return r;
}

async function proxyTo(target: string, opts: { upstreamAuth?: string } = {}): Promise<FaultProxy> {
  const p = await startFaultProxy(target, opts);
  stops.push(p.stop);
  return p;
}

/** The app image: a small gzip layer and a 2 MiB layer of random bytes (long enough to cut in the middle). */
async function appLayout(name: string): Promise<WrittenLayout> {
  const small = await tarBuffer(vmSkeleton({ name }));
  const big = await tarBuffer([{ name: 'data', type: 'dir' }, { name: 'data/random.bin', size: 2 << 20 }]);
  return writeOciLayout(path.join(tmp, `layout-${name}`), '1.4', [{ layers: [{ tar: small, compression: 'gzip' }, { tar: big, compression: 'gzip' }] }]);
}

function writeJson(file: string, value: unknown): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(value));
  return file;
}

const basicAuth = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

describe('a registry without authentication', () => {
  let reg: TestRegistry;
  let app: WrittenLayout;
  let multi: WrittenLayout;
  let zstd: WrittenLayout;

  beforeAll(async () => {
    reg = await registry('none');
    app = await appLayout('app');
    await pushOciLayout(app, reg, 'team/app:1.4');
    const tar = (n: string) => tarBuffer([{ name: `etc/${n}`, data: `${n}\n` }]);
    multi = await writeOciLayout(path.join(tmp, 'layout-multi'), 'multi', [
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [{ tar: await tar('arm64'), compression: 'gzip' }] },
      { platform: { os: 'unknown', architecture: 'unknown' }, layers: [{ tar: await tar('attestation'), compression: 'gzip' }] },
      { platform: AMD64, layers: [{ tar: await tar('amd64'), compression: 'gzip' }, { tar: await tar('amd64-2'), compression: 'gzip' }] },
    ]);
    await pushOciLayout(multi, reg, 'team/multi:1', { all: true });
    zstd = await writeOciLayout(path.join(tmp, 'layout-zstd'), 'z', [{ layers: [{ tar: await tar('gz'), compression: 'gzip' }, { tar: await tarBuffer(vmSkeleton({ name: 'zstd' })), compression: 'zstd' }] }]);
    await pushOciLayout(zstd, reg, 'team/zstd:1');
  });

  it('pulls anonymously: config and layers verified in the cache, each layer opened as often as needed', async () => {
    const { image, opts } = pull(reg, 'team/app:1.4');
    const img = await image;
    expect(img.ref).toBe(`docker://${reg.host}/team/app:1.4`);
    expect(img.id).toBe(app.manifests[0].configDigest);
    expect(img.config.rootfs.diff_ids).toEqual(app.manifests[0].layers.map((l) => l.diffId));
    expect(img.layers.map((l) => l.digest)).toEqual(app.manifests[0].layers.map((l) => l.digest));
    const names = [img.id, ...img.layers.map((l) => String(l.digest))].map((d) => d.slice(7));
    expect(readdirSync(path.join(opts.cacheDir, 'blobs', 'sha256')).sort()).toEqual(names.sort());
    await expectWhole(img, opts.cacheDir);
  });

  it('reports progress over the layer bytes, from 0 to the total, and reuses complete blobs already in the cache', async () => {
    const calls: [number, number][] = [];
    const first = pull(reg, 'team/app:1.4', { onProgress: (d, t) => calls.push([d, t]) });
    const img = await first.image;
    const total = img.layers.reduce((s, l) => s + (l.size ?? 0), 0);
    expect(calls[0]).toEqual([0, total]);
    expect(calls.at(-1)).toEqual([total, total]);
    expect(calls.every(([d, t], i) => t === total && d <= total && (i === 0 || d >= calls[i - 1][0]))).toBe(true);
    expect(calls.length).toBeLessThan(40);

    // The same cache again through a proxy that counts: only manifest and config come over the wire... the config
    // is cached too, so the blobs are not asked for at all.
    const proxy = await proxyTo(reg.host);
    const again = await openRegistryImage(parseReference(`${proxy.host}/team/app:1.4`), 'again', options({ cacheDir: first.opts.cacheDir }));
    expect(again.id).toBe(img.id);
    expect(proxy.requests.filter((r) => r.url.includes('/blobs/'))).toEqual([]);
    await expectWhole(again, first.opts.cacheDir);
  });

  it('takes linux/amd64 from a two-platform index past an attestation-like entry, linux/arm64 when asked, and names the platforms on offer otherwise', async () => {
    const amd = await pull(reg, 'team/multi:1').image;
    expect(amd.id).toBe(multi.manifests[2].configDigest);
    expect(amd.config.architecture).toBe('amd64');
    expect(amd.layers).toHaveLength(2);

    const armPull = pull(reg, 'team/multi:1', { platform: { os: 'linux', architecture: 'arm64' } });
    const arm = await armPull.image;
    expect(arm.id).toBe(multi.manifests[0].configDigest);
    expect(arm.config.architecture).toBe('arm64');
    await expectWhole(arm, armPull.opts.cacheDir);

    const s390 = pull(reg, 'team/multi:1', { platform: { os: 'linux', architecture: 's390x' } });
    const e = await failure(s390.image);
    expect(e.code).toBe('input');
    expect(e.message).toMatch(/has no image for linux\/s390x \(it offers linux\/arm64\/v8, linux\/amd64\): choose one with --platform/);
    expect(leftovers(s390.opts.cacheDir)).toEqual([]);
  });

  it('opens an index nested in an index, choosing the platform in each', async () => {
    const nested = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: multi.indexDigest, size: readFileSync(path.join(multi.dir, 'blobs', 'sha256', multi.indexDigest!.slice(7))).length }],
    });
    await putManifest(reg, 'team/multi', 'nested', 'application/vnd.oci.image.index.v1+json', nested);
    const img = await pull(reg, 'team/multi:nested').image;
    expect(img.id).toBe(multi.manifests[2].configDigest);
  });

  it('pulls by a pinned digest, and one that is not there is "not found"', async () => {
    const digest = sha256(Buffer.from(await (await fetch(`http://${reg.host}/v2/team/app/manifests/1.4`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer()));
    const p = pull(reg, `team/app@${digest}`);
    const img = await p.image;
    expect(img.id).toBe(app.manifests[0].configDigest);
    expect(img.ref).toBe(`docker://${reg.host}/team/app@${digest}`);
    await expectWhole(img, p.opts.cacheDir);

    const missing = `sha256:${'0'.repeat(64)}`;
    const e = await failure(pull(reg, `team/app@${missing}`).image);
    expect(e.message).toBe(`image docker://${reg.host}/team/app@${missing} not found in ${reg.host}: check the repository name and the tag or digest`);
    const e2 = await failure(pull(reg, 'team/nothing-here:1').image);
    expect(e2.message).toMatch(/^image docker:\/\/127\.0\.0\.1:\d+\/team\/nothing-here:1 not found in 127\.0\.0\.1:\d+/);
  });

  it('fetches a zstd layer byte for byte as pushed', async () => {
    const p = pull(reg, 'team/zstd:1');
    const img = await p.image;
    const written = zstd.manifests[0].layers[1];
    expect(written.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    const got = await bytesOf(await img.layers[1].open());
    expect(got.equals(written.bytes)).toBe(true);
    expect(got.readUInt32LE(0)).toBe(0xfd2fb528);
    await expectWhole(img, p.opts.cacheDir);
  });

  it('refuses foreign layers, layers of other media types, a layer count that differs from diff_ids, and a non-image config, in one line each', async () => {
    const m = app.manifests[0];
    const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: m.configDigest, size: readFileSync(path.join(app.dir, 'blobs', 'sha256', m.configDigest.slice(7))).length };
    const layer = (i: number) => ({ mediaType: m.layers[i].mediaType, digest: m.layers[i].digest, size: m.layers[i].size });
    const put = (tag: string, layers: unknown[], cfg: unknown = config) => putManifest(reg, 'team/app', tag, 'application/vnd.oci.image.manifest.v1+json', JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: cfg, layers }));
    const foreignDigest = `sha256:${'ab'.repeat(32)}`;
    await put('foreign', [layer(0), { mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', digest: foreignDigest, size: 1000, urls: ['https://example.invalid/layer.tgz'] }]);
    await put('odd', [layer(0), { ...layer(1), mediaType: 'application/vnd.example.not-a-layer' }]);
    await put('extra', [layer(0), layer(1), layer(0)]);
    await put('helm', [layer(0)], { ...config, mediaType: 'application/vnd.cncf.helm.config.v1+json' });

    const cases: [string, RegExp][] = [
      ['foreign', new RegExp(`layer 2 of 2 \\(${foreignDigest}\\) of docker://\\S+ is a foreign layer .* c2v cannot fetch it`)],
      ['odd', /layer 2 of 2 .* has media type application\/vnd\.example\.not-a-layer, which is not a file system layer c2v reads/],
      ['extra', /lists 3 layers in its manifest but 2 in its configuration: the image is damaged/],
      ['helm', /is not a container image \(its configuration has media type application\/vnd\.cncf\.helm\.config\.v1\+json\)/],
    ];
    for (const [tag, message] of cases) {
      const p = pull(reg, `team/app:${tag}`);
      const e = await failure(p.image);
      expect(e.code).toBe('input');
      expect(e.message).toMatch(message);
      expect(leftovers(p.opts.cacheDir)).toEqual([]);
    }
  });

  it('says no registry answers at a port nobody listens on, at once', async () => {
    const port = await freePort();
    const started = Date.now();
    const e = await failure(pull({ host: `127.0.0.1:${port}` }, 'team/app:1.4', { retry: { attempts: 5, baseDelayMs: 2000 } }).image);
    expect(e.message).toBe(`no registry answers at http://127.0.0.1:${port}: connection refused; check the address in docker://127.0.0.1:${port}/team/app:1.4 and that the registry runs`);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  describe('through a proxy that misbehaves', () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await proxyTo(reg.host);
    });
    const reset = () => {
      proxy.requests.length = 0;
      proxy.rule = () => undefined;
    };
    const bigLayer = () => app.manifests[0].layers[1];
    const isBig = (r: { url: string }) => r.url.endsWith(`/blobs/${bigLayer().digest}`);

    it('retries answers of HTTP 500 (twice) and a connection closed before any answer, then succeeds', async () => {
      reset();
      let manifests = 0;
      let blobs = 0;
      proxy.rule = (r) =>
        r.url.includes('/manifests/') && manifests++ < 2 ? { kind: 'status', status: 500, body: '{"errors":[{"code":"UNKNOWN","message":"boom"}]}' } : isBig(r) && blobs++ < 1 ? { kind: 'destroy' } : undefined;
      const p = pull(proxy, 'team/app:1.4');
      const img = await p.image;
      await expectWhole(img, p.opts.cacheDir);
      expect(proxy.requests.filter((r) => r.url.includes('/manifests/')).map((r) => r.status)).toEqual([500, 500, 200]);
      expect(proxy.requests.filter(isBig).map((r) => r.action)).toEqual(['destroy', 'pass']);
      expect(p.log.filter((l) => /trying again in \d+ ms \(attempt \d of 3\)/.test(l))).toHaveLength(3);
    });

    it('gives up after the attempts on a registry that keeps failing, in one line, leaving no partial blob', async () => {
      reset();
      proxy.rule = (r) => (isBig(r) ? { kind: 'status', status: 503 } : undefined);
      const p = pull(proxy, 'team/app:1.4');
      const e = await failure(p.image);
      expect(e.message).toMatch(new RegExp(`^registry ${proxy.host} failed while downloading layer 2 of 2 \\(${bigLayer().digest}\\) of docker://${proxy.host}/team/app:1\\.4 \\(HTTP 503, 3 attempts\\): try again later$`));
      expect(proxy.requests.filter(isBig)).toHaveLength(3);
      expect(leftovers(p.opts.cacheDir)).toEqual([]);
    });

    it('says "not found" for a manifest the registry answers 404 for, without retrying', async () => {
      reset();
      proxy.rule = (r) => (r.url.includes('/manifests/') ? { kind: 'status', status: 404, body: '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}' } : undefined);
      const e = await failure(pull(proxy, 'team/app:1.4').image);
      expect(e.message).toBe(`image docker://${proxy.host}/team/app:1.4 not found in ${proxy.host}: check the repository name and the tag or digest`);
      expect(proxy.requests).toHaveLength(1);
    });

    it('resumes a blob cut in the middle with a Range request, and the result verifies', async () => {
      reset();
      let cut = false;
      proxy.rule = (r) => (isBig(r) && !cut ? ((cut = true), { kind: 'cut', after: 1 << 20 }) : undefined);
      const p = pull(proxy, 'team/app:1.4');
      const img = await p.image;
      await expectWhole(img, p.opts.cacheDir);
      const big = proxy.requests.filter(isBig);
      expect(big.map((r) => r.action)).toEqual(['cut', 'pass']);
      expect(big[0].headers.range).toBeUndefined();
      const resumedAt = Number(/^bytes=(\d+)-$/.exec(String(big[1].headers.range))?.[1]);
      expect(resumedAt).toBeGreaterThan(0);
      expect(resumedAt).toBeLessThanOrEqual(1 << 20);
      expect(big[1].status).toBe(206);
    });

    it('starts a cut blob again when the server will not resume (answers 200 to a Range request)', async () => {
      reset();
      let cut = false;
      proxy.rule = (r) => (isBig(r) ? (cut ? { kind: 'no-range' } : ((cut = true), { kind: 'cut', after: 300_000 })) : undefined);
      const progress: number[] = [];
      const p = pull(proxy, 'team/app:1.4', { onProgress: (d) => progress.push(d) });
      const img = await p.image;
      await expectWhole(img, p.opts.cacheDir);
      const big = proxy.requests.filter(isBig);
      expect(big.map((r) => [r.action, r.status])).toEqual([
        ['cut', 200],
        ['no-range', 200],
      ]);
      expect(big[1].headers.range).toMatch(/^bytes=\d+-$/);
      expect(p.log.some((l) => /does not resume downloads; fetching layer 2 of 2 again from its start/.test(l))).toBe(true);
    });

    it('refuses a blob whose bytes do not match its digest, naming the blob and the image', async () => {
      reset();
      proxy.rule = (r) => (isBig(r) ? { kind: 'corrupt', at: 1000 } : undefined);
      const p = pull(proxy, 'team/app:1.4');
      const e = await failure(p.image);
      expect(e.code).toBe('input');
      expect(e.message).toMatch(new RegExp(`^layer 2 of 2 \\(${bigLayer().digest}\\) of docker://${proxy.host}/team/app:1\\.4 does not match its digest \\(the bytes hash to sha256:[0-9a-f]{64}\\): the registry holds a damaged copy`));
      expect(leftovers(p.opts.cacheDir)).toEqual([]);
    });

    it('stops on an abort signal (an interrupt) mid-download, leaving no partial blob', async () => {
      reset();
      const controller = new AbortController();
      let partials: string[] = [];
      const cacheDir = path.join(tmp, `cache-${++caches}`);
      proxy.rule = (r) => {
        if (!isBig(r)) return undefined;
        // Once the stalled blob has started to arrive: what is in the cache, then the interrupt.
        setTimeout(() => {
          partials = leftovers(cacheDir);
          controller.abort();
        }, 300);
        return { kind: 'stall', after: 200_000 };
      };
      const started = Date.now();
      const e = await failure(pull(proxy, 'team/app:1.4', { signal: controller.signal, cacheDir }).image);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(e.code).toBe('interrupted');
      expect(e.message).toBe(`the download of docker://${proxy.host}/team/app:1.4 was interrupted`);
      expect(partials).toEqual([`blobs/sha256/${bigLayer().digest.slice(7)}.partial`]);
      expect(leftovers(cacheDir)).toEqual([]);
    });

    it('refuses a manifest that does not match the digest it was pinned by', async () => {
      reset();
      const digest = sha256(Buffer.from(await (await fetch(`http://${reg.host}/v2/team/app/manifests/1.4`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer()));
      proxy.rule = (r) => (r.url.includes('/manifests/') ? { kind: 'corrupt', at: 5 } : undefined);
      const e = await failure(pull(proxy, `team/app@${digest}`).image);
      expect(e.message).toMatch(new RegExp(`^the manifest of docker://${proxy.host}/team/app@${digest} does not match its digest ${digest} \\(the registry sent bytes hashing to sha256:`));
    });
  });

  it('names a blob the registry lost as missing', async () => {
    const p = pull(reg, 'team/app:1.4');
    const img = await p.image;
    const lost = await writeOciLayout(path.join(tmp, 'layout-lost'), 'x', [{ layers: [{ tar: await tarBuffer([{ name: 'lost', data: 'lost' }]), compression: 'gzip' }] }]);
    await pushOciLayout(lost, reg, 'team/lost:1');
    const del = await fetch(`http://${reg.host}/v2/team/lost/blobs/${lost.manifests[0].layers[0].digest}`, { method: 'DELETE' });
    expect(del.status).toBe(202);
    const q = pull(reg, 'team/lost:1');
    const e = await failure(q.image);
    expect(e.message).toMatch(/^layer 1 of 1 \(sha256:[0-9a-f]{64}\) of docker:\/\/\S+\/team\/lost:1 is missing from registry 127\.0\.0\.1:\d+: the image there is incomplete; push it again$/);
    expect(leftovers(q.opts.cacheDir)).toEqual([]);
    await img.close();
  });
});

describe('a registry with htpasswd (Basic) authentication', () => {
  let reg: TestRegistry;
  let user: string;
  let password: string;
  beforeAll(async () => {
    reg = await registry('htpasswd');
    user = reg.user!;
    password = reg.password!;
    await pushOciLayout(await appLayout('basic'), reg, 'team/app:1.4');
  });

  it('uses credentials from $DOCKER_CONFIG/config.json', async () => {
    const dir = path.join(tmp, 'docker-config-basic');
    writeJson(path.join(dir, 'config.json'), { auths: { [reg.host]: { auth: basicAuth(user, password) } } });
    const p = pull(reg, 'team/app:1.4', { env: { ...bareEnv, DOCKER_CONFIG: dir } });
    await expectWhole(await p.image, p.opts.cacheDir);
    expect(p.log).toContain(`using the credentials for ${reg.host} from ${path.join(dir, 'config.json')}`);
  });

  it('uses credentials from $HOME/.docker/config.json by default, keyed by URL', async () => {
    const h = path.join(tmp, 'home-with-docker');
    writeJson(path.join(h, '.docker', 'config.json'), { auths: { [`http://${reg.host}/v2/`]: { username: user, password } } });
    const p = pull(reg, 'team/app:1.4', { env: { ...bareEnv, HOME: h } });
    await expectWhole(await p.image, p.opts.cacheDir);
  });

  it('takes REGISTRY_AUTH_FILE before the Docker config', async () => {
    const authFile = writeJson(path.join(tmp, 'containers-auth.json'), { auths: { [`${reg.host}/team`]: { auth: basicAuth(user, password) } } });
    const dir = path.join(tmp, 'docker-config-wrong');
    writeJson(path.join(dir, 'config.json'), { auths: { [reg.host]: { auth: basicAuth(user, 'wrong') } } });
    const p = pull(reg, 'team/app:1.4', { env: { ...bareEnv, REGISTRY_AUTH_FILE: authFile, DOCKER_CONFIG: dir } });
    await expectWhole(await p.image, p.opts.cacheDir);
  });

  it('refuses in one line with wrong credentials (naming their file) and without any', async () => {
    const dir = path.join(tmp, 'docker-config-wrong');
    const wrong = await failure(pull(reg, 'team/app:1.4', { env: { ...bareEnv, DOCKER_CONFIG: dir } }).image);
    expect(wrong.code).toBe('input');
    expect(wrong.message).toMatch(
      new RegExp(`^registry ${reg.host} refused access to team/app with the credentials from ${path.join(dir, 'config.json')} \\(UNAUTHORIZED: authentication required\\): log in again \\(docker login ${reg.host}\\) or set REGISTRY_AUTH_FILE$`),
    );
    const none = await failure(pull(reg, 'team/app:1.4').image);
    expect(none.message).toMatch(new RegExp(`^registry ${reg.host} refused access to team/app \\(.*\\), which needs credentials or does not exist: log in \\(docker login ${reg.host}\\) or set REGISTRY_AUTH_FILE$`));
    const damaged = writeJson(path.join(tmp, 'damaged', 'config.json'), {});
    writeFileSync(damaged, '{"auths": ');
    const bad = await failure(pull(reg, 'team/app:1.4', { env: { ...bareEnv, DOCKER_CONFIG: path.dirname(damaged) } }).image);
    expect(bad.message).toBe(`${damaged} is not JSON: fix it, or log in again to rewrite it`);
  });

  it('asks a credential helper on PATH (credHelpers, then credsStore), and goes anonymous when it has nothing', async () => {
    const bin = path.join(tmp, 'helper-bin');
    const asked = path.join(tmp, 'helper-asked');
    mkdirSync(bin);
    writeFileSync(
      path.join(bin, 'docker-credential-c2vtest'),
      `#!/bin/sh\n[ "$1" = get ] || exit 2\nread -r server\necho "$server" >> '${asked}'\nif [ "$server" = '${reg.host}' ]; then printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\\n' "$server" '${user}' '${password.replace(/"/g, '\\"')}'; else echo 'credentials not found in native keychain'; exit 1; fi\n`,
    );
    chmodSync(path.join(bin, 'docker-credential-c2vtest'), 0o755);
    const env = (config: unknown) => {
      const dir = mkdtempSync(path.join(tmp, 'docker-config-helper-'));
      writeJson(path.join(dir, 'config.json'), config);
      return { ...bareEnv, PATH: `${bin}:${bareEnv.PATH}`, DOCKER_CONFIG: dir };
    };
    const p = pull(reg, 'team/app:1.4', { env: env({ credHelpers: { [reg.host]: 'c2vtest' }, auths: { [reg.host]: { auth: basicAuth(user, 'wrong') } } }) });
    await expectWhole(await p.image, p.opts.cacheDir);
    expect(p.log).toContain(`using the credentials for ${reg.host} from docker-credential-c2vtest`);
    expect(readFileSync(asked, 'utf8')).toBe(`${reg.host}\n`);

    // The helper knows nothing for this spelling of the host: anonymous, so refused.
    const other = `localhost:${reg.host.split(':')[1]}`;
    const e = await failure(pull({ host: other }, 'team/app:1.4', { env: env({ credsStore: 'c2vtest' }) }).image);
    expect(e.message).toMatch(/refused access to team\/app \(.*\), which needs credentials/);
    expect(readFileSync(asked, 'utf8')).toBe(`${reg.host}\n${other}\n`);

    // A helper that is not installed is passed over for the inline entry.
    const q = pull(reg, 'team/app:1.4', { env: env({ credsStore: 'not-installed', auths: { [reg.host]: { auth: basicAuth(user, password) } } }) });
    await expectWhole(await q.image, q.opts.cacheDir);
    expect(q.log.some((l) => /docker-credential-not-installed, which is not on PATH/.test(l))).toBe(true);
  });

  it('follows a blob redirect to another origin without sending it the Authorization header', async () => {
    const storage = await proxyTo(reg.host, { upstreamAuth: `Basic ${basicAuth(user, password)}` });
    const front = await proxyTo(reg.host);
    front.rule = (r) => (r.url.includes('/blobs/') ? { kind: 'redirect', origin: `http://${storage.host}` } : undefined);
    const dir = path.join(tmp, 'docker-config-redirect');
    writeJson(path.join(dir, 'config.json'), { auths: { [front.host]: { auth: basicAuth(user, password) } } });
    const p = pull(front, 'team/app:1.4', { env: { ...bareEnv, DOCKER_CONFIG: dir } });
    await expectWhole(await p.image, p.opts.cacheDir);
    const redirected = front.requests.filter((r) => r.url.includes('/blobs/'));
    expect(redirected).toHaveLength(3);
    expect(redirected.every((r) => r.status === 307 && r.headers.authorization?.startsWith('Basic '))).toBe(true);
    expect(storage.requests).toHaveLength(3);
    expect(storage.requests.map((r) => r.headers.authorization)).toEqual([undefined, undefined, undefined]);
    expect(storage.requests.every((r) => r.status === 200)).toBe(true);
  });
});

describe('a registry with token authentication', () => {
  let reg: TestRegistry;
  let app: WrittenLayout;
  const configWith = (name: string, auths: unknown) => {
    const dir = path.join(tmp, `docker-config-token-${name}`);
    writeJson(path.join(dir, 'config.json'), { auths });
    return { ...bareEnv, DOCKER_CONFIG: dir };
  };
  beforeAll(async () => {
    reg = await registry('token');
    app = await appLayout('token');
    await pushOciLayout(app, reg, 'team/app:1.4');
  });

  it('fetches one token for the repository scope and reuses it for every request of the run', async () => {
    reg.tokenRequests.length = 0;
    const env = configWith('good', { [reg.host]: { auth: basicAuth(reg.user!, reg.password!) } });
    const p = pull(reg, 'team/app:1.4', { env });
    await expectWhole(await p.image, p.opts.cacheDir);
    expect(reg.tokenRequests).toEqual([{ method: 'GET', scope: 'repository:team/app:pull', service: 'c2v-test', user: reg.user, status: 200 }]);
    // A new run asks again: tokens live for the run only.
    await pull(reg, 'team/app:1.4', { env }).image;
    expect(reg.tokenRequests).toHaveLength(2);
  });

  it('trades an identity token (OAuth2 refresh token) for an access token', async () => {
    reg.tokenRequests.length = 0;
    const p = pull(reg, 'team/app:1.4', { env: configWith('identity', { [reg.host]: { identitytoken: reg.refreshToken } }) });
    await expectWhole(await p.image, p.opts.cacheDir);
    expect(reg.tokenRequests).toEqual([{ method: 'POST', scope: 'repository:team/app:pull', service: null, user: '<refresh>', status: 200 }]);
  });

  it('refuses in one line when the token server turns the credentials down, or grants nothing to anonymous', async () => {
    reg.tokenRequests.length = 0;
    const env = configWith('wrong', { [reg.host]: { auth: basicAuth(reg.user!, 'wrong') } });
    const e = await failure(pull(reg, 'team/app:1.4', { env }).image);
    expect(e.message).toBe(
      `registry ${reg.host} refused access to team/app with the credentials from ${path.join(env.DOCKER_CONFIG, 'config.json')} (incorrect username or password): log in again (docker login ${reg.host}) or set REGISTRY_AUTH_FILE`,
    );
    expect(reg.tokenRequests.map((r) => r.status)).toEqual([401]);

    reg.tokenRequests.length = 0;
    const anon = await failure(pull(reg, 'team/app:1.4').image);
    expect(anon.message).toMatch(new RegExp(`^registry ${reg.host} refused access to team/app \\(UNAUTHORIZED: .*\\), which needs credentials or does not exist`));
    // The token was fresh for that request: asking again would not help.
    expect(reg.tokenRequests).toHaveLength(1);
  });

  it('fetches a new token once when a cached one is refused (expired), then fails if that one is refused too', async () => {
    const proxy = await proxyTo(reg.host);
    const env = configWith('proxy', { [proxy.host]: { auth: basicAuth(reg.user!, reg.password!) } });
    const challenge = { 'www-authenticate': `Bearer realm="${reg.tokenRealm}",service="c2v-test",scope="repository:team/app:pull"` };
    const firstToken = () => proxy.requests.find((r) => r.headers.authorization?.startsWith('Bearer '))?.headers.authorization;

    // The second request with the first token (the config blob) is refused as if the token had expired.
    reg.tokenRequests.length = 0;
    let refused = 0;
    proxy.rule = (r) => (r.headers.authorization === firstToken() && r.url.includes('/blobs/') && refused++ === 0 ? { kind: 'status', status: 401, headers: challenge, body: '{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}' } : undefined);
    const p = pull(proxy, 'team/app:1.4', { env });
    await expectWhole(await p.image, p.opts.cacheDir);
    expect(reg.tokenRequests).toHaveLength(2);
    const bearers = new Set(proxy.requests.map((r) => r.headers.authorization).filter(Boolean));
    expect(bearers.size).toBe(2);

    // Every bearer request to a blob refused: one renewal, then the one-line refusal.
    reg.tokenRequests.length = 0;
    proxy.requests.length = 0;
    proxy.rule = (r) => (r.headers.authorization?.startsWith('Bearer ') && r.url.includes('/blobs/') ? { kind: 'status', status: 401, headers: challenge, body: '{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}' } : undefined);
    const q = pull(proxy, 'team/app:1.4', { env });
    const e = await failure(q.image);
    expect(e.message).toMatch(/refused access to team\/app with the credentials from .*config\.json \(UNAUTHORIZED: token expired\): log in again/);
    expect(reg.tokenRequests).toHaveLength(2);
    expect(leftovers(q.opts.cacheDir)).toEqual([]);
  });
});

/** A non-loopback address of this machine, for the cases where c2v must speak HTTPS. */
const outward = Object.values(os.networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

describe.skipIf(!outward)(`a registry on a non-loopback address (${outward ?? 'none on this machine'})`, () => {
  it('speaks HTTPS to it, hints at --insecure-registry only when it answers in plain HTTP, and speaks HTTP when named insecure', async () => {
    const plain = await startRegistry({ address: outward });
    stops.push(plain.stop);
    const e = await failure(pull(plain, 'team/app:1').image);
    expect(e.message).toBe(`https://${plain.host} does not speak HTTPS (ERR_SSL_WRONG_VERSION_NUMBER): if ${plain.host} is a plain-HTTP registry you trust, pass --insecure-registry ${plain.host}`);
    const insecure = await failure(pull(plain, 'team/app:1', { insecureRegistries: [plain.host] }).image);
    expect(insecure.message).toBe(`image docker://${plain.host}/team/app:1 not found in ${plain.host}: check the repository name and the tag or digest`);

    const dir = path.join(tmp, 'tls');
    mkdirSync(dir);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '2', '-subj', `/CN=${outward}`, '-addext', `subjectAltName=IP:${outward}`], { stdio: 'ignore' });
    const tls = await startRegistry({ address: outward, tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') } });
    stops.push(tls.stop);
    const untrusted = await failure(pull(tls, 'team/app:1').image);
    expect(untrusted.message).toBe(`the TLS certificate of https://${tls.host} is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT): have c2v trust its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem`);
    const wrongWay = await failure(pull(tls, 'team/app:1', { insecureRegistries: [tls.host] }).image);
    expect(wrongWay.message).toBe(`${tls.host} speaks HTTPS, not plain HTTP: drop it from --insecure-registry`);
  });
});
