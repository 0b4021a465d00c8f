import type { ImageCommand } from './app-service.js';

/** What c2v needs to know about an image; source-neutral, so the engine, kaniko or a daemonless reader fill it alike. */
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

/** Where an image reference is read from, spelled as in containers-transports(5). */
export type ImageTransport = 'docker-daemon' | 'docker' | 'docker-archive' | 'oci-archive' | 'oci';

/**
 * What the user asked to convert, by its form: a Dockerfile (or its build context) needs a builder; an image
 * needs a source that holds it. Transports are spelled as in containers-transports(5), which skopeo and buildah
 * users know; a bare reference means the engine's image (pulled when missing), or the registry's when no engine
 * answers.
 */
export type InputSpec =
  | { kind: 'dockerfile'; contextDir: string; dockerfile: string }
  /**
   * `explicit`: the transport was spelled out, so it is the only place looked in. `ref`: the reference as the
   * source knows it (for files, the input as given). `pull`: whether the engine may pull it when missing.
   */
  | { kind: 'image'; transport: 'docker-daemon' | 'docker'; explicit: boolean; ref: string; pull: boolean }
  /** A file or folder: `selector` picks one image (a tag, a reference name, `@N`) where it holds several. */
  | { kind: 'image'; transport: 'docker-archive' | 'oci-archive' | 'oci'; explicit: true; ref: string; pull: false; path: string; selector?: string };
