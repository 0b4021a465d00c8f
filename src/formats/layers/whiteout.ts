/**
 * Layer entry names: normalised to the key the flattened tree uses, refused when they would land outside the
 * root, and read as whiteouts (OCI image spec, "Whiteouts").
 */
import { C2vError } from '../../errors.js';
import { textOf } from '../tar/index.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

export type LayerName =
  | { kind: 'entry'; key: string }
  /** `.wh.NAME`: NAME (and what is below it) is gone from the layers underneath. */
  | { kind: 'whiteout'; key: string }
  /** `.wh..wh..opq`: the directory keeps only what this layer and those above put in it. */
  | { kind: 'opaque'; key: string }
  /** Other `.wh..wh.` names are aufs bookkeeping (hard link directories, locks): nothing in the tree. */
  | { kind: 'ignored' };

function refuse(layer: string, name: string, why: string): C2vError {
  return new C2vError('input', `${layer} holds an entry named ${JSON.stringify(textOf(name))}, ${why}: the image is damaged or hostile; rebuild it with a standard tool`);
}

/**
 * The key of a name in a layer (no leading './', no trailing '/', '' for the root). A name that is absolute or
 * has '..' in it is refused: a layer is applied below the root, and no real builder writes one, except for the
 * root itself, which kaniko writes as '/'.
 */
export function layerKey(name: string, layer: string): string {
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw refuse(layer, name, "with a '..' component");
    parts.push(part);
  }
  if (name.startsWith('/') && parts.length > 0) throw refuse(layer, name, 'an absolute path');
  return parts.join('/');
}

export function classifyLayerName(name: string, layer: string): LayerName {
  const key = layerKey(name, layer);
  const slash = key.lastIndexOf('/');
  const base = key.slice(slash + 1);
  if (!base.startsWith(WHITEOUT_PREFIX)) return { kind: 'entry', key };
  const dir = slash === -1 ? '' : key.slice(0, slash);
  if (base === OPAQUE_MARKER) return { kind: 'opaque', key: dir };
  if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return { kind: 'ignored' };
  const hidden = base.slice(WHITEOUT_PREFIX.length);
  if (hidden === '' || hidden === '.' || hidden === '..') throw refuse(layer, name, `a whiteout of "${hidden}"`);
  return { kind: 'whiteout', key: dir ? `${dir}/${hidden}` : hidden };
}

/** The keys of a key's ancestors, nearest the root first ('a', 'a/b' for 'a/b/c'). */
export function ancestorsOf(key: string): string[] {
  const out: string[] = [];
  for (let i = key.indexOf('/'); i !== -1; i = key.indexOf('/', i + 1)) out.push(key.slice(0, i));
  return out;
}
