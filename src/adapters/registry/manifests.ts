/**
 * From a reference to one platform's image manifest: the tag or digest first, then down through indexes (nested
 * ones too) by digest. A manifest named by digest, the user's or an index's, is checked against it.
 */
import { C2vError } from '../../errors.js';
import { formatPlatform, isIndexType, MANIFEST_ACCEPT, parseManifest, selectManifest, type Descriptor, type Platform } from '../../formats/oci/manifest.js';
import { referenceTarget, type ImageReference } from '../../formats/oci/reference.js';
import { readLimited } from './auth.js';
import { digestOf, splitDigest } from './blobs.js';
import type { RegistryClient } from './client.js';
import { networkFailure, retrying, type RetryPolicy } from './retry.js';

/** containerd's limit too: a manifest is a few KiB, an index of many platforms a few hundred. */
const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_INDEX_DEPTH = 4;

export interface ManifestContext {
  client: RegistryClient;
  given: string;
  retry: RetryPolicy;
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ImageManifest {
  /** The digest the image manifest was fetched by or checked against; undefined for a tag's own manifest. */
  digest?: string;
  config: Descriptor;
  layers: Descriptor[];
}

interface Expected {
  digest: string;
  size?: number;
  mediaType?: string;
  /** For messages: `the linux/arm64 manifest`. */
  what: string;
  /** Named by an index, so a 404 means the image is incomplete rather than absent. */
  fromIndex?: boolean;
}

async function fetchManifest(target: string, expected: Expected | undefined, ctx: ManifestContext): Promise<{ bytes: Buffer; type?: string }> {
  const { client, given } = ctx;
  const what = expected?.what ?? 'the manifest';
  const doing = `fetching ${what} of ${given}`;
  return retrying(
    doing,
    ctx.retry,
    async () => {
      const response = await client.get(`manifests/${target}`, { accept: MANIFEST_ACCEPT }, doing);
      if (response.status === 404) {
        await response.body?.cancel().catch(() => undefined);
        if (expected?.fromIndex) {
          throw new C2vError('input', `${what} (${target}) of ${given} is missing from registry ${client.registry}: the image there is incomplete; push it again`);
        }
        throw new C2vError('input', `image ${given} not found in ${client.registry}: check the repository name and the tag or digest`);
      }
      if (response.status !== 200) throw await client.failure(response, doing);
      let bytes: Buffer;
      try {
        bytes = await readLimited(response, MAX_MANIFEST_BYTES);
      } catch (e) {
        if (e instanceof C2vError || ctx.signal?.aborted) throw e;
        throw networkFailure(e, { origin: client.origin, host: client.registry, doing, given, registryOrigin: true });
      }
      return { bytes, type: response.headers.get('content-type')?.split(';')[0].trim() || undefined };
    },
    { onLog: ctx.onLog, signal: ctx.signal },
  );
}

function verify(bytes: Buffer, expected: Expected, given: string): void {
  const { algorithm } = splitDigest(expected.digest, `${expected.what} of ${given}`);
  const got = digestOf(bytes, algorithm);
  if (got !== expected.digest) {
    throw new C2vError('input', `${expected.what} of ${given} does not match its digest ${expected.digest} (the registry sent bytes hashing to ${got}): the registry holds a damaged copy, or the digest is wrong`);
  }
  if (expected.size !== undefined && expected.size !== bytes.length) {
    throw new C2vError('input', `${expected.what} of ${given} is ${bytes.length} bytes where its index says ${expected.size}: the image is damaged; push it again`);
  }
}

export async function resolveManifest(ref: ImageReference, platform: Platform, ctx: ManifestContext): Promise<ImageManifest> {
  let target = referenceTarget(ref);
  let expected: Expected | undefined = ref.digest ? { digest: ref.digest, what: 'the manifest' } : undefined;
  for (let depth = 0; depth <= MAX_INDEX_DEPTH; depth++) {
    const { bytes, type } = await fetchManifest(target, expected, ctx);
    if (expected) verify(bytes, expected, ctx.given);
    const where = `${expected?.what ?? 'the manifest'} of ${ctx.given}`;
    const manifest = parseManifest(bytes, where, type ?? expected?.mediaType);
    if (manifest.kind === 'image') return { digest: expected?.digest, config: manifest.config, layers: manifest.layers };
    const chosen = selectManifest(manifest.manifests, platform, `the index of ${ctx.given}`);
    const label = chosen.platform ? formatPlatform(chosen.platform) : formatPlatform(platform);
    ctx.onLog?.(`${ctx.given}: taking the ${label} entry of its index (${chosen.digest})`);
    target = chosen.digest;
    expected = { digest: chosen.digest, size: chosen.size, mediaType: chosen.mediaType, what: isIndexType(chosen.mediaType) ? `the ${label} index` : `the ${label} manifest`, fromIndex: true };
  }
  throw new C2vError('input', `the index of ${ctx.given} nests indexes more than ${MAX_INDEX_DEPTH} deep: the image is damaged or not an image`);
}
