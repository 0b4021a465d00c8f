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
