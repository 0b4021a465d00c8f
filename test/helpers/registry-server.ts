import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

/**
 * Real registries for tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, without auth, with an
 * htpasswd file, or with bearer tokens from a token server in this process (JWTs signed with a key whose
 * self-signed certificate is the registry's rootcertbundle). Images are written as OCI layouts and pushed with
 * skopeo, so no engine is needed.
 */
const run = promisify(execFile);

export type RegistryAuthMode = 'none' | 'htpasswd' | 'token';

export interface TokenRequest {
  method: string;
  scope: string | null;
  service: string | null;
  /** The Basic user, or `<refresh>` for a refresh-token grant; undefined when anonymous. */
  user?: string;
  /** What the server answered. */
  status: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, what references name. */
  host: string;
  auth: RegistryAuthMode;
  user?: string;
  password?: string;
  /** Token mode: the token server's URL and each request it got, and the refresh token it accepts. */
  tokenRealm?: string;
  tokenRequests: TokenRequest[];
  refreshToken?: string;
  /** The registry's log so far (for a failing test's message). */
  log(): string;
  stop(): Promise<void>;
}

export interface StartOptions {
  auth?: RegistryAuthMode;
  user?: string;
  password?: string;
  /** Where to listen; 127.0.0.1 unless a test needs a non-loopback address. */
  address?: string;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
}

export async function freePort(address = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, address, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One GET's status, or undefined; HTTPS without verification (a test registry's certificate is self-signed). */
function probe(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = (url.startsWith('https:') ? https : http).get(url, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
  });
}

/** Polls GET /v2/ until the registry answers 200 or 401, or its process ends, or 20 s pass. */
async function waitForRegistry(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`docker-registry exited at start:\n${log()}`);
    const status = await probe(url);
    if (status === 200 || status === 401) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer at ${url} within 20 s:\n${log()}`);
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/** A token server in this process: Basic credentials in, a JWT distribution 2.8 accepts out. */
async function startTokenServer(dir: string, opts: { user: string; password: string; service: string; issuer: string; refreshToken: string }) {
  const keyFile = path.join(dir, 'token-key.pem');
  const certFile = path.join(dir, 'token-cert.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=c2v-test-token']);
  const key = readFileSync(keyFile, 'utf8');
  const certDer = new X509Certificate(readFileSync(certFile)).raw.toString('base64');
  const requests: TokenRequest[] = [];

  const issue = (sub: string, scope: string | null, grant: boolean) => {
    const now = Math.floor(Date.now() / 1000);
    const access = [];
    const m = scope ? /^repository:([^:]+):(.+)$/.exec(scope) : null;
    if (m && grant) access.push({ type: 'repository', name: m[1], actions: m[2].split(',') });
    const header = { typ: 'JWT', alg: 'ES256', x5c: [certDer] };
    const claims = { iss: opts.issuer, sub, aud: opts.service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://token');
      const answer = (status: number, body: unknown, user?: string, scope = url.searchParams.get('scope')) => {
        requests.push({ method: req.method ?? 'GET', scope, service: url.searchParams.get('service'), user, status });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method === 'POST') {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== opts.refreshToken) return answer(401, { error: 'invalid_grant' }, '<refresh>', form.get('scope'));
        return answer(200, { access_token: issue(opts.user, form.get('scope'), true), expires_in: 300 }, '<refresh>', form.get('scope'));
      }
      const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
      if (!basic) return answer(200, { token: issue('', url.searchParams.get('scope'), false), expires_in: 300 });
      const [user, ...rest] = Buffer.from(basic[1], 'base64').toString().split(':');
      if (user !== opts.user || rest.join(':') !== opts.password) return answer(401, { details: 'incorrect username or password' }, user);
      answer(200, { token: issue(user, url.searchParams.get('scope'), true), access_token: 'not-this-one', expires_in: 300 }, user);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const realm = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`;
  return { realm, certFile, requests, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Manifests with foreign layers (URLs) are refused unless some URLs are allowed. */
const FOREIGN_URLS = ['validation:', '  manifests:', '    urls:', '      allow: ["^https?://"]'];

export async function startRegistry(opts: StartOptions = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? 'none';
  const address = opts.address ?? '127.0.0.1';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-registry-'));
  const user = opts.user ?? 'c2v-user';
  const password = opts.password ?? 'c2v-pass:with,odd"chars';
  const stops: (() => Promise<void>)[] = [];
  try {
    const port = await freePort(address);
    const host = `${address.includes(':') ? `[${address}]` : address}:${port}`;
    const lines = ['version: 0.1', 'log: {level: warn}', 'storage:', `  filesystem: {rootdirectory: ${JSON.stringify(path.join(dir, 'data'))}}`, '  delete: {enabled: true}', ...FOREIGN_URLS, 'http:', `  addr: ${JSON.stringify(host)}`];
    if (opts.tls) lines.push(`  tls: {certificate: ${JSON.stringify(opts.tls.cert)}, key: ${JSON.stringify(opts.tls.key)}}`);
    let token: Awaited<ReturnType<typeof startTokenServer>> | undefined;
    const refreshToken = `refresh-${randomBytes(6).toString('hex')}`;
    if (auth === 'htpasswd') {
      const { stdout } = await run('htpasswd', ['-Bbn', user, password]);
      writeFileSync(path.join(dir, 'htpasswd'), stdout.trim() + '\n');
      lines.push('auth:', `  htpasswd: {realm: c2v-test, path: ${JSON.stringify(path.join(dir, 'htpasswd'))}}`);
    } else if (auth === 'token') {
      token = await startTokenServer(dir, { user, password, service: 'c2v-test', issuer: 'c2v-test-issuer', refreshToken });
      stops.push(token.close);
      lines.push('auth:', '  token:', `    realm: ${JSON.stringify(token.realm)}`, '    service: c2v-test', '    issuer: c2v-test-issuer', `    rootcertbundle: ${JSON.stringify(token.certFile)}`);
    }
    const config = path.join(dir, 'config.yml');
    writeFileSync(config, lines.join('\n') + '\n');
    let log = '';
    const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (c: Buffer) => (log = (log + c.toString()).slice(-20_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    stops.unshift(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    });
    await waitForRegistry(`${opts.tls ? 'https' : 'http'}://${host}/v2/`, child, () => log);
    let stopped = false;
    return {
      host,
      auth,
      user: auth === 'none' ? undefined : user,
      password: auth === 'none' ? undefined : password,
      tokenRealm: token?.realm,
      tokenRequests: token?.requests ?? [],
      refreshToken: token ? refreshToken : undefined,
      log: () => log,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        for (const s of stops) await s();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    for (const s of stops) await s().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

// ---- OCI layouts -------------------------------------------------------------------------------------------------

export interface LayoutLayer {
  /** The uncompressed tar. */
  tar: Buffer;
  compression?: 'none' | 'gzip' | 'zstd';
}

export interface LayoutImage {
  platform?: { os: string; architecture: string; variant?: string };
  layers: LayoutLayer[];
  /** Merged into the config's `config` (Cmd, Env, Labels...). */
  runConfig?: Record<string, unknown>;
}

export interface WrittenManifest {
  digest: string;
  size: number;
  configDigest: string;
  platform: { os: string; architecture: string; variant?: string };
  layers: { digest: string; diffId: string; size: number; mediaType: string; bytes: Buffer }[];
}

export interface WrittenLayout {
  dir: string;
  tag: string;
  /** The index's digest when there is more than one image. */
  indexDigest?: string;
  manifests: WrittenManifest[];
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const LAYER_MEDIA = { none: 'application/vnd.oci.image.layer.v1.tar', gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd' };

function writeBlob(dir: string, bytes: Buffer | string): { digest: string; size: number } {
  const digest = sha256(bytes);
  writeFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: Buffer.byteLength(bytes) };
}

async function compress(tar: Buffer, how: 'none' | 'gzip' | 'zstd'): Promise<Buffer> {
  if (how === 'gzip') return gzipSync(tar);
  if (how === 'none') return tar;
  return new Promise<Buffer>((resolve, reject) => {
    const child = spawn('zstd', ['-q', '-c', '-3'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`zstd exited ${code}`))));
    child.stdin.end(tar);
  });
}

/**
 * An OCI image layout at `dir` whose index.json names `tag`: one image manifest, or, for several images, an
 * image index listing them by platform (skopeo copy --all pushes it whole).
 */
export async function writeOciLayout(dir: string, tag: string, images: LayoutImage[]): Promise<WrittenLayout> {
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const manifests: WrittenManifest[] = [];
  for (const image of images) {
    const platform = image.platform ?? { os: 'linux', architecture: 'amd64' };
    const layers: WrittenManifest['layers'] = [];
    for (const l of image.layers) {
      const how = l.compression ?? 'none';
      const bytes = await compress(l.tar, how);
      const { digest, size } = writeBlob(dir, bytes);
      layers.push({ digest, size, diffId: sha256(l.tar), mediaType: LAYER_MEDIA[how], bytes });
    }
    const config = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created: '2024-01-01T00:00:00Z',
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/bin:/bin'], ...image.runConfig },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'c2v test' })),
    };
    const configBlob = writeBlob(dir, JSON.stringify(config));
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configBlob },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    });
    const m = writeBlob(dir, manifest);
    manifests.push({ ...m, configDigest: configBlob.digest, platform, layers });
  }
  const refName = { 'org.opencontainers.image.ref.name': tag };
  let top: { mediaType: string; digest: string; size: number; platform?: WrittenManifest['platform'] };
  let indexDigest: string | undefined;
  if (manifests.length === 1) {
    top = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifests[0].digest, size: manifests[0].size };
  } else {
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: manifests.map((m) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m.digest, size: m.size, platform: m.platform })),
    });
    const i = writeBlob(dir, index);
    indexDigest = i.digest;
    top = { mediaType: 'application/vnd.oci.image.index.v1+json', ...i };
  }
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...top, annotations: refName }] }));
  return { dir, tag, indexDigest, manifests };
}

/**
 * `skopeo copy oci:DIR:TAG docker://HOST/DEST`: the layout's blobs as they are (no recompression unless asked),
 * every image of an index with `all`. Credentials are the registry's own when it has any.
 */
export async function pushOciLayout(layout: { dir: string; tag: string }, registry: Pick<TestRegistry, 'host' | 'user' | 'password'>, dest: string, opts: { all?: boolean; compressFormat?: 'zstd' | 'gzip' } = {}): Promise<void> {
  const args = ['copy', '--quiet', '--dest-tls-verify=false'];
  if (registry.user !== undefined) args.push('--dest-creds', `${registry.user}:${registry.password ?? ''}`);
  else args.push('--dest-no-creds');
  if (opts.all) args.push('--all');
  if (opts.compressFormat) args.push('--dest-compress', '--dest-compress-format', opts.compressFormat);
  args.push(`oci:${layout.dir}:${layout.tag}`, `docker://${registry.host}/${dest}`);
  try {
    await run('skopeo', args, { env: { ...process.env, REGISTRY_AUTH_FILE: path.join(os.tmpdir(), 'c2v-no-such-auth.json') } });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

/** Manifest bytes put straight into a repository (for shapes skopeo will not push, like a nested index). */
export async function putManifest(registry: Pick<TestRegistry, 'host' | 'user' | 'password' | 'auth'>, repository: string, reference: string, mediaType: string, body: string): Promise<string> {
  if (registry.auth === 'token') throw new Error('putManifest speaks Basic auth only: use a registry without auth or with htpasswd');
  const headers: Record<string, string> = { 'content-type': mediaType };
  if (registry.user !== undefined) headers.authorization = `Basic ${Buffer.from(`${registry.user}:${registry.password}`).toString('base64')}`;
  const r = await fetch(`http://${registry.host}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers, body });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`PUT manifest ${repository}:${reference} answered ${r.status}: ${text}`);
  return r.headers.get('docker-content-digest') ?? sha256(body);
}

// ---- A proxy that misbehaves on purpose ----------------------------------------------------------------------------

/** What the proxy does with one request. */
export type ProxyAction =
  | { kind: 'pass' }
  /** Pass, but without the client's Range header (a server that cannot resume). */
  | { kind: 'no-range' }
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  /** Send the upstream headers and the first `after` body bytes, then drop the connection. */
  | { kind: 'cut'; after: number }
  /** Send the upstream headers and the first `after` body bytes, then nothing more (a stalled transfer). */
  | { kind: 'stall'; after: number }
  /** Close the connection before any answer. */
  | { kind: 'destroy' }
  /** Pass, with the body byte at `at` flipped. */
  | { kind: 'corrupt'; at: number }
  /** 307 to `origin` + the same path. */
  | { kind: 'redirect'; origin: string };

export interface ProxiedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  action: ProxyAction['kind'];
  /** The status the client got (for pass-through: upstream's). */
  status?: number;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT`. */
  host: string;
  requests: ProxiedRequest[];
  /** Decides each request's fate; pass-through when it answers undefined. */
  rule: (req: ProxiedRequest) => ProxyAction | undefined;
  stop(): Promise<void>;
}

/**
 * A node:http proxy in front of `target` (host:port) that can fail requests in the ways networks and registries do.
 * `upstreamAuth` is sent upstream in place of the client's Authorization (storage that a redirect points at).
 */
export async function startFaultProxy(target: string, opts: { upstreamAuth?: string } = {}): Promise<FaultProxy> {
  const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const proxy: FaultProxy = { host: '', requests: [], rule: () => undefined, stop: async () => undefined };
  const server = http.createServer((req, res) => {
    const seen: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: { ...req.headers }, action: 'pass' };
    proxy.requests.push(seen);
    const action = proxy.rule(seen) ?? { kind: 'pass' };
    seen.action = action.kind;
    if (action.kind === 'status') {
      seen.status = action.status;
      res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers });
      res.end(action.body ?? '');
      return;
    }
    if (action.kind === 'destroy') {
      req.socket.destroy();
      return;
    }
    if (action.kind === 'redirect') {
      seen.status = 307;
      res.writeHead(307, { location: `${action.origin}${req.url}` });
      res.end();
      return;
    }
    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: target };
    if (opts.upstreamAuth) headers.authorization = opts.upstreamAuth;
    if (action.kind === 'no-range') delete headers.range;
    const up = http.request({ host: targetHost, port: targetPort, method: req.method, path: req.url, headers }, (upRes) => {
      seen.status = upRes.statusCode;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      let sent = 0;
      upRes.on('data', (chunk: Buffer) => {
        if (action.kind === 'cut' || action.kind === 'stall') {
          if (sent >= action.after) return;
          const piece = chunk.subarray(0, action.after - sent);
          sent += piece.length;
          if (sent >= action.after) {
            res.write(piece, () => (action.kind === 'cut' ? res.socket?.destroy() : undefined));
            upRes.destroy();
          } else {
            res.write(piece);
          }
          return;
        }
        if (action.kind === 'corrupt' && action.at >= sent && action.at < sent + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[action.at - sent] ^= 0xff;
        }
        sent += chunk.length;
        res.write(chunk);
      });
      upRes.on('end', () => (action.kind === 'stall' ? undefined : res.end()));
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  proxy.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
