/**
 * HTTP to one repository of a registry (Distribution API v2) over Node's fetch: anonymous first, then the
 * Authorization the 401 challenge calls for; redirects (blobs go to storage) followed by hand so that the
 * Authorization header never leaves the registry's origin.
 */
import { C2vError } from '../../errors.js';
import { isLoopbackRegistry, registryHost } from '../../formats/oci/reference.js';
import { parseWwwAuthenticate } from '../../formats/oci/www-authenticate.js';
import { Authenticator, readText, serverMessage, USER_AGENT } from './auth.js';
import { networkFailure, serverFailure, TransientError } from './retry.js';

export interface ClientOptions {
  /** As named in the reference: `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  repository: string;
  /** The user's spelling of the image, for messages. */
  given: string;
  insecureRegistries: string[];
  env: NodeJS.ProcessEnv;
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function bareHost(entry: string): string {
  return entry
    .trim()
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/+$/, '')
    .toLowerCase();
}

/**
 * Plain HTTP for a loopback registry (as Docker allows) and for the hosts the user named insecure, by host:port
 * or by host alone; HTTPS for everything else. Insecure here means plain HTTP, not HTTPS without verification.
 */
export function registryOrigin(registry: string, insecureRegistries: string[]): string {
  const host = registryHost(registry);
  const hostOnly = host.replace(/:[0-9]+$/, '').toLowerCase();
  const insecure = insecureRegistries.map(bareHost);
  const plain = isLoopbackRegistry(host) || insecure.includes(registry.toLowerCase()) || insecure.includes(host.toLowerCase()) || insecure.includes(hostOnly);
  return `${plain ? 'http' : 'https'}://${host}`;
}

export class RegistryClient {
  readonly origin: string;
  readonly scope: string;
  private readonly auth: Authenticator;

  constructor(private readonly opts: ClientOptions) {
    this.origin = registryOrigin(opts.registry, opts.insecureRegistries);
    this.scope = `repository:${opts.repository}:pull`;
    this.auth = new Authenticator({ registry: opts.registry, repository: opts.repository, given: opts.given, env: opts.env, onLog: opts.onLog, signal: opts.signal });
  }

  get registry(): string {
    return this.opts.registry;
  }

  /**
   * GET /v2/<repository>/<path>. Answers anything but the registry's own 401, which costs at most one new
   * Authorization per request (a token that expired since it was cached) before it becomes the one-line refusal.
   */
  async get(path: string, headers: Record<string, string>, doing: string): Promise<Response> {
    const url = new URL(`/v2/${this.opts.repository}/${path}`, this.origin);
    let authorization = this.auth.current(this.scope);
    let renewed = false;
    for (;;) {
      const { response, at } = await this.exchange(url, headers, authorization, doing);
      if (response.status !== 401 || at.origin !== url.origin) return response;
      const text = await readText(response, 4096).catch(() => '');
      if (renewed) throw await this.auth.refusal(401, serverMessage(text));
      const challenges = parseWwwAuthenticate(response.headers.get('www-authenticate') ?? '');
      authorization = await this.auth.renew(this.scope, challenges, authorization);
      if (authorization === undefined) throw await this.auth.refusal(401, serverMessage(text));
      renewed = true;
    }
  }

  /** One request and the redirects it leads to; `at` is where the answer came from. */
  private async exchange(url: URL, headers: Record<string, string>, authorization: string | undefined, doing: string): Promise<{ response: Response; at: URL }> {
    let at = url;
    for (let hop = 0; ; hop++) {
      const sent: Record<string, string> = { 'user-agent': USER_AGENT, ...headers };
      // Storage behind a redirect gets a signed URL; the registry's credentials are not its business.
      if (authorization && at.origin === url.origin) sent.authorization = authorization;
      let response: Response;
      try {
        response = await fetch(at, { headers: sent, redirect: 'manual', signal: this.opts.signal });
      } catch (e) {
        if (this.opts.signal?.aborted) throw e;
        throw networkFailure(e, { origin: at.origin, host: this.opts.registry, doing, given: this.opts.given, registryOrigin: at.origin === this.origin });
      }
      if (!REDIRECTS.has(response.status)) return { response, at };
      await response.body?.cancel().catch(() => undefined);
      const location = response.headers.get('location');
      if (!location) throw new C2vError('input', `${at.origin} answered a redirect without a Location while ${doing}: the registry is misconfigured`);
      if (hop >= MAX_REDIRECTS) throw new C2vError('input', `${this.opts.registry} redirected more than ${MAX_REDIRECTS} times while ${doing}: the registry is misconfigured`);
      const next = new URL(location, at);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new C2vError('input', `${this.opts.registry} redirected to ${next.protocol} while ${doing}: the registry is misconfigured`);
      at = next;
    }
  }

  /**
   * The error for an answer that is neither success nor a case the caller handles: 5xx and 429 are worth another
   * try, and so is storage behind a redirect refusing a signed URL that may have expired (the retry starts at the
   * registry, which signs a new one).
   */
  async failure(response: Response, doing: string): Promise<Error> {
    const text = await readText(response, 4096).catch(() => '');
    const said = serverMessage(text);
    const status = response.status;
    const fromRegistry = new URL(response.url || this.origin).origin === this.origin;
    if (status >= 500 || status === 429) return serverFailure(status, { host: this.opts.registry, doing, retryAfter: response.headers.get('retry-after') });
    if (!fromRegistry && (status === 401 || status === 403)) {
      return new TransientError(`storage refused a redirected request (HTTP ${status})`, (n) => `the storage ${this.opts.registry} redirects to refused the download while ${doing} (HTTP ${status}, ${n} attempts): try again later`);
    }
    if (status === 403) return this.auth.refusal(status, said);
    if (status === 400 && /HTTP request to an HTTPS server/i.test(text) && this.origin.startsWith('http:')) {
      const fix = isLoopbackRegistry(registryHost(this.opts.registry)) ? 'c2v speaks plain HTTP to a loopback registry, so serve it without TLS there' : 'drop it from --insecure-registry';
      return new C2vError('input', `${this.opts.registry} speaks HTTPS, not plain HTTP: ${fix}`);
    }
    return new C2vError('input', `registry ${this.opts.registry} answered HTTP ${status}${said ? ` (${said})` : ''} while ${doing}: check the image reference and the registry`);
  }
}
