/**
 * Images a builder wrote as `docker save`-style tarballs (kaniko's --tar-path), each read without an engine, in
 * front of the source the input came from: a run can then look into the built image and the image it was built
 * from alike.
 */
import { C2vError } from '../../errors.js';
import type { ImageInfo, ImageSource, RootfsSource } from '../engine.js';
import { resolveDockerArchive } from './docker-archive.js';
import { LayeredImageSource, type LayeredSourceOptions } from './layered-source.js';
import { TarFiles } from './stored-files.js';

export class TarImageStore implements ImageSource {
  readonly name = 'tarballs';
  private readonly images = new Map<string, { ref: string; source: LayeredImageSource }>();

  constructor(
    private readonly fallback?: ImageSource,
    private readonly opts: LayeredSourceOptions = {},
  ) {}

  /** Reads the tarball's image (its digests checked); returns its id. */
  async add(tarPath: string, ref: string): Promise<string> {
    const source = new LayeredImageSource(() => TarFiles.open(tarPath, `docker-archive:${tarPath}`).then((files) => resolveDockerArchive(files, undefined, ref)), this.opts);
    const info = await source.inspect(ref);
    this.images.set(info.id, { ref, source });
    return info.id;
  }

  async inspect(ref: string): Promise<ImageInfo | undefined> {
    const held = this.images.get(ref) ?? [...this.images.values()].find((i) => i.ref === ref);
    if (held) return held.source.inspect(held.ref);
    return this.fallback?.inspect(ref);
  }

  async openRootfs(imageId: string): Promise<RootfsSource> {
    const held = this.images.get(imageId);
    if (held) return held.source.openRootfs(imageId);
    if (this.fallback) return this.fallback.openRootfs(imageId);
    throw new C2vError('internal', `no tarball holds the image ${imageId}`);
  }
}
