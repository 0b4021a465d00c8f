/**
 * Blobs downloaded into a content-addressed cache, `<cacheDir>/blobs/<algorithm>/<hex>`: written to `<hex>.partial`
 * while hashed, renamed only once the digest matches, so a file under its final name is always whole and verified.
 * A download cut midway goes on from where it stopped when the server honours Range, else starts again.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../../errors.js';
import type { RegistryClient } from './client.js';
import { networkFailure, retrying, TransientError, type RetryPolicy } from './retry.js';

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const FLUSH_BYTES = 1 << 20;

export interface DigestParts {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

/** The algorithm and hex of a digest c2v can verify; anything else (or a hostile path in it) is refused. */
export function splitDigest(digest: string, what: string): DigestParts {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(digest);
  const algorithm = m?.[1];
  if (!m || !algorithm || HEX_LENGTH[algorithm] !== m[2].length) {
    throw new C2vError('input', `${what} has the digest ${digest}, which c2v cannot verify (it knows sha256 and sha512): the image is damaged or too new for c2v`);
  }
  return { algorithm: algorithm as DigestParts['algorithm'], hex: m[2] };
}

export function digestOf(bytes: Buffer, algorithm: DigestParts['algorithm']): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

export interface BlobFetch {
  /** The blob's descriptor. */
  digest: string;
  size: number;
  /** For messages: `layer 2 of 3` or `the configuration`. */
  what: string;
}

export interface FetchContext {
  client: RegistryClient;
  cacheDir: string;
  given: string;
  retry: RetryPolicy;
  onLog?: (line: string) => void;
  signal?: AbortSignal;
  /** Bytes stored since the last call; negative when a download has to start again. */
  onBytes?: (delta: number) => void;
}

export function blobPath(cacheDir: string, parts: DigestParts): string {
  return path.join(cacheDir, 'blobs', parts.algorithm, parts.hex);
}

function writeFailure(e: unknown, file: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new C2vError('space', `no space left for the image download in ${path.dirname(file)}: free space there, or point --workdir at a larger filesystem`, { cause: e });
  }
  return e;
}

/** Downloads one blob unless the cache holds it already; answers the verified file's path. */
export async function fetchBlob(blob: BlobFetch, ctx: FetchContext): Promise<string> {
  const parts = splitDigest(blob.digest, `${blob.what} of ${ctx.given}`);
  const final = blobPath(ctx.cacheDir, parts);
  const cached = await stat(final).catch(() => undefined);
  if (cached?.isFile() && cached.size === blob.size) {
    ctx.onBytes?.(blob.size);
    return final;
  }
  await mkdir(path.dirname(final), { recursive: true });
  const partial = `${final}.partial`;
  const fh = await open(partial, 'w').catch((e: unknown) => {
    throw writeFailure(e, partial);
  });
  const download = new Download(blob, parts, fh, ctx);
  try {
    const doing = `downloading ${blob.what} (${blob.digest}) of ${ctx.given}`;
    await retrying(doing, ctx.retry, () => download.attempt(doing), { onLog: ctx.onLog, signal: ctx.signal });
    const got = download.hash.digest('hex');
    if (got !== parts.hex) {
      throw new C2vError('input', `${blob.what} (${blob.digest}) of ${ctx.given} does not match its digest (the bytes hash to ${parts.algorithm}:${got}): the registry holds a damaged copy; push the image again`);
    }
    await fh.close();
    await rename(partial, final);
    return final;
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw e;
  }
}

/** One blob's bytes so far: how many, their running hash, and where the next write goes. */
class Download {
  hash: Hash;
  private received = 0;
  private written = 0;
  private pending: Buffer[] = [];

  constructor(
    private readonly blob: BlobFetch,
    private readonly parts: DigestParts,
    private readonly fh: FileHandle,
    private readonly ctx: FetchContext,
  ) {
    this.hash = createHash(parts.algorithm);
  }

  async attempt(doing: string): Promise<void> {
    const { blob, ctx } = this;
    // Every byte arrived before the connection broke: nothing left to ask for.
    if (this.received === blob.size && this.received > 0) return;
    const resumeAt = this.received;
    const response = await ctx.client.get(`blobs/${blob.digest}`, resumeAt > 0 ? { range: `bytes=${resumeAt}-` } : {}, doing);
    if (response.status === 404) {
      await response.body?.cancel().catch(() => undefined);
      throw new C2vError('input', `${blob.what} (${blob.digest}) of ${ctx.given} is missing from registry ${ctx.client.registry}: the image there is incomplete; push it again`);
    }
    if (response.status === 416 || (response.status === 206 && contentRangeStart(response) !== resumeAt)) {
      await response.body?.cancel().catch(() => undefined);
      await this.restart();
      throw new TransientError(`${ctx.client.registry} could not resume at byte ${resumeAt}`, (n) => `registry ${ctx.client.registry} could not resume ${blob.what} of ${ctx.given} (${n} attempts): try again later`);
    }
    if (response.status !== 200 && response.status !== 206) throw await ctx.client.failure(response, doing);
    if (response.status === 200 && resumeAt > 0) {
      ctx.onLog?.(`${ctx.client.registry} does not resume downloads; fetching ${blob.what} again from its start`);
      await this.restart();
    }
    await this.take(response, doing);
    if (this.received < blob.size) {
      throw new TransientError(`${blob.what} ended after ${this.received} of ${blob.size} bytes`, (n) => `registry ${ctx.client.registry} kept sending ${blob.what} of ${ctx.given} short (${this.received} of ${blob.size} bytes, ${n} attempts): try again later`);
    }
  }

  /** Hashes and stores the body; on a break, keeps what arrived (it is sound) for the next attempt to go on from. */
  private async take(response: Response, doing: string): Promise<void> {
    const { blob, ctx } = this;
    try {
      if (!response.body) return;
      for await (const chunk of response.body) {
        const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        if (this.received + buf.length > blob.size) {
          await response.body.cancel().catch(() => undefined);
          throw new C2vError('input', `${blob.what} (${blob.digest}) of ${ctx.given} is longer than the ${blob.size} bytes its manifest says: the registry holds a damaged copy; push the image again`);
        }
        this.hash.update(buf);
        this.pending.push(buf);
        this.received += buf.length;
        ctx.onBytes?.(buf.length);
        if (this.received - this.written >= FLUSH_BYTES) await this.flush();
      }
    } catch (e) {
      await this.flush();
      if (e instanceof C2vError || ctx.signal?.aborted) throw e;
      throw networkFailure(e, { origin: new URL(response.url || ctx.client.origin).origin, host: ctx.client.registry, doing, given: ctx.given, registryOrigin: true });
    }
    await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const buf = Buffer.concat(this.pending);
    this.pending = [];
    try {
      await this.fh.write(buf, 0, buf.length, this.written);
    } catch (e) {
      throw writeFailure(e, blobPath(this.ctx.cacheDir, this.parts));
    }
    this.written += buf.length;
  }

  private async restart(): Promise<void> {
    this.ctx.onBytes?.(-this.received);
    this.received = 0;
    this.written = 0;
    this.pending = [];
    this.hash = createHash(this.parts.algorithm);
    await this.fh.truncate(0);
  }
}

/** `Content-Range: bytes 100-999/1000` -> 100. */
function contentRangeStart(response: Response): number | undefined {
  const m = /^bytes\s+([0-9]+)-/.exec(response.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : undefined;
}
