import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import { parseInstructions, stagesOf } from '../plan/dockerfile-stages.js';
import type { ImageBackends, ImageBuilder, ImageInfo, ImageSource, PullingSource } from '../adapters/engine.js';
import type { InputSpec } from './input.js';

export interface AcquireOptions {
  name: string;
  onLog?: (line: string) => void;
  /**
   * For a builder that builds once (kaniko): the context with c2v's packages stage appended, as `c2v prepare`
   * writes it, so the one build yields an image that needs no second one.
   */
  prepare?: (input: Extract<InputSpec, { kind: 'dockerfile' }>) => Promise<{ contextDir: string; dockerfile: string }>;
}

/** The builder an input or step needs, or one line saying there is none. */
export function requireBuilder(backends: ImageBackends, what: string, why = 'none is available'): ImageBuilder {
  if (backends.builder) return backends.builder;
  throw new C2vError('engine', `${what} needs an image builder, and ${why === 'none is available' ? `${why}: run c2v where a Docker engine answers (DOCKER_HOST)` : why}`);
}

function canPull(source: ImageSource): source is PullingSource {
  return typeof (source as PullingSource).pull === 'function';
}

/** The image the input names: built from its Dockerfile, or found in the source (pulled when allowed). */
export async function acquireImage(backends: ImageBackends, input: InputSpec, opts: AcquireOptions): Promise<ImageInfo> {
  let info: ImageInfo | undefined;
  if (input.kind === 'dockerfile') {
    const builder = requireBuilder(backends, `building ${input.dockerfile}`);
    const tag = `c2v-build/${opts.name.toLowerCase()}:latest`;
    const ctx = builder.oneBuild && opts.prepare ? await opts.prepare(input) : input;
    const fromImages = await externalBases(path.join(ctx.contextDir, ctx.dockerfile));
    const id = await builder.build({ contextDir: ctx.contextDir, dockerfile: ctx.dockerfile, tag, fromImages, onLog: opts.onLog });
    info = await builder.source.inspect(id);
    if (info) info = { ...info, ref: tag };
  } else {
    const { source } = backends;
    info = await source.inspect(input.ref);
    if (!info) {
      if (!input.pull || !canPull(source)) {
        const why = input.explicit ? `${input.transport}: names an image the engine already holds` : 'or drop --no-pull';
        throw new C2vError('input', `image ${input.ref} is not present locally: build or pull it first, ${why}`);
      }
      await source.pull(input.ref, opts.onLog);
      info = await source.inspect(input.ref);
    }
  }
  if (!info) throw new C2vError('input', `image ${input.kind === 'image' ? input.ref : input.contextDir} could not be found after acquiring it`);
  if (info.architecture !== 'amd64' || (info.os && info.os !== 'linux')) {
    throw new C2vError('input', `image ${info.ref} is ${info.os}/${info.architecture}; c2v makes x86-64 VMs only: build it for linux/amd64 (docker build --platform linux/amd64)`);
  }
  return info;
}

/** The images a Dockerfile's stages build FROM that are not earlier stages. */
async function externalBases(dockerfile: string): Promise<string[]> {
  const text = await readFile(dockerfile, 'utf8').catch(() => '');
  const aliases = new Set<string>();
  const bases: string[] = [];
  for (const stage of stagesOf(parseInstructions(text))) {
    if (!aliases.has(stage.base.toLowerCase())) bases.push(stage.base);
    if (stage.alias) aliases.add(stage.alias.toLowerCase());
  }
  return bases;
}
