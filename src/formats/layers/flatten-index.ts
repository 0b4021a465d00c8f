/**
 * Where each path of a flattened image comes from, found by reading the layers' headers once, newest layer first
 * (OCI image spec, "Applying changesets", read from the top): a path set by an upper layer is final, whiteouts
 * and opaque markers hide only what lies below the layer that holds them, and a path whose ancestor an upper
 * layer made a non-directory is gone. Reading top-down means nothing once placed is ever taken back, so the index
 * holds the survivors and a few sets, never file contents.
 *
 * The second pass (flatten-merge.ts) streams the layers bottom-up and copies each entry the index says survives.
 */
import { C2vError } from '../../errors.js';
import { textOf, type TarEntry, type TarKind } from '../tar/index.js';
import { ancestorsOf, classifyLayerName, layerKey } from './whiteout.js';

/** An entry position: layer number times this, plus the entry's ordinal in its layer's tar. */
const LAYER_STRIDE = 2 ** 26;
export const MAX_ENTRIES_PER_LAYER = LAYER_STRIDE - 1;

/**
 * A survivor that needs more than its position: a directory (its header is written where the directory first
 * appears, which may be a lower layer), a symlink (paths are resolved through it), a hard link (its target may
 * have changed). Regular files and devices are stored as their bare position, to keep 1 million paths small.
 */
export interface Placed {
  at: number;
  kind: TarKind;
  /** Symlink: its target as stored; hard link: the key of the surviving file it shares an inode with. */
  linkname?: string;
  /** Directory: its header blocks as read (from the newest layer that has it). */
  raw?: Buffer;
  /**
   * A hard link whose original path did not survive: it becomes the regular file, and its data is the entry with
   * this key in the same layer.
   */
  dataFrom?: string;
}

export type Slot = number | Placed;

export function positionOf(layer: number, ordinal: number): number {
  return layer * LAYER_STRIDE + ordinal;
}

export function layerOf(at: number): number {
  return Math.floor(at / LAYER_STRIDE);
}

export function ordinalOf(at: number): number {
  return at % LAYER_STRIDE;
}

export function slotAt(slot: Slot): number {
  return typeof slot === 'number' ? slot : slot.at;
}

interface LinkGroup {
  layer: number;
  size: number;
  members: { key: string; at: number }[];
}

export class FlattenIndex {
  /** Every surviving path, by key. */
  readonly final = new Map<string, Slot>();
  /** Hard-link groups whose original path did not survive: `layer\0key` of the original -> the key that carries the data. */
  readonly renames = new Map<string, string>();
  /** Bytes of regular-file data in the flattened tree. */
  sizeBytes = 0;

  private readonly whiteouts = new Set<string>();
  private readonly opaque = new Set<string>();
  private pendingWhiteouts: string[] = [];
  private pendingOpaque: string[] = [];
  /** Regular files of the current layer that do not survive, with their sizes: hard links may still need them. */
  private lostFiles = new Map<string, number>();
  private readonly groups = new Map<string, LinkGroup>();
  private layer = -1;
  private label = '';
  private ordinal = 0;

  /** Layers are read newest first: the caller counts down from the top layer. */
  beginLayer(layer: number, label: string): void {
    if (this.layer !== -1 && layer >= this.layer) throw new C2vError('internal', 'layers must be indexed newest first');
    this.layer = layer;
    this.label = label;
    this.ordinal = 0;
    this.lostFiles = new Map();
  }

  add(e: TarEntry): void {
    const ordinal = this.ordinal++;
    if (ordinal > MAX_ENTRIES_PER_LAYER) throw new C2vError('input', `${this.label} holds more than ${MAX_ENTRIES_PER_LAYER} entries, more than c2v can index`);
    const name = classifyLayerName(e.header.name, this.label);
    if (name.kind === 'ignored') return;
    if (name.kind === 'whiteout') return void this.pendingWhiteouts.push(name.key);
    if (name.kind === 'opaque') return void this.pendingOpaque.push(name.key);
    const key = name.key;
    if (key === '') return; // the root's own entry: mke2fs makes the root, owned as the pipeline says
    const at = positionOf(this.layer, ordinal);
    if (this.hidden(key)) {
      if (e.kind === 'file') this.lostFiles.set(key, e.header.size);
      return;
    }
    const upper = this.final.get(key);
    if (upper !== undefined) {
      // An upper layer has this path. A directory over a directory changes attributes only: the upper header wins,
      // written where the directory first appears (flatten-merge.ts). Anything else was replaced.
      if (e.kind === 'file') this.lostFiles.set(key, e.header.size);
      return;
    }
    switch (e.kind) {
      case 'dir':
        this.final.set(key, { at, kind: 'dir', raw: Buffer.concat(e.raw) });
        return;
      case 'symlink':
        this.final.set(key, { at, kind: 'symlink', linkname: e.header.linkname });
        return;
      case 'hardlink':
        this.addHardlink(key, at, e);
        return;
      case 'file':
        this.sizeBytes += e.header.size;
        this.final.set(key, at);
        return;
      default:
        this.final.set(key, at);
    }
  }

  endLayer(): void {
    for (const key of this.pendingWhiteouts) this.whiteouts.add(key);
    for (const key of this.pendingOpaque) this.opaque.add(key);
    this.pendingWhiteouts = [];
    this.pendingOpaque = [];
    this.lostFiles = new Map();
  }

  /**
   * After the last (bottom) layer: a hard-link group whose original path is gone carries on in its first
   * surviving link, which becomes the regular file; the other links point at it.
   */
  finish(): void {
    for (const [id, group] of this.groups) {
      const [carrier, ...rest] = group.members;
      const dataFrom = id.slice(id.indexOf('\0') + 1);
      this.final.set(carrier.key, { at: carrier.at, kind: 'file', dataFrom });
      this.renames.set(id, carrier.key);
      this.sizeBytes += group.size;
      for (const m of rest) this.final.set(m.key, { at: m.at, kind: 'hardlink', linkname: carrier.key });
    }
    this.groups.clear();
  }

  get entries(): number {
    return this.final.size;
  }

  private addHardlink(key: string, at: number, e: TarEntry): void {
    let target = layerKey(e.header.linkname, this.label);
    const original = this.final.get(target);
    if (original !== undefined && layerOf(slotAt(original)) === this.layer) {
      // A link to a link of the same layer (not what tar writes, but readable): share the first one's inode.
      if (typeof original !== 'number' && original.kind === 'hardlink') target = original.linkname!;
      else if (typeof original !== 'number' && original.kind !== 'file') throw this.badLink(key, e, 'which is not a regular file');
      this.final.set(key, { at, kind: 'hardlink', linkname: target });
      return;
    }
    const size = this.lostFiles.get(target);
    if (size === undefined) throw this.badLink(key, e, 'which the layer does not hold before the link');
    const id = `${this.layer}\0${target}`;
    const group = this.groups.get(id) ?? { layer: this.layer, size, members: [] };
    group.members.push({ key, at });
    this.groups.set(id, group);
    // Placeholder until finish(): a path taken here must not be taken by a lower layer.
    this.final.set(key, { at, kind: 'hardlink', linkname: target });
  }

  private badLink(key: string, e: TarEntry, why: string): C2vError {
    return new C2vError('input', `${this.label}: hard link ${JSON.stringify(textOf(key))} points to ${JSON.stringify(textOf(e.header.linkname))}, ${why}: the image is damaged; rebuild it`);
  }

  /** Whether an upper layer's whiteout, opaque marker or non-directory hides `key` from this layer. */
  private hidden(key: string): boolean {
    const checkMarkers = this.whiteouts.size > 0 || this.opaque.size > 0;
    if (checkMarkers && (this.whiteouts.has(key) || this.opaque.has(''))) return true;
    for (const a of ancestorsOf(key)) {
      if (checkMarkers && (this.whiteouts.has(a) || this.opaque.has(a))) return true;
      const upper = this.final.get(a);
      if (upper !== undefined && (typeof upper === 'number' || upper.kind !== 'dir')) return true;
    }
    return false;
  }
}
