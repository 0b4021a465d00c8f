/**
 * The second pass of flattening: the layers' tars read bottom-up, and each entry the index (flatten-index.ts)
 * says survives copied as the header blocks it was read with, followed by its data. The output is one tar of
 * the final tree, in which every directory comes before what it holds and every hard link after its file.
 */
import { C2vError } from '../../errors.js';
import { TAR_END, encodeEntry, type TarEntry, type TarEntryFields, type TarHandler } from '../tar/index.js';
import { FlattenIndex, layerOf, positionOf, slotAt } from './flatten-index.js';
import { ancestorsOf, classifyLayerName } from './whiteout.js';

export class FlattenMerge {
  /** Directories written so far, from the image or made up for a path whose parents no layer has. */
  private readonly written = new Set<string>();
  private lastParent = '';
  private forward = false;
  private layer = -1;
  private label = '';
  private ordinal = 0;
  entries = 0;

  constructor(
    private readonly index: FlattenIndex,
    private readonly emit: (chunk: Buffer) => void,
  ) {}

  /** The handler for one layer's TarParser; layers go bottom first. */
  layerHandler(layer: number, label: string): TarHandler {
    this.layer = layer;
    this.label = label;
    this.ordinal = 0;
    this.forward = false;
    const pass = (chunk: Buffer): void => {
      if (this.forward) this.emit(chunk);
    };
    return { entry: (e) => this.onEntry(e), data: pass, padding: pass };
  }

  /** The end-of-archive blocks. */
  finish(): void {
    this.emit(TAR_END);
  }

  private onEntry(e: TarEntry): void {
    const at = positionOf(this.layer, this.ordinal++);
    this.forward = false;
    const name = classifyLayerName(e.header.name, this.label);
    if (name.kind !== 'entry' || name.key === '') return;
    const key = name.key;
    const slot = this.index.final.get(key);
    if (e.kind === 'dir') {
      // A directory is written where it first appears, with the header of the newest layer that has it.
      if (slot !== undefined && typeof slot !== 'number' && slot.kind === 'dir' && !this.written.has(key)) this.writeDir(key, slot.raw!);
      return;
    }
    if (slot !== undefined && slotAt(slot) === at) {
      if (typeof slot === 'number' || slot.kind === 'symlink') return this.copy(key, e);
      if (slot.kind === 'file') return; // a hard link that carries its group's data: written at the data's entry
      if (slot.kind === 'hardlink') return this.copy(key, e, { ...fields(e), linkname: slot.linkname! });
      return;
    }
    if (e.kind === 'file') {
      const carrier = this.index.renames.get(`${this.layer}\0${key}`);
      if (carrier !== undefined) this.copy(carrier, e, { ...fields(e), name: carrier });
    }
  }

  private copy(key: string, e: TarEntry, changed?: TarEntryFields): void {
    this.ensureParents(key);
    for (const block of changed ? encodeEntry(changed) : e.raw) this.emit(block);
    this.forward = e.header.size > 0;
    this.entries++;
  }

  private writeDir(key: string, raw: Buffer): void {
    this.ensureParents(key);
    this.emit(raw);
    this.written.add(key);
    this.entries++;
  }

  private ensureParents(key: string): void {
    const slash = key.lastIndexOf('/');
    if (slash === -1) return;
    const parent = key.slice(0, slash);
    if (parent === this.lastParent || this.written.has(parent)) {
      this.lastParent = parent;
      return;
    }
    for (const a of ancestorsOf(key)) {
      if (this.written.has(a)) continue;
      const slot = this.index.final.get(a);
      if (slot !== undefined && typeof slot !== 'number' && slot.kind === 'dir') {
        this.emit(slot.raw!);
      } else if (slot === undefined) {
        // No layer has this directory (a hand-made tar can skip parents): 0755 root, as Docker makes it.
        for (const block of encodeEntry(madeDir(a))) this.emit(block);
      } else {
        throw new C2vError('internal', `${this.label}: ${a} is not a directory in the flattened tree (layer ${layerOf(slotAt(slot))})`);
      }
      this.written.add(a);
      this.entries++;
    }
    this.lastParent = parent;
  }
}

function fields(e: TarEntry): TarEntryFields {
  return { ...e.header, pax: e.pax };
}

function madeDir(key: string): TarEntryFields {
  return { name: `${key}/`, linkname: '', typeflag: '5', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [] };
}
