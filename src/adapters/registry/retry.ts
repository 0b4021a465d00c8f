/**
 * Which registry failures are worth another try (5xx, 429, a connection that broke), the bounded back-off between
 * tries, and the one-line errors for what is not, or no longer, worth one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { C2vError } from '../../errors.js';

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 500 };
const MAX_DELAY_MS = 30_000;

/** A failure another attempt may cure; `final` is the message once the attempts are spent. */
export class TransientError extends Error {
  constructor(
    readonly reason: string,
    readonly final: (attempts: number) => string,
    readonly retryAfterMs?: number,
  ) {
    super(reason);
  }
}

/** Retry-After in seconds or as an HTTP date; capped so a registry cannot park the run. */
export function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, 60_000) : undefined;
}

export async function retrying<T>(what: string, policy: RetryPolicy, fn: (attempt: number) => Promise<T>, opts: { onLog?: (line: string) => void; signal?: AbortSignal } = {}): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof TransientError) || opts.signal?.aborted) throw e;
      if (attempt >= policy.attempts) throw new C2vError('input', e.final(attempt), { cause: e });
      const delay = Math.max(Math.min(policy.baseDelayMs * 2 ** (attempt - 1), MAX_DELAY_MS), e.retryAfterMs ?? 0);
      opts.onLog?.(`${what}: ${e.reason}; trying again in ${delay} ms (attempt ${attempt + 1} of ${policy.attempts})`);
      await sleep(delay, undefined, { signal: opts.signal });
    }
  }
}

interface NetCause {
  code?: string;
  message?: string;
}

/** The innermost cause with a code: undici wraps the socket's error in a TypeError ('fetch failed', 'terminated'). */
function netCause(e: unknown): NetCause | undefined {
  let c: unknown = e;
  for (let depth = 0; depth < 5 && c && typeof c === 'object'; depth++) {
    const code = (c as NetCause).code;
    if (typeof code === 'string') return c as NetCause;
    c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

const CERT_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH|ERR_SSL_TLSV1_ALERT)/;
/** What a TLS client sees when the server answers in plain HTTP. */
const PLAIN_HTTP_CODES = /^(ERR_SSL_WRONG_VERSION_NUMBER|ERR_SSL_PACKET_LENGTH_TOO_LONG|ERR_SSL_HTTP_REQUEST|EPROTO)$/;
const FATAL_CODES = /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EACCES|ERR_INVALID_URL)$/;

/**
 * Turns what fetch threw into a TransientError (a connection that broke or timed out) or a one-line C2vError
 * (nothing listens, the name does not resolve, TLS does not work out). `origin` is where it went, `host` the
 * registry as named, for the `--insecure-registry` hint, which fits only when HTTPS met a plain HTTP server.
 */
export function networkFailure(e: unknown, ctx: { origin: string; host: string; doing: string; given: string; registryOrigin: boolean }): TransientError | C2vError {
  if (e instanceof C2vError || e instanceof TransientError) return e;
  const cause = netCause(e);
  const code = cause?.code ?? 'unknown';
  const detail = cause?.message ? `${code}: ${cause.message.split('\n')[0].slice(0, 160)}` : code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_NONAME' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    const why = code === 'ECONNREFUSED' ? 'connection refused' : code === 'ENOTFOUND' || code === 'EAI_NONAME' ? 'the name does not resolve' : 'the host is unreachable';
    const what = ctx.registryOrigin ? 'registry' : 'server';
    return new C2vError('input', `no ${what} answers at ${ctx.origin}: ${why}; check the address in ${ctx.given} and that the ${what} runs`, { cause: e });
  }
  if (PLAIN_HTTP_CODES.test(code) && ctx.origin.startsWith('https:')) {
    const hint = ctx.registryOrigin ? `: if ${ctx.host} is a plain-HTTP registry you trust, pass --insecure-registry ${ctx.host}` : '';
    return new C2vError('input', `${ctx.origin} does not speak HTTPS (${code})${hint}`, { cause: e });
  }
  if (CERT_CODES.test(code)) {
    return new C2vError('input', `the TLS certificate of ${ctx.origin} is not trusted (${code}): have c2v trust its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem`, { cause: e });
  }
  if (FATAL_CODES.test(code)) return new C2vError('input', `cannot reach ${ctx.origin} while ${ctx.doing} (${detail})`, { cause: e });
  return new TransientError(`the connection to ${ctx.origin} broke (${detail})`, (n) => `the connection to ${ctx.origin} kept breaking while ${ctx.doing} (${detail}; ${n} attempts): check the network and try again`);
}

/** A 5xx or 429 answer: worth another try, then one line. */
export function serverFailure(status: number, ctx: { host: string; doing: string; retryAfter?: string | null }): TransientError {
  const why = status === 429 ? 'too many requests' : `HTTP ${status}`;
  return new TransientError(
    `${ctx.host} answered ${why}`,
    (n) => (status === 429 ? `registry ${ctx.host} kept refusing requests as too many (HTTP 429, ${n} attempts) while ${ctx.doing}: wait and try again, or log in for a higher limit` : `registry ${ctx.host} failed while ${ctx.doing} (HTTP ${status}, ${n} attempts): try again later`),
    retryAfter(ctx.retryAfter ?? null),
  );
}
