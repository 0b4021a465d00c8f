import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import type { InputSpec } from '../plan/image.js';

export type { InputSpec };

/** Transports the spelling knows that c2v does not read yet, with what to do instead. */
const NOT_YET: Record<string, string> = {
  'docker-archive': 'load it into the engine first (docker load -i FILE) and convert the image it names',
  'oci-archive': 'load it into the engine first (skopeo copy oci-archive:FILE docker-daemon:NAME:TAG) and convert NAME:TAG',
  oci: 'copy it into the engine first (skopeo copy oci:DIR docker-daemon:NAME:TAG) and convert NAME:TAG',
  docker: 'pull it with the engine instead: c2v convert REF (without docker://) pulls a missing image',
};

const IMAGE_REF = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
/** Dockerfile, Containerfile, app.Dockerfile, Dockerfile.prod: names builders and editors treat as Dockerfiles. */
const DOCKERFILE_NAME = /(^|\.)(dockerfile|containerfile)(\.[^/]*)?$/i;

/** Classifies the input; `pull` is whether a bare reference may be pulled when missing. */
export async function classifyInput(input: string, opts: { pull: boolean }): Promise<InputSpec> {
  const transport = /^([a-z][a-z0-9-]*):(.*)$/.exec(input);
  if (transport && transport[1] === 'docker-daemon') return imageRef(transport[2], false, true, input);
  if (transport && transport[1] in NOT_YET) {
    throw new C2vError('input', `${transport[1]}: inputs are not supported yet: ${NOT_YET[transport[1]]}`);
  }
  const s = await stat(input).catch(() => undefined);
  if (s?.isFile()) {
    const abs = path.resolve(input);
    if (!DOCKERFILE_NAME.test(path.basename(abs)) && !(await looksLikeDockerfile(abs))) {
      throw new C2vError('input', `${input} is a file but not a Dockerfile (its first instruction is not FROM or ARG): pass a Dockerfile, a build context directory or an image reference`);
    }
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
  return imageRef(input, opts.pull, false, input);
}

function imageRef(ref: string, pull: boolean, explicit: boolean, given: string): InputSpec {
  if (!IMAGE_REF.test(ref)) {
    throw new C2vError('input', `"${given}" is neither an existing file or directory nor a valid image reference (like myapp:1.4 or registry.example.com/team/app:tag)`);
  }
  return { kind: 'image', transport: 'docker-daemon', explicit, ref, pull };
}

/**
 * A file of another name is a Dockerfile when its first instruction (after comments, parser directives and
 * blank lines) is FROM or ARG, as a builder requires. A tar or any binary file fails this at once.
 */
async function looksLikeDockerfile(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead);
    if (text.includes(0)) return false;
    for (const raw of text.toString('utf8').split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      return /^(from|arg)\s/i.test(line);
    }
    return false;
  } finally {
    await fh.close();
  }
}

/** A VM name from the image reference or the build context's folder: letters, digits, '.', '_', '-'. */
export function defaultName(input: InputSpec): string {
  const raw = input.kind === 'image' ? (input.ref.split('@')[0].split('/').pop() ?? 'appliance').split(':')[0] : path.basename(input.contextDir);
  const clean = raw.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return clean || 'appliance';
}
