/**
 * An image found without an engine, whatever held it (a `docker save` tar, an OCI layout, a registry): its
 * configuration and its layers, each opened as often as the flattener needs to read it.
 */
import type { Readable } from 'node:stream';
import type { ImageConfig } from '../../formats/oci/image-config.js';

export interface LayerBlob {
  /**
   * The digest of the bytes as stored (compressed or not), checked while reading; undefined where the store does
   * not say (`docker save`'s old layout), and then the diff_id check alone covers the bytes.
   */
  digest?: string;
  /** The digest of the uncompressed tar (the config's rootfs.diff_ids entry); checked after decompression. */
  diffId: string;
  /** Stored bytes, when known (for progress and for the check that a blob is whole). */
  size?: number;
  /** The stored bytes from the start, each call a new stream. */
  open(): Promise<Readable>;
}

export interface ResolvedImage {
  /** The config blob's digest: the image id the engine would show. */
  id: string;
  /** How the user named it, for messages and the default VM name (`docker-archive:app.tar`). */
  ref: string;
  config: ImageConfig;
  /** Bottom first, as the config lists diff_ids. */
  layers: LayerBlob[];
  /** Releases what reading held (open files, a download cache); safe to call twice. */
  close(): Promise<void>;
}
