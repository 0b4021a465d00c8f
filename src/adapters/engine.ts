import type { Readable } from 'node:stream';
import type { ImageInfo } from '../plan/image.js';

export type { ImageInfo };

export interface BuildRequest {
  contextDir: string;
  /** Path of the Dockerfile relative to contextDir. */
  dockerfile: string;
  tag: string;
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
  /** The images the Dockerfile builds FROM, where the builder must know where they come from (kaniko). */
  fromImages?: string[];
  onLog?: (line: string) => void;
}

/** A stopped container's filesystem: small files can be read before the whole tree is streamed. */
export interface RootfsSource {
  /** One regular file's content, following a symlink at `path` once; undefined when absent. */
  readFile(path: string): Promise<Buffer | undefined>;
  /** Names of the entries directly inside a directory (empty when it is absent). */
  listDir(path: string): Promise<string[]>;
  /** Whether anything (file, directory, symlink, even a dangling one) is at `path`; cheap, reads no content. */
  exists(path: string): Promise<boolean>;
  /** The whole filesystem as a tar stream. */
  export(): Promise<Readable>;
  /** Removes the temporary container; safe to call more than once, and after a failure. */
  release(): Promise<void>;
}

/**
 * Where an image's metadata and file system come from. The Docker engine is one; a daemonless reader of a
 * `docker save` tar, an OCI layout or a registry implements this and nothing else.
 */
export interface ImageSource {
  readonly name: string;
  /** The image `ref` names, or undefined when this source does not hold it. */
  inspect(ref: string): Promise<ImageInfo | undefined>;
  openRootfs(imageId: string): Promise<RootfsSource>;
}

/** A source that can fetch an image it does not hold yet (the engine pulling from a registry). */
export interface PullingSource extends ImageSource {
  pull(ref: string, onLog?: (line: string) => void): Promise<void>;
}

/** Builds a Dockerfile into an image that `source` then holds. */
export interface ImageBuilder {
  readonly name: string;
  readonly source: ImageSource;
  /**
   * Whether it can only build FROM registry images, not FROM what it built (kaniko): a Dockerfile then gets the
   * packages stage appended before its one build.
   */
  readonly oneBuild?: boolean;
  /** Returns the new image's id. */
  build(req: BuildRequest): Promise<string>;
}

/** Removes what killed runs left behind in a store c2v writes to (the engine's containers). */
export interface Janitor {
  /** Never throws: sweeping is a courtesy. Returns how many leftovers went. */
  sweep(): Promise<number>;
}

/** What a conversion may use; a missing builder makes inputs that need one fail with one line. */
export interface ImageBackends {
  source: ImageSource;
  builder?: ImageBuilder;
  janitor?: Janitor;
  /** Releases what the backends hold for the run (a registry's blob cache); safe to call twice. */
  close?(): Promise<void>;
}

export const SESSION_LABEL = 'c2v.session';
