/**
 * An image straight from a registry, without an engine: the manifest for the platform, the configuration, and
 * every layer downloaded into the content-addressed cache and verified before the image is handed on.
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { C2vError } from '../../errors.js';
import { parseImageConfig } from '../../formats/oci/image-config.js';
import { formatPlatform, MEDIA, type Descriptor, type Platform } from '../../formats/oci/manifest.js';
import type { ImageReference } from '../../formats/oci/reference.js';
import type { LayerBlob, ResolvedImage } from '../oci/resolved-image.js';
import { fetchBlob, type FetchContext } from './blobs.js';
import { RegistryClient } from './client.js';
import { resolveManifest } from './manifests.js';
import { DEFAULT_RETRY } from './retry.js';

export interface RegistryOptions {
  platform: Platform;
  /** Hosts (host[:port]) spoken to in plain HTTP besides loopback ones. */
  insecureRegistries: string[];
  /** Blobs land in <cacheDir>/blobs/sha256/<hex>; created if missing. The caller removes it. */
  cacheDir: string;
  /** DOCKER_CONFIG, REGISTRY_AUTH_FILE, HOME and PATH (for credential helpers); process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** Over all layers' bytes, a few calls a second at most. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  onLog?: (line: string) => void;
  retry?: { attempts: number; baseDelayMs: number };
  /** Stops the downloads (an interrupt); what was cut short is removed. */
  signal?: AbortSignal;
}

const LAYER_TYPES = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.diff.tar.zstd',
]);
const CONFIG_TYPES = new Set<string>([MEDIA.ociConfig, MEDIA.dockerConfig]);
const MAX_CONFIG_BYTES = 16 << 20;
const PARALLEL_LAYERS = 3;
const PROGRESS_INTERVAL_MS = 250;

function checkLayerTypes(layers: Descriptor[], given: string): void {
  layers.forEach((d, i) => {
    const which = `layer ${i + 1} of ${layers.length} (${d.digest}) of ${given}`;
    if (/nondistributable|foreign/.test(d.mediaType) || (d.urls && d.urls.length > 0)) {
      throw new C2vError('input', `${which} is a foreign layer (${d.mediaType}) that registries do not serve, so c2v cannot fetch it: convert an image without foreign layers (Linux images have none)`);
    }
    if (!LAYER_TYPES.has(d.mediaType)) {
      throw new C2vError('input', `${which} has media type ${d.mediaType}, which is not a file system layer c2v reads (tar, tar+gzip, tar+zstd): c2v converts container images only`);
    }
  });
}

/** Reports at most every PROGRESS_INTERVAL_MS, and always the start and the end. */
function progressMeter(total: number, onProgress?: (done: number, total: number) => void): { add(delta: number): void; finish(): void } {
  let done = 0;
  let last = 0;
  onProgress?.(0, total);
  return {
    add(delta) {
      done += delta;
      const now = Date.now();
      if (onProgress && now - last >= PROGRESS_INTERVAL_MS) {
        last = now;
        onProgress(Math.max(0, Math.min(done, total)), total);
      }
    },
    finish() {
      onProgress?.(total, total);
    },
  };
}

/** Runs `jobs` PARALLEL_LAYERS at a time; the first failure stops the rest (`abort`) and is the one thrown. */
async function inParallel<T>(jobs: (() => Promise<T>)[], abort: () => void): Promise<T[]> {
  const results: T[] = new Array<T>(jobs.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < jobs.length) {
      const i = next++;
      try {
        results[i] = await jobs[i]();
      } catch (e) {
        if (!failure) {
          failure = { error: e };
          abort();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_LAYERS, jobs.length) }, worker));
  if (failure) throw failure.error;
  return results;
}

export async function openRegistryImage(ref: ImageReference, given: string, opts: RegistryOptions): Promise<ResolvedImage> {
  const stop = new AbortController();
  const onOuterAbort = () => stop.abort();
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  try {
    return await pullImage(ref, given, opts, stop);
  } catch (e) {
    if (opts.signal?.aborted) throw new C2vError('interrupted', `the download of ${given} was interrupted`, { cause: e });
    throw e;
  } finally {
    opts.signal?.removeEventListener('abort', onOuterAbort);
  }
}

async function pullImage(ref: ImageReference, given: string, opts: RegistryOptions, stop: AbortController): Promise<ResolvedImage> {
  const env = opts.env ?? process.env;
  const retry = opts.retry ?? DEFAULT_RETRY;
  const client = new RegistryClient({ registry: ref.registry, repository: ref.repository, given, insecureRegistries: opts.insecureRegistries, env, onLog: opts.onLog, signal: stop.signal });
  opts.onLog?.(`pulling ${given} (${formatPlatform(opts.platform)}) from ${client.origin}`);
  const ctx = { client, given, retry, onLog: opts.onLog, signal: stop.signal };
  const manifest = await resolveManifest(ref, opts.platform, ctx);

  if (!CONFIG_TYPES.has(manifest.config.mediaType)) {
    throw new C2vError('input', `${given} is not a container image (its configuration has media type ${manifest.config.mediaType}): c2v converts container images only`);
  }
  checkLayerTypes(manifest.layers, given);
  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new C2vError('input', `the configuration of ${given} is ${manifest.config.size} bytes, far more than an image configuration takes: the image is damaged`);
  }

  const fetchCtx: FetchContext = { ...ctx, cacheDir: opts.cacheDir };
  const configFile = await fetchBlob({ digest: manifest.config.digest, size: manifest.config.size, what: 'the configuration' }, fetchCtx);
  const config = parseImageConfig(await readFile(configFile), `the configuration of ${given}`);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new C2vError('input', `${given} lists ${manifest.layers.length} layers in its manifest but ${diffIds.length} in its configuration: the image is damaged; push it again`);
  }
  if (config.os !== opts.platform.os || config.architecture !== opts.platform.architecture) {
    opts.onLog?.(`${given} is built for ${config.os}/${config.architecture}${config.variant ? `/${config.variant}` : ''}, not ${formatPlatform(opts.platform)}`);
  }

  // A layer listed twice (the same empty layer, say) is downloaded once and counted once.
  const unique = [...new Map(manifest.layers.map((d, i) => [d.digest, { d, i }])).values()];
  const meter = progressMeter(
    unique.reduce((sum, u) => sum + u.d.size, 0),
    opts.onProgress,
  );
  const files = await inParallel(
    unique.map(({ d, i }) => () => fetchBlob({ digest: d.digest, size: d.size, what: `layer ${i + 1} of ${manifest.layers.length}` }, { ...fetchCtx, onBytes: (n) => meter.add(n) })),
    () => stop.abort(),
  );
  meter.finish();
  const fileOf = new Map(unique.map((u, k) => [u.d.digest, files[k]]));

  const layers: LayerBlob[] = manifest.layers.map((d, i) => {
    const file = fileOf.get(d.digest)!;
    return { digest: d.digest, diffId: diffIds[i], size: d.size, open: async () => createReadStream(file) };
  });
  opts.onLog?.(`pulled ${given}: ${layers.length} layer${layers.length === 1 ? '' : 's'}, image ${manifest.config.digest}`);
  return { id: manifest.config.digest, ref: given, config, layers, close: async () => undefined };
}
