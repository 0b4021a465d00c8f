/**
 * What goes in the Authorization header for one scope, learnt from the registry's 401 challenges: Basic with the
 * user's credentials, or a Bearer token from the token server the challenge names. A token is fetched once per
 * scope and reused for the run; requests that meet a 401 together share one renewal.
 */
import { C2vError } from '../../errors.js';
import { DOCKER_HUB } from '../../formats/oci/reference.js';
import type { AuthChallenge } from '../../formats/oci/www-authenticate.js';
import { findCredentials, type Credentials } from './credentials.js';
import { networkFailure, serverFailure } from './retry.js';

export interface AuthContext {
  /** As named in the reference (`docker.io`, `127.0.0.1:5000`), for credentials and messages. */
  registry: string;
  repository: string;
  given: string;
  env: NodeJS.ProcessEnv;
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

interface Entry {
  promise: Promise<string | undefined>;
  settled: boolean;
  value?: string;
}

const MAX_TOKEN_RESPONSE = 1 << 20;
export const USER_AGENT = 'c2v';

export class Authenticator {
  private readonly byScope = new Map<string, Entry>();
  private credentials?: Promise<Credentials | undefined>;

  constructor(private readonly ctx: AuthContext) {}

  /** The header to send before any challenge: whatever this scope last earned, else none (anonymous first). */
  current(scope: string): string | undefined {
    return this.byScope.get(scope)?.value;
  }

  /**
   * A new header after a 401 to a request that sent `stale`. Undefined when there is nothing to try (Basic with no
   * credentials). Throws the one-line refusal when the token server turns the credentials down.
   */
  renew(scope: string, challenges: AuthChallenge[], stale: string | undefined): Promise<string | undefined> {
    const entry = this.byScope.get(scope);
    // A renewal under way, or one that finished since `stale` was sent, serves this request too.
    if (entry && (!entry.settled || (entry.value !== undefined && entry.value !== stale))) return entry.promise;
    const fresh: Entry = { promise: this.authorize(scope, challenges), settled: false };
    this.byScope.set(scope, fresh);
    fresh.promise.then(
      (v) => {
        fresh.settled = true;
        fresh.value = v;
      },
      () => {
        fresh.settled = true;
        if (this.byScope.get(scope) === fresh) this.byScope.delete(scope);
      },
    );
    return fresh.promise;
  }

  /** Whether the user has credentials for this registry; looked up once, on the first challenge. */
  credentialsFor(): Promise<Credentials | undefined> {
    this.credentials ??= findCredentials(this.ctx.registry, this.ctx.repository, this.ctx.env, this.ctx.onLog).then((c) => {
      if (c) this.ctx.onLog?.(`using the credentials for ${this.ctx.registry} from ${c.source}`);
      return c;
    });
    return this.credentials;
  }

  /** The one line for a refusal, naming where the credentials came from when some were sent. */
  async refusal(status: number, serverSays?: string): Promise<C2vError> {
    const creds = await this.credentialsFor().catch(() => undefined);
    const { registry, repository } = this.ctx;
    const login = registry === DOCKER_HUB ? 'docker login' : `docker login ${registry}`;
    const said = serverSays ? ` (${serverSays})` : '';
    if (creds) {
      return new C2vError('input', `registry ${registry} refused access to ${repository} with the credentials from ${creds.source}${said}: log in again (${login}) or set REGISTRY_AUTH_FILE`, {
        detail: `HTTP ${status}`,
      });
    }
    return new C2vError('input', `registry ${registry} refused access to ${repository}${said}, which needs credentials or does not exist: log in (${login}) or set REGISTRY_AUTH_FILE`, { detail: `HTTP ${status}` });
  }

  private async authorize(scope: string, challenges: AuthChallenge[]): Promise<string | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) return `Bearer ${await this.fetchToken(bearer, scope)}`;
    if (challenges.some((c) => c.scheme === 'basic')) {
      const creds = await this.credentialsFor();
      if (!creds || (!creds.username && !creds.password)) return undefined;
      return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    }
    if (challenges.length > 0) {
      const schemes = [...new Set(challenges.map((c) => c.scheme))].join(', ');
      throw new C2vError('input', `registry ${this.ctx.registry} asks for ${schemes} authentication, which c2v does not speak (only Basic and Bearer tokens): pull the image with a tool that does, and convert it from there`);
    }
    return undefined;
  }

  /**
   * GET realm?service=&scope= (Basic with the user's credentials when there are any), or, with an OAuth2 refresh
   * token, the POST that trades it; the answer's `token` or `access_token` is the bearer token.
   */
  private async fetchToken(challenge: AuthChallenge, scope: string): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm);
    } catch {
      throw new C2vError('input', `registry ${this.ctx.registry} names a token server that is not a URL ("${challenge.params.realm}"): the registry is misconfigured`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new C2vError('input', `registry ${this.ctx.registry} names a token server at ${realm.href}, which is not HTTP: the registry is misconfigured`);
    }
    const creds = await this.credentialsFor();
    const service = challenge.params.service;
    const doing = `asking ${realm.origin} for a token for ${this.ctx.repository}`;
    let init: RequestInit;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'c2v', scope });
      if (service) form.set('service', service);
      init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': USER_AGENT }, body: form.toString() };
    } else {
      if (service) realm.searchParams.set('service', service);
      realm.searchParams.set('scope', scope);
      const headers: Record<string, string> = { 'user-agent': USER_AGENT };
      if (creds && (creds.username || creds.password)) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      init = { method: 'GET', headers };
    }
    let res: Response;
    let text: string;
    try {
      res = await fetch(realm, { ...init, redirect: 'follow', signal: this.ctx.signal });
      text = res.ok ? await readText(res, MAX_TOKEN_RESPONSE) : await readText(res, 4096).catch(() => '');
    } catch (e) {
      if (this.ctx.signal?.aborted) throw e;
      throw networkFailure(e, { origin: realm.origin, host: this.ctx.registry, doing, given: this.ctx.given, registryOrigin: false });
    }
    if (res.status === 401 || res.status === 403) throw await this.refusal(res.status, serverMessage(text));
    if (res.status >= 500 || res.status === 429) throw serverFailure(res.status, { host: realm.host, doing, retryAfter: res.headers.get('retry-after') });
    if (!res.ok) throw new C2vError('input', `the token server of ${this.ctx.registry} (${realm.origin}) answered HTTP ${res.status}${serverMessage(text) ? ` (${serverMessage(text)})` : ''}: check the registry and try again`);
    let answer: { token?: unknown; access_token?: unknown };
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      throw new C2vError('input', `the token server of ${this.ctx.registry} (${realm.origin}) answered something other than JSON: the registry is misconfigured`);
    }
    const token = typeof answer.token === 'string' && answer.token ? answer.token : typeof answer.access_token === 'string' ? answer.access_token : '';
    if (!token) throw new C2vError('input', `the token server of ${this.ctx.registry} (${realm.origin}) answered without a token: the registry is misconfigured`);
    return token;
  }
}

/** A response body as text, refusing more than `limit` bytes (a hostile server cannot make c2v hold gigabytes). */
export async function readText(res: Response, limit: number): Promise<string> {
  return (await readLimited(res, limit)).toString('utf8');
}

export async function readLimited(res: Response, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body) {
    size += chunk.length;
    if (size > limit) {
      await res.body.cancel().catch(() => undefined);
      throw new C2vError('input', `${new URL(res.url || 'http://unknown').host} sent more than ${limit} bytes where a small document was expected: the registry is misbehaving`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** The first message of a registry's JSON error body (`{"errors":[{"code","message"}]}`), or of a token server's. */
export function serverMessage(text: string): string | undefined {
  try {
    const json = JSON.parse(text) as { errors?: { code?: string; message?: string }[]; details?: string; error?: string; message?: string };
    const first = json.errors?.[0];
    const m = first ? [first.code, first.message].filter(Boolean).join(': ') : (json.details ?? json.error ?? json.message);
    return typeof m === 'string' && m ? m.replace(/\s+/g, ' ').slice(0, 160) : undefined;
  } catch {
    return undefined;
  }
}
