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

/**
 * What the user asked to convert, by its form: a Dockerfile (or its build context) needs a builder; an image
 * reference needs a source that holds it. Transports are spelled as in containers-transports(5), which skopeo
 * and buildah users know; a bare reference means the engine's image, pulled when missing.
 */
export type InputSpec =
  | { kind: 'dockerfile'; contextDir: string; dockerfile: string }
  /** `explicit`: the transport was spelled out (docker-daemon:REF), which never pulls. */
  | { kind: 'image'; transport: 'docker-daemon'; explicit: boolean; ref: string; pull: boolean };
