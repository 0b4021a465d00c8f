/**
 * Paths looked up in a flattened tree the way the guest will see them: symlinks in the middle of a path are
 * followed (`/lib` -> `usr/lib` on merged-/usr systems), relative targets from their directory, absolute ones
 * from the image's root, never above it.
 */
import { byteString } from '../tar/index.js';
import type { Slot } from './flatten-index.js';

const MAX_HOPS = 40;

function componentsOf(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

/**
 * The key `path` (UTF-8 text) leads to, or undefined for a symlink loop. With `followLast`, a symlink at the end
 * is followed too. The key need not exist.
 */
export function resolveKey(final: ReadonlyMap<string, Slot>, path: string, followLast: boolean): string | undefined {
  let pending = componentsOf(byteString(path));
  const at: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const [part, ...rest] = pending;
    pending = rest;
    if (part === '..') {
      at.pop();
      continue;
    }
    const key = [...at, part].join('/');
    const slot = final.get(key);
    if (slot !== undefined && typeof slot !== 'number' && slot.kind === 'symlink' && (rest.length > 0 || followLast)) {
      if (++hops > MAX_HOPS) return undefined;
      const target = slot.linkname ?? '';
      if (target.startsWith('/')) at.length = 0;
      pending = [...componentsOf(target), ...rest];
      continue;
    }
    at.push(part);
  }
  return at.join('/');
}

/** Names directly inside directory `key` ('' for the root), as byte strings; a scan, for the few lists c2v needs. */
export function childrenOf(final: ReadonlyMap<string, Slot>, key: string): string[] {
  const prefix = key === '' ? '' : `${key}/`;
  const out: string[] = [];
  for (const k of final.keys()) {
    if (k.startsWith(prefix) && k.length > prefix.length && !k.includes('/', prefix.length)) out.push(k.slice(prefix.length));
  }
  return out;
}
