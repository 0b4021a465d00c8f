import type { Readable } from 'node:stream';
import type { ImageCommand } from '../plan/app-service.js';

/** What c2v needs to know about an image; engine-neutral so kaniko or a daemonless reader can fill it too. */
export interface ImageInfo {
  id: string;
  /** The reference the user gave or the tag c2v built. */
  ref: string;
  architecture: string;
  os: string;
  /** Uncompressed size of all layers, used to size the root filesystem. */
  sizeBytes: number;
  created?: string;
  config: ImageCommand & { labels: Record<string, string> };
}

export interface BuildRequest {
  contextDir: string;
  /** Path of the Dockerfile relative to contextDir. */
  dockerfile: string;
  tag: string;
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
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

/** One small interface per resource, with no engine types leaking through it. */
export interface ImageEngine {
  readonly name: string;
  inspect(ref: string): Promise<ImageInfo | undefined>;
  pull(ref: string, onLog?: (line: string) => void): Promise<void>;
  build(req: BuildRequest): Promise<string>;
  openRootfs(imageId: string): Promise<RootfsSource>;
  /** Removes containers a killed run left behind (found by the session label). */
  sweep(): Promise<number>;
}

export const SESSION_LABEL = 'c2v.session';
