import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import type { InputSpec } from '../plan/image.js';

export type { InputSpec };

const FILE_TRANSPORTS = new Set(['docker-archive', 'oci-archive', 'oci']);
const KNOWN_TRANSPORTS = ['docker-daemon', 'docker', ...FILE_TRANSPORTS].join(', ');

const IMAGE_REF = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
/** Dockerfile, Containerfile, app.Dockerfile, Dockerfile.prod: names builders and editors treat as Dockerfiles. */
const DOCKERFILE_NAME = /(^|\.)(dockerfile|containerfile)(\.[^/]*)?$/i;

/** Classifies the input; `pull` is whether a bare reference may be pulled when missing. */
export async function classifyInput(input: string, opts: { pull: boolean }): Promise<InputSpec> {
  const transport = /^([a-z][a-z0-9-]*):(.*)$/.exec(input);
  if (transport && transport[1] === 'docker-daemon') return imageRef(transport[2], false, true, input);
  if (transport && transport[1] === 'docker') {
    if (!transport[2].startsWith('//')) throw new C2vError('input', `"${input}" is not a registry reference: spell it docker://HOST/REPOSITORY:TAG`);
    const ref = transport[2].slice(2);
    if (!IMAGE_REF.test(ref)) throw new C2vError('input', `"${input}" does not name a valid image reference after docker:// (like docker://registry.example:5000/team/app:1.4)`);
    return { kind: 'image', transport: 'docker', explicit: true, ref, pull: true };
  }
  if (transport && FILE_TRANSPORTS.has(transport[1])) return fileImage(transport[1] as 'docker-archive' | 'oci-archive' | 'oci', transport[2], input);
  const s = await stat(input).catch(() => undefined);
  if (!s && transport && !IMAGE_REF.test(input)) {
    throw new C2vError('input', `"${transport[1]}:" is not a transport c2v reads (it reads ${KNOWN_TRANSPORTS}), and "${input}" is neither a file nor an image reference`);
  }
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
 * `PATH[:SELECTOR]`: the path is the longest prefix before a ':' that exists, so a path or a tag may hold
 * colons (`docker-archive:app.tar:app:1.4`).
 */
async function fileImage(transport: 'docker-archive' | 'oci-archive' | 'oci', rest: string, given: string): Promise<InputSpec> {
  const wantDir = transport === 'oci';
  const candidates = [rest, ...[...rest.matchAll(/:/g)].map((m) => rest.slice(0, m.index)).reverse()];
  for (const candidate of candidates) {
    if (!candidate) continue;
    const s = await stat(candidate).catch(() => undefined);
    if (!s) continue;
    if (wantDir !== s.isDirectory()) {
      throw new C2vError('input', `${transport}: takes ${wantDir ? 'a directory (an OCI layout)' : 'a tar file'}, and ${candidate} is ${s.isDirectory() ? 'a directory' : 'a file'}${wantDir ? ': for a tar of a layout use oci-archive:' : ''}`);
    }
    const selector = candidate === rest ? undefined : rest.slice(candidate.length + 1) || undefined;
    return { kind: 'image', transport, explicit: true, ref: given, pull: false, path: path.resolve(candidate), selector };
  }
  throw new C2vError('input', `${given}: ${rest.split(':')[0] || '(empty)'} does not exist: give the path of ${wantDir ? 'an OCI layout directory' : 'a tar file'} after ${transport}:`);
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
  const raw = input.kind === 'dockerfile' ? path.basename(input.contextDir) : 'path' in input ? fileImageName(input.path, input.selector) : repositoryName(input.ref);
  const clean = raw.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return clean || 'appliance';
}

function repositoryName(ref: string): string {
  return (ref.split('@')[0].split('/').pop() ?? 'appliance').split(':')[0];
}

/** The tag's repository when one is picked (`app.tar:team/web:1` -> web), else the file's name without extensions. */
function fileImageName(file: string, selector: string | undefined): string {
  if (selector && !selector.startsWith('@') && IMAGE_REF.test(selector)) return repositoryName(selector);
  return path.basename(file).replace(/(\.(tar|gz|tgz|oci|zst))+$/i, '');
}
