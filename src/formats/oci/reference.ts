/**
 * Image references as Docker reads them: `[registry/]repository[:tag][@digest]`. A first component with a '.'
 * or a ':', or `localhost`, names a registry; anything else lives on Docker Hub, where one-component names are
 * official images under `library/`.
 */
import { C2vError } from '../../errors.js';

export interface ImageReference {
  /** `docker.io` for Docker Hub, otherwise the host with its port as given. */
  registry: string;
  /** With `library/` added for Docker Hub's official images. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
/** Where Docker Hub's API answers; `docker.io` itself only redirects browsers. */
const DOCKER_HUB_API = 'registry-1.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
export const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

function invalid(given: string, why: string): C2vError {
  return new C2vError('input', `"${given}" is not a valid image reference (${why}): spell it like app:1.4, registry.example:5000/team/app:1.4 or app@sha256:<64 hex digits>`);
}

export function parseReference(given: string): ImageReference {
  let rest = given;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(given, `${digest} is not a digest`);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw invalid(given, `"${tag}" is not a tag`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift()!;
    if (!DOMAIN.test(registry)) throw invalid(given, `"${registry}" is not a registry host`);
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw invalid(given, 'a repository name has lower-case letters, digits and separators only');
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (repository.length > 255) throw invalid(given, 'the repository name is longer than 255 characters');
  return { registry, repository, tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/** The reference in full: registry, repository, tag and digest as known. */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** What the manifest endpoint takes: the digest when pinned, else the tag. */
export function referenceTarget(r: ImageReference): string {
  return r.digest ?? r.tag ?? 'latest';
}

/** The host:port the registry's API answers on. */
export function registryHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

/** Loopback registries may speak plain HTTP without being named in --insecure-registry, as Docker allows. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}

/** The reference in full, for comparing two spellings of it; undefined when it is not a reference. */
export function normalisedReference(ref: string): string | undefined {
  try {
    return formatReference(parseReference(ref));
  } catch {
    return undefined;
  }
}

/**
 * `@N` picks the N-th image of an archive or layout (containers-transports(5)); undefined when the selector is a
 * name. Throws when N is past the end.
 */
export function pickByIndex<T>(list: readonly T[], selector: string, describe: string): T | undefined {
  const m = /^@([0-9]+)$/.exec(selector);
  if (!m) return undefined;
  const item = list[Number(m[1])];
  if (item === undefined) throw new C2vError('input', `${describe} holds ${list.length} images; @${m[1]} is not one of them (they count from @0)`);
  return item;
}
