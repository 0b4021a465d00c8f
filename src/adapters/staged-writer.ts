import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { ManifestDigest } from '../formats/manifest.js';

const STAGE_BYTES = 4 * 1024 * 1024;

/**
 * Writes a byte stream into a file from a given position, staging the many small pieces (markers, 512-byte
 * padded grains) into few large positioned writes, and hashing the bytes as they pass. While one stage is being
 * written the next one fills, so the caller rarely waits for the disk.
 */
export class StagedWriter {
  private stage = Buffer.allocUnsafe(STAGE_BYTES);
  private spare = Buffer.allocUnsafe(STAGE_BYTES);
  private used = 0;
  private position: number;
  private inFlight: Promise<void> = Promise.resolve();
  private readonly hash: Hash | undefined;
  /** Bytes accepted so far. */
  bytes = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly start = 0,
    opts: { hash?: ManifestDigest } = {},
  ) {
    this.position = start;
    this.hash = opts.hash ? createHash(opts.hash) : undefined;
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(chunk.length - off, this.stage.length - this.used);
      this.stage.set(chunk.subarray(off, off + n), this.used);
      this.used += n;
      off += n;
      if (this.used === this.stage.length) await this.swap();
    }
    this.bytes += chunk.length;
  }

  /** Writes out everything staged; returns the digest (hex) of all bytes written when a hash was asked for. */
  async finish(): Promise<string | undefined> {
    await this.swap();
    await this.inFlight;
    return this.hash?.digest('hex');
  }

  private async swap(): Promise<void> {
    // Only one write in flight: wait for the previous one before its buffer becomes the stage again.
    await this.inFlight;
    if (this.used === 0) return;
    const full = this.stage.subarray(0, this.used);
    this.hash?.update(full);
    const at = this.position;
    this.position += this.used;
    this.inFlight = writeAll(this.fh, full, at);
    // Observed by the next swap/finish; never unhandled in between.
    this.inFlight.catch(() => undefined);
    [this.stage, this.spare] = [this.spare, this.stage];
    this.used = 0;
  }
}

export async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
