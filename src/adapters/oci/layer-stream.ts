/**
 * One layer's tar, read from its stored blob: the compression told by the first bytes whatever the media type
 * says (gzip, zstd, or none), the stored bytes checked against the blob's digest and the tar against the
 * config's diff_id, and the inflated size bounded. zstd goes through the `zstd` binary (Debian's zstd package):
 * Node 20's zlib has none, and the binary is faster than any JavaScript port.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { C2vError } from '../../errors.js';
import { formatSize } from '../../config/size.js';
import { run } from '../exec.js';
import type { LayerBlob } from './resolved-image.js';

const GZIP = [0x1f, 0x8b];
const ZSTD = [0x28, 0xb5, 0x2f, 0xfd];

export interface LayerReadOptions {
  /** Names the layer in errors: "layer 2 of 3 (sha256:ab12...) of docker-archive:app.tar". */
  label: string;
  /** Refuse a layer that inflates past this many bytes (a compression bomb, or an image larger than the disk). */
  maxBytes?: number;
  /** Stored (compressed) bytes as they are read. */
  onStoredBytes?: (n: number) => void;
}

export type Compression = 'gzip' | 'zstd' | 'none';

export function sniffCompression(head: Buffer): Compression {
  const starts = (magic: number[]): boolean => magic.every((b, i) => head[i] === b);
  if (starts(GZIP)) return 'gzip';
  if (starts(ZSTD)) return 'zstd';
  return 'none';
}

function hasherFor(digest: string, what: string): { update(b: Buffer): void; check(): void } {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new C2vError('input', `${what} has a ${algorithm} digest, which c2v cannot check (sha256 and sha512 only)`);
  }
  const hash = createHash(algorithm);
  return {
    update: (b) => hash.update(b),
    check: () => {
      const got = hash.digest('hex');
      if (got !== hex) throw new C2vError('input', `${what} does not match its digest (expected ${digest}, read ${algorithm}:${got.slice(0, 16)}…): the image is damaged or was changed; fetch or save it again`);
    },
  };
}

/** The layer's uncompressed tar, checked as it is read: the iteration throws at the end if a digest is wrong. */
export async function* readLayer(blob: LayerBlob, opts: LayerReadOptions): AsyncGenerator<Buffer> {
  const stored = await blob.open();
  const storedCheck = blob.digest ? hasherFor(blob.digest, `${opts.label}: the stored blob`) : undefined;
  let storedBytes = 0;
  async function* storedChunks(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of stored as AsyncIterable<Buffer>) {
        storedCheck?.update(chunk);
        storedBytes += chunk.length;
        opts.onStoredBytes?.(chunk.length);
        yield chunk;
      }
    } finally {
      stored.destroy();
    }
    if (blob.size !== undefined && storedBytes !== blob.size) {
      throw new C2vError('input', `${opts.label}: the stored blob has ${storedBytes} bytes where its descriptor says ${blob.size}: the image is truncated or damaged; fetch or save it again`);
    }
    storedCheck?.check();
  }
  const [head, rest] = await peek(storedChunks(), 4);
  const compression = sniffCompression(head);
  const tarCheck = hasherFor(blob.diffId, `${opts.label}: the uncompressed tar (diff_id)`);
  let tarBytes = 0;
  const input = prepend(head, rest);
  const tar = compression === 'gzip' ? gunzip(input, opts.label) : compression === 'zstd' ? unzstd(input, opts.label) : input;
  for await (const chunk of tar) {
    tarBytes += chunk.length;
    if (opts.maxBytes !== undefined && tarBytes > opts.maxBytes) {
      throw new C2vError('input', `${opts.label} inflates past ${formatSize(opts.maxBytes)}, more than the disk can hold: raise --disk-size, or check the image (a layer this large may be a compression bomb)`);
    }
    tarCheck.update(chunk);
    yield chunk;
  }
  tarCheck.check();
}

/** At least `n` bytes from the start (fewer if the stream is shorter), and the iterator positioned after them. */
async function peek(it: AsyncGenerator<Buffer>, n: number): Promise<[Buffer, AsyncGenerator<Buffer>]> {
  const parts: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const next = await it.next();
    if (next.done) break;
    parts.push(next.value);
    len += next.value.length;
  }
  return [Buffer.concat(parts), it];
}

async function* prepend(head: Buffer, rest: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  if (head.length) yield head;
  yield* rest;
}

async function* gunzip(input: AsyncGenerator<Buffer>, label: string): AsyncGenerator<Buffer> {
  const inflater = createGunzip();
  const feeding = pipeline(Readable.from(input, { objectMode: false }), inflater);
  feeding.catch(() => undefined); // seen through the inflater's iteration, or below
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) yield chunk;
    await feeding;
  } catch (e) {
    if (e instanceof C2vError) throw e;
    throw new C2vError('input', `${label} is not valid gzip data (${(e as Error).message}): the image is damaged; fetch or save it again`, { cause: e });
  } finally {
    inflater.destroy();
  }
}

async function* unzstd(input: AsyncGenerator<Buffer>, label: string): AsyncGenerator<Buffer> {
  const child = run('zstd', ['-d', '-c', '-q'], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', buffer: { stdout: false, stderr: true } });
  let exitError: unknown;
  const exited = child.then(
    () => undefined,
    (e: unknown) => void (exitError = e),
  );
  let feedError: unknown;
  const feeding = pipeline(Readable.from(input, { objectMode: false }), child.stdin!).catch((e: unknown) => void (feedError = e));
  try {
    for await (const chunk of child.stdout! as AsyncIterable<Buffer>) yield chunk;
    await Promise.all([exited, feeding]);
    // Our own stream's failure (a digest, a read error) first; zstd then dies of a broken pipe.
    if (feedError instanceof C2vError) throw feedError;
    if (exitError) {
      if (exitError instanceof C2vError && exitError.code === 'tool' && /not installed/.test(exitError.message)) throw exitError;
      throw new C2vError('input', `${label} is not valid zstd data: the image is damaged; fetch or save it again`, { cause: exitError, detail: (exitError as C2vError).detail });
    }
    if (feedError) throw new C2vError('input', `${label} could not be read (${(feedError as Error).message})`, { cause: feedError });
  } finally {
    if (child.exitCode === null) child.kill();
  }
}
