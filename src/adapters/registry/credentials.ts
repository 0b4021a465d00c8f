/**
 * Credentials for a registry, found where `podman login` and `docker login` put them: the containers auth file
 * named by REGISTRY_AUTH_FILE, then Docker's config.json ($DOCKER_CONFIG, else ~/.docker). In each file a
 * credential helper named for the host (`credHelpers`) or for every host (`credsStore`) comes first, then the
 * inline `auths` entry. Nothing found means anonymous access.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../../errors.js';
import { DOCKER_HUB } from '../../formats/oci/reference.js';
import { findOnPath, run } from '../exec.js';

export interface Credentials {
  username: string;
  password: string;
  /** An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user): traded at the token server. */
  identityToken?: string;
  /** Where they came from, for messages: a file or a helper. */
  source: string;
}

/** The server address Docker files Docker Hub's credentials under, and hands to credential helpers. */
const HUB_SERVER = 'https://index.docker.io/v1/';
const HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

/**
 * The host a key names: `https://host:5000/v1/` -> `host:5000` (old files key by URL, new ones by host);
 * undefined for a key with a repository path, which names that repository only.
 */
function keyHost(key: string): string | undefined {
  const rest = key.replace(/^[a-z]+:\/\//i, '');
  const slash = rest.indexOf('/');
  if (slash >= 0 && !/^\/(v[12]\/?)?$/.test(rest.slice(slash))) return undefined;
  return (slash >= 0 ? rest.slice(0, slash) : rest).toLowerCase();
}

function sameRegistry(keyHostName: string | undefined, registry: string): boolean {
  if (keyHostName === undefined) return false;
  if (registry === DOCKER_HUB) return HUB_ALIASES.has(keyHostName);
  return keyHostName === registry.toLowerCase();
}

/**
 * The auths entry for the registry: the repository's own (`host/ns/repo`, as containers-auth.json allows), then
 * its namespaces', then the exact key, then any spelling of the host.
 */
export function findAuthEntry(auths: Record<string, AuthEntry>, registry: string, repository: string): AuthEntry | undefined {
  const parts = repository.split('/');
  for (let n = parts.length; n > 0; n--) {
    const scoped = `${registry}/${parts.slice(0, n).join('/')}`;
    if (auths[scoped]) return auths[scoped];
  }
  if (registry === DOCKER_HUB && auths[HUB_SERVER]) return auths[HUB_SERVER];
  if (auths[registry]) return auths[registry];
  const key = Object.keys(auths).find((k) => sameRegistry(keyHost(k), registry));
  return key ? auths[key] : undefined;
}

/** Username and password from an entry: `auth` is base64 of `user:password`; the separate fields also count. */
export function decodeAuthEntry(entry: AuthEntry, source: string): Omit<Credentials, 'source'> | undefined {
  const text = (v: unknown): string => (typeof v === 'string' ? v : '');
  let username = text(entry.username);
  let password = text(entry.password);
  if (text(entry.auth)) {
    const plain = Buffer.from(text(entry.auth), 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon < 0) throw new C2vError('input', `the credentials in ${source} are damaged (auth is not base64 of user:password): log in again`);
    username = plain.slice(0, colon);
    password = plain.slice(colon + 1);
  }
  const identityToken = text(entry.identitytoken) || undefined;
  if (!username && !password && !identityToken) return undefined;
  return { username, password, identityToken };
}

async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new C2vError('input', `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)}): fix its permissions or point the variable that names it elsewhere`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new C2vError('input', `${file} is not JSON: fix it, or log in again to rewrite it`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new C2vError('input', `${file} is not a JSON object: fix it, or log in again to rewrite it`);
  }
  const f = json as AuthFile;
  const objectOrUndefined = <T>(v: T): T | undefined => (typeof v === 'object' && v !== null ? v : undefined);
  return { auths: objectOrUndefined(f.auths), credHelpers: objectOrUndefined(f.credHelpers), credsStore: typeof f.credsStore === 'string' ? f.credsStore : undefined };
}

function helperFor(file: AuthFile, registry: string): string | undefined {
  const helpers = file.credHelpers ?? {};
  const key = Object.keys(helpers).find((k) => sameRegistry(keyHost(k), registry));
  const named = key ? helpers[key] : undefined;
  return typeof named === 'string' && named ? named : file.credsStore || undefined;
}

/**
 * Runs `docker-credential-<name> get`, as Docker does, when it is on PATH. Undefined when the helper has nothing
 * for the host (it says "credentials not found") or is not installed (logged: the inline entry may still serve).
 */
async function askHelper(name: string, registry: string, env: NodeJS.ProcessEnv, file: string, onLog?: (line: string) => void): Promise<Credentials | undefined> {
  const bin = `docker-credential-${name}`;
  if (!HELPER_NAME.test(name)) throw new C2vError('input', `${file} names the credential helper "${name}", which is not a valid helper name: fix it`);
  const found = await findOnPath(bin, env.PATH ?? '');
  if (!found) {
    onLog?.(`${file} names the credential helper ${bin}, which is not on PATH; trying without it`);
    return undefined;
  }
  const server = registry === DOCKER_HUB ? HUB_SERVER : registry;
  const r = await run(found, ['get'], { input: server, env, extendEnv: false, reject: false, timeout: 60_000, stdout: 'pipe', stderr: 'pipe' });
  const stdout = String(r.stdout ?? '').trim();
  const stderr = String(r.stderr ?? '').trim();
  if (r.exitCode !== 0 || r.failed) {
    if (/credentials not found/i.test(`${stdout}\n${stderr}`)) return undefined;
    const why = (stderr || stdout).split('\n').pop() || (r.timedOut ? 'timed out' : `exit ${r.exitCode ?? '?'}`);
    throw new C2vError('tool', `the credential helper ${bin} failed for ${server} (${why}): fix it, or remove it from ${file}`, { detail: stderr });
  }
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(stdout) as typeof answer;
  } catch {
    throw new C2vError('tool', `the credential helper ${bin} answered something other than JSON for ${server}: fix it, or remove it from ${file}`);
  }
  const username = typeof answer.Username === 'string' ? answer.Username : '';
  const secret = typeof answer.Secret === 'string' ? answer.Secret : '';
  if (!username && !secret) return undefined;
  // Helpers hand out OAuth2 refresh tokens under the user name `<token>` (Azure's, for one).
  if (username === '<token>') return { username: '', password: '', identityToken: secret, source: bin };
  return { username, password: secret, source: bin };
}

async function fromFile(file: string, registry: string, repository: string, env: NodeJS.ProcessEnv, onLog?: (line: string) => void): Promise<Credentials | undefined> {
  const parsed = await readAuthFile(file);
  if (!parsed) return undefined;
  const helper = helperFor(parsed, registry);
  if (helper) {
    const got = await askHelper(helper, registry, env, file, onLog);
    if (got) return got;
  }
  const entry = parsed.auths ? findAuthEntry(parsed.auths, registry, repository) : undefined;
  const decoded = entry && typeof entry === 'object' ? decodeAuthEntry(entry, file) : undefined;
  return decoded ? { ...decoded, source: file } : undefined;
}

/** The auth files consulted, in order. */
export function authFiles(env: NodeJS.ProcessEnv): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.DOCKER_CONFIG) files.push(path.join(env.DOCKER_CONFIG, 'config.json'));
  else if (env.HOME) files.push(path.join(env.HOME, '.docker', 'config.json'));
  return files;
}

export async function findCredentials(registry: string, repository: string, env: NodeJS.ProcessEnv, onLog?: (line: string) => void): Promise<Credentials | undefined> {
  for (const file of authFiles(env)) {
    const found = await fromFile(file, registry, repository, env, onLog);
    if (found) return found;
  }
  return undefined;
}
