import { stat } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import type { ImageEngine, ImageInfo } from '../adapters/engine.js';

export type InputKind = { kind: 'dockerfile'; contextDir: string; dockerfile: string } | { kind: 'image'; ref: string };

/** A Dockerfile path, a build context directory, or else an image reference. */
export async function classifyInput(input: string): Promise<InputKind> {
  const s = await stat(input).catch(() => undefined);
  if (s?.isFile()) {
    const abs = path.resolve(input);
    return { kind: 'dockerfile', contextDir: path.dirname(abs), dockerfile: path.basename(abs) };
  }
  if (s?.isDirectory()) {
    const dockerfile = path.join(input, 'Dockerfile');
    if (!(await stat(dockerfile).catch(() => undefined))?.isFile()) {
      throw new C2vError('input', `${input} is a directory without a Dockerfile: pass the Dockerfile's path, or an image reference`);
    }
    return { kind: 'dockerfile', contextDir: path.resolve(input), dockerfile: 'Dockerfile' };
  }
  if (input.includes('/') && (input.startsWith('.') || input.startsWith('/') || /Dockerfile/i.test(input))) {
    throw new C2vError('input', `${input} does not exist: pass an existing Dockerfile, build context directory or image reference`);
  }
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/.test(input)) {
    throw new C2vError('input', `"${input}" is neither an existing file or directory nor a valid image reference (like myapp:1.4 or registry.example.com/team/app:tag)`);
  }
  return { kind: 'image', ref: input };
}

/** A VM name from the image reference or the build context's folder: letters, digits, '.', '_', '-'. */
export function defaultName(input: InputKind): string {
  const raw = input.kind === 'image' ? (input.ref.split('@')[0].split('/').pop() ?? 'appliance').split(':')[0] : path.basename(input.contextDir);
  const clean = raw.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return clean || 'appliance';
}

export interface AcquireOptions {
  pull: boolean;
  name: string;
  onLog?: (line: string) => void;
}

export async function acquireImage(engine: ImageEngine, input: InputKind, opts: AcquireOptions): Promise<ImageInfo> {
  let info: ImageInfo | undefined;
  if (input.kind === 'dockerfile') {
    const tag = `c2v-build/${opts.name.toLowerCase()}:latest`;
    const id = await engine.build({ contextDir: input.contextDir, dockerfile: input.dockerfile, tag, onLog: opts.onLog });
    info = await engine.inspect(id);
    if (info) info = { ...info, ref: tag };
  } else {
    info = await engine.inspect(input.ref);
    if (!info) {
      if (!opts.pull) throw new C2vError('input', `image ${input.ref} is not present locally: build or pull it first, or drop --no-pull`);
      await engine.pull(input.ref, opts.onLog);
      info = await engine.inspect(input.ref);
    }
  }
  if (!info) throw new C2vError('input', `image ${input.kind === 'image' ? input.ref : input.contextDir} could not be found after acquiring it`);
  if (info.architecture !== 'amd64' || (info.os && info.os !== 'linux')) {
    throw new C2vError('input', `image ${info.ref} is ${info.os}/${info.architecture}; c2v makes x86-64 VMs only: build it for linux/amd64 (docker build --platform linux/amd64)`);
  }
  return info;
}
