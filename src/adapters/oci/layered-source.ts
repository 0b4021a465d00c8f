/**
 * An image read without an engine, as an ImageSource: its layers indexed once (every digest checked on the way),
 * then flattened into one tar stream as often as a stage asks for the file system. Small files (os-release) are
 * read from the layer that holds them.
 */
import { Readable } from 'node:stream';
import { C2vError } from '../../errors.js';
import { TarParser, readBody, readTar, textOf, type TarHandler } from '../../formats/tar/index.js';
import { FlattenIndex, layerOf, ordinalOf, slotAt } from '../../formats/layers/flatten-index.js';
import { FlattenMerge } from '../../formats/layers/flatten-merge.js';
import { childrenOf, resolveKey } from '../../formats/layers/tree-paths.js';
import { classifyLayerName } from '../../formats/layers/whiteout.js';
import { imageInfoOf } from '../../formats/oci/image-config.js';
import type { ImageInfo, ImageSource, RootfsSource } from '../engine.js';
import { readLayer } from './layer-stream.js';
import type { ResolvedImage } from './resolved-image.js';

export interface LayeredSourceOptions {
  /** Refuse a layer that inflates past this (the disk size, when the user fixed one). */
  maxLayerBytes?: number;
  /** While indexing: stored bytes read so far of all layers' total. */
  onProgress?: (done: number, total: number) => void;
}

const MAX_SMALL_FILE = 16 * 1024 * 1024;

export class LayeredImageSource implements ImageSource {
  readonly name: string;
  private image: Promise<ResolvedImage> | undefined;
  private indexed: Promise<FlattenIndex> | undefined;

  constructor(
    private readonly resolve: () => Promise<ResolvedImage>,
    private readonly opts: LayeredSourceOptions = {},
    name = 'daemonless',
  ) {
    this.name = name;
  }

  /** The one image this source holds, whatever `ref` spells (the input's own spelling or its id). */
  async inspect(ref: string): Promise<ImageInfo> {
    const image = await this.opened();
    const index = await this.index();
    return imageInfoOf(image.config, { id: image.id, ref: ref === image.id ? image.ref : ref, sizeBytes: index.sizeBytes });
  }

  async openRootfs(imageId: string): Promise<RootfsSource> {
    const image = await this.opened();
    if (imageId !== image.id) throw new C2vError('internal', `the ${this.name} source holds ${image.id}, not ${imageId}`);
    const index = await this.index();
    return new IndexedRootfs(image, index, this.opts.maxLayerBytes);
  }

  async close(): Promise<void> {
    const image = await this.image?.catch(() => undefined);
    await image?.close();
  }

  private opened(): Promise<ResolvedImage> {
    this.image ??= this.resolve();
    return this.image;
  }

  private index(): Promise<FlattenIndex> {
    this.indexed ??= this.opened().then((image) => indexLayers(image, this.opts));
    return this.indexed;
  }
}

function layerLabel(image: ResolvedImage, i: number): string {
  return `layer ${i + 1} of ${image.layers.length} (${(image.layers[i].digest ?? image.layers[i].diffId).slice(0, 19)}…) of ${image.ref}`;
}

/** Pass 1: every layer's headers, newest first; data is read (for the digests) but not kept. */
async function indexLayers(image: ResolvedImage, opts: LayeredSourceOptions): Promise<FlattenIndex> {
  const index = new FlattenIndex();
  const total = image.layers.reduce((n, l) => n + (l.size ?? 0), 0);
  let done = 0;
  for (let i = image.layers.length - 1; i >= 0; i--) {
    const label = layerLabel(image, i);
    index.beginLayer(i, label);
    await parseLayer(image, i, label, { entry: (e) => index.add(e) }, opts.maxLayerBytes, (n) => opts.onProgress?.((done += n), total));
    index.endLayer();
  }
  index.finish();
  return index;
}

async function parseLayer(image: ResolvedImage, i: number, label: string, handler: TarHandler, maxBytes?: number, onStoredBytes?: (n: number) => void): Promise<void> {
  const parser = new TarParser(handler, { source: label, endMarkerOptional: true });
  for await (const chunk of readLayer(image.layers[i], { label, maxBytes, onStoredBytes })) parser.write(chunk);
  parser.end();
}

/** Pass 2: the flattened tree as one tar, layers bottom-up, chunks batched per chunk of input. */
function flattenedTar(image: ResolvedImage, index: FlattenIndex, maxBytes?: number): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    let out: Buffer[] = [];
    const merge = new FlattenMerge(index, (b) => out.push(b));
    for (let i = 0; i < image.layers.length; i++) {
      const label = layerLabel(image, i);
      const parser = new TarParser(merge.layerHandler(i, label), { source: label, endMarkerOptional: true });
      for await (const chunk of readLayer(image.layers[i], { label, maxBytes })) {
        parser.write(chunk);
        if (out.length > 0) {
          yield out.length === 1 ? out[0] : Buffer.concat(out);
          out = [];
        }
      }
      parser.end();
    }
    merge.finish();
    yield Buffer.concat(out);
  }
  return Readable.from(chunks(), { objectMode: false });
}

class IndexedRootfs implements RootfsSource {
  constructor(
    private readonly image: ResolvedImage,
    private readonly index: FlattenIndex,
    private readonly maxBytes?: number,
  ) {}

  async readFile(path: string): Promise<Buffer | undefined> {
    const key = resolveKey(this.index.final, path, true);
    const slot = key === undefined ? undefined : this.index.final.get(key);
    if (slot === undefined) return undefined;
    if (typeof slot !== 'number' && slot.kind !== 'file' && slot.kind !== 'hardlink') return undefined;
    const at = slotAt(slot);
    // A hard link's data is at its file's entry; a link group's carrier takes the data of the path it replaces.
    const dataKey = typeof slot === 'number' ? undefined : slot.kind === 'hardlink' ? slot.linkname : slot.dataFrom;
    if (dataKey !== undefined && typeof slot !== 'number' && slot.kind === 'hardlink') return this.readFile(textOf(dataKey));
    return this.readEntry(layerOf(at), dataKey === undefined ? { ordinal: ordinalOf(at) } : { key: dataKey });
  }

  async listDir(path: string): Promise<string[]> {
    const key = resolveKey(this.index.final, path, true);
    return key === undefined ? [] : childrenOf(this.index.final, key).map(textOf);
  }

  async exists(path: string): Promise<boolean> {
    const key = resolveKey(this.index.final, path, false);
    return key !== undefined && (key === '' || this.index.final.has(key));
  }

  async export(): Promise<Readable> {
    return flattenedTar(this.image, this.index, this.maxBytes);
  }

  async release(): Promise<void> {
    /* nothing is held between reads */
  }

  private async readEntry(layer: number, want: { ordinal: number } | { key: string }): Promise<Buffer | undefined> {
    const label = layerLabel(this.image, layer);
    let ordinal = 0;
    for await (const entry of readTar(readLayer(this.image.layers[layer], { label }), { source: label, endMarkerOptional: true })) {
      const here = ordinal++;
      const hit = 'ordinal' in want ? here === want.ordinal : entryKey(entry.header.name, label) === want.key;
      if (!hit) continue;
      return entry.kind === 'file' ? readBody(entry, MAX_SMALL_FILE) : undefined;
    }
    return undefined;
  }
}

function entryKey(name: string, label: string): string | undefined {
  const n = classifyLayerName(name, label);
  return n.kind === 'entry' ? n.key : undefined;
}
