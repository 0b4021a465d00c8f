import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import type { InputSpec } from '../plan/image.js';
import type { Platform } from '../formats/oci/manifest.js';
import { parseReference } from '../formats/oci/reference.js';
import { registerCleanup } from './cleanup.js';
import { dockerBackends } from './docker.js';
import type { ImageBackends } from './engine.js';
import { resolveDockerArchive } from './oci/docker-archive.js';
import { LayeredImageSource } from './oci/layered-source.js';
import { resolveOciLayout } from './oci/oci-layout.js';
import type { ResolvedImage } from './oci/resolved-image.js';
import { DirectoryFiles, TarFiles } from './oci/stored-files.js';
import { openRegistryImage } from './registry/image.js';

const debug = createDebug('c2v:backends');

/** What the daemonless sources need beyond the input. */
export interface BackendContext {
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

function layered(resolve: () => Promise<ResolvedImage>, ctx: BackendContext): ImageBackends {
  const source = new LayeredImageSource(resolve, { maxLayerBytes: ctx.maxLayerBytes, onProgress: ctx.onProgress });
  return { source, close: () => source.close() };
}

/** Blobs are cached in a folder beside the output, made when the image is first read and removed with the backends. */
function registryBackends(ref: string, given: string, ctx: BackendContext, noEngine?: C2vError): ImageBackends {
  const parsed = parseReference(ref);
  let cacheDir: string | undefined;
  let unregister = (): void => undefined;
  const removeCache = async (): Promise<void> => {
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
    unregister();
  };
  const source = new LayeredImageSource(
    async () => {
      cacheDir = await mkdtemp(path.join(ctx.workParent, '.c2v-blobs-'));
      const dir = cacheDir;
      unregister = registerCleanup('blob cache', () => rm(dir, { recursive: true, force: true }), () => rmSync(dir, { recursive: true, force: true }));
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
