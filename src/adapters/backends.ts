import createDebug from 'debug';
import { C2vError } from '../errors.js';
import type { InputSpec } from '../plan/image.js';
import type { Platform } from '../formats/oci/manifest.js';
import { parseReference } from '../formats/oci/reference.js';
import { registerCleanup } from './cleanup.js';
import { DockerEngine, dockerBackends } from './docker.js';
import { DEFAULT_KANIKO_IMAGE, KanikoBuilder } from './kaniko.js';
import { TarImageStore } from './oci/tar-image-store.js';
import { makeScratchDir } from './workspace.js';
import type { ImageBackends } from './engine.js';
import { resolveDockerArchive } from './oci/docker-archive.js';
import { LayeredImageSource } from './oci/layered-source.js';
import { resolveOciLayout } from './oci/oci-layout.js';
import type { ResolvedImage } from './oci/resolved-image.js';
import { DirectoryFiles, TarFiles } from './oci/stored-files.js';
import { openRegistryImage } from './registry/image.js';

const debug = createDebug('c2v:backends');

/** What the daemonless sources and the builders need beyond the input. */
export interface BackendContext {
  /** What builds: the engine itself (default), or kaniko run as a container of it. */
  builder?: 'docker' | 'kaniko';
  kanikoImage?: string;
  platform: Platform;
  insecureRegistries: string[];
  /** Where a registry's blobs are cached while the run needs them (removed with the backends). */
  workParent: string;
  /** Refuse a layer that inflates past this (the disk size, when the user fixed one). */
  maxLayerBytes?: number;
  onProgress?: (done: number, total: number) => void;
  onLog?: (line: string) => void;
}

/**
 * The source, builder and janitor an input's form calls for: files and registries are read without an engine
 * (and have no builder); docker-daemon: and Dockerfiles need the engine; a bare reference takes the engine when
 * one answers, else the registry, as the docker CLI would have pulled it.
 */
export async function backendsFor(input: InputSpec, ctx: BackendContext): Promise<ImageBackends> {
  if (ctx.builder === 'kaniko') return kanikoBackends(input, ctx);
  return sourceBackends(input, ctx);
}

async function sourceBackends(input: InputSpec, ctx: BackendContext): Promise<ImageBackends> {
  if (input.kind === 'dockerfile') return dockerBackends();
  switch (input.transport) {
    case 'docker-daemon':
      if (input.explicit) return dockerBackends();
      try {
        return await dockerBackends();
      } catch (e) {
        if (!(e instanceof C2vError) || e.code !== 'engine') throw e;
        debug('no engine (%s): reading %s from its registry', e.message, input.ref);
        return registryBackends(input.ref, input.ref, ctx, e);
      }
    case 'docker':
      return registryBackends(input.ref, `docker://${input.ref}`, ctx);
    case 'docker-archive':
      return layered(() => TarFiles.open(input.path, `docker-archive:${input.path}`).then((files) => resolveDockerArchive(files, input.selector, input.ref)), ctx);
    case 'oci-archive':
      return layered(() => TarFiles.open(input.path, `oci-archive:${input.path}`).then((files) => resolveOciLayout(files, input.selector, ctx.platform, input.ref)), ctx);
    case 'oci':
      return layered(() => resolveOciLayout(new DirectoryFiles(input.path, `oci:${input.path}`), input.selector, ctx.platform, input.ref), ctx);
  }
}

/**
 * kaniko builds in a container of the engine and writes tarballs c2v reads itself, in front of the input's own
 * source. It pulls base images from registries, so an image only the engine holds cannot be its base.
 */
async function kanikoBackends(input: InputSpec, ctx: BackendContext): Promise<ImageBackends> {
  if (input.kind === 'image' && input.transport === 'docker-daemon' && input.explicit) {
    throw new C2vError('usage', `--builder kaniko builds FROM registry images, and ${input.ref} is the engine's: push it to a registry and convert docker://REF, or use --builder docker`);
  }
  const engine = new DockerEngine();
  await engine.ping();
  const inner = input.kind === 'dockerfile' ? undefined : await sourceBackends(input.transport === 'docker-daemon' ? { ...input, transport: 'docker', explicit: true } : input, ctx);
  const store = new TarImageStore(inner?.source, { maxLayerBytes: ctx.maxLayerBytes, onProgress: ctx.onProgress });
  const builder = new KanikoBuilder(store, {
    image: ctx.kanikoImage ?? process.env.C2V_KANIKO_IMAGE ?? DEFAULT_KANIKO_IMAGE,
    workParent: ctx.workParent,
    insecureRegistries: ctx.insecureRegistries,
    engine,
  });
  return {
    source: store,
    builder,
    janitor: engine,
    close: async () => {
      await builder.close();
      await inner?.close?.();
    },
  };
}

function layered(resolve: () => Promise<ResolvedImage>, ctx: BackendContext): ImageBackends {
  const source = new LayeredImageSource(resolve, { maxLayerBytes: ctx.maxLayerBytes, onProgress: ctx.onProgress });
  return { source, close: () => source.close() };
}

/** Blobs are cached in a folder beside the output, made when the image is first read and removed with the backends. */
function registryBackends(ref: string, given: string, ctx: BackendContext, noEngine?: C2vError): ImageBackends {
  const parsed = parseReference(ref);
  let cache: Awaited<ReturnType<typeof makeScratchDir>> | undefined;
  let unregister = (): void => undefined;
  const removeCache = async (): Promise<void> => {
    await cache?.dispose();
    unregister();
  };
  const source = new LayeredImageSource(
    async () => {
      cache = await makeScratchDir(ctx.workParent, '.c2v-blobs-');
      const cacheDir = cache.dir;
      unregister = registerCleanup('blob cache', cache.dispose, cache.disposeSync);
      const opened = openRegistryImage(parsed, given, { platform: ctx.platform, insecureRegistries: ctx.insecureRegistries, cacheDir, onProgress: ctx.onProgress, onLog: ctx.onLog });
      if (!noEngine) return opened;
      // The user may have meant the engine's image: its absence is the first thing to say.
      return opened.catch((e: unknown) => {
        if (!(e instanceof C2vError) || e.code === 'interrupted') throw e;
        throw new C2vError('engine', `${noEngine.message}; reading ${given} from its registry instead failed too: ${e.message}`, { cause: e });
      });
    },
    { maxLayerBytes: ctx.maxLayerBytes, onProgress: ctx.onProgress },
    'registry',
  );
  return {
    source,
    close: async () => {
      await source.close();
      await removeCache();
    },
  };
}
