/**
 * Package the appliance: an OVA (one tar) or an OVF folder (plain files side by side).
 *
 * vSphere wants the .ovf first, the .mf next and the .cert (when signed) after it, then the files in References
 * order. StreamingOva writes the disk straight into the archive as it is produced, so the VMDK is written once:
 * the OVF, .mf and .cert members, which come first but depend on the disk's size and hash, get fixed-size room
 * at the front that is filled in at the end (see StreamingOva).
 */

import { constants as fsConstants, copyFile, mkdir, open, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { encodeOvaMemberHeader, roundUpToBlock, tarPadding, TAR_BLOCK, TAR_END } from '../formats/tar/index.js';
import { formatManifest, zeroDigest, type ManifestDigest } from '../formats/manifest.js';
import { certFileLength, signManifest, type OvaSigner } from '../formats/ova-signature.js';
import { StagedWriter, writeAll } from '../adapters/staged-writer.js';

const debug = createDebug('c2v:ova');

export interface PackageMember {
  /** Name inside the OVA / file name in the OVF folder; flat. */
  name: string;
  /** Exact byte count; checked against the source, since the OVF's References already state it. */
  size: number;
  /** The bytes themselves, or the path of a file holding them. */
  source: Buffer | string;
}

function sizeMismatch(member: PackageMember, actual: number): C2vError {
  return new C2vError('internal', `${member.name}: expected ${member.size} bytes but ${typeof member.source === 'string' ? member.source : 'the buffer'} has ${actual}`);
}

/** Everything that can be checked before the first byte is written. */
async function checkMembers(members: readonly PackageMember[]): Promise<void> {
  const seen = new Set<string>();
  for (const m of members) {
    if (seen.has(m.name)) throw new C2vError('internal', `package member ${m.name} is listed twice`);
    seen.add(m.name);
    if (typeof m.source === 'string') {
      const st = await stat(m.source);
      if (!st.isFile()) throw new C2vError('internal', `package member ${m.name}: ${m.source} is not a regular file`);
      if (st.size !== m.size) throw sizeMismatch(m, st.size);
    } else if (m.source.length !== m.size) {
      throw sizeMismatch(m, m.source.length);
    }
  }
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    // Different filesystems: rename cannot cross them.
    await copyFile(from, to);
    await rm(from);
  }
}

/**
 * Write `members` as plain files in `dir` (`--format ovf`). File members are copied, or moved when
 * `move` is set (the workspace copy of a multi-GiB disk is not needed afterwards). On failure the
 * files written here are removed and moved ones are put back.
 */
export async function writeOvfFolder(dir: string, members: readonly PackageMember[], opts: { move?: boolean } = {}): Promise<void> {
  // The OVA's name rules, so that both output formats of one plan accept the same members.
  for (const m of members) encodeOvaMemberHeader({ name: m.name, size: m.size });
  await checkMembers(members);
  await mkdir(dir, { recursive: true });

  const created: string[] = [];
  const moved: [from: string, to: string][] = [];
  try {
    for (const m of members) {
      const target = path.join(dir, m.name);
      debug('writing %s', target);
      if (typeof m.source !== 'string') {
        await writeFile(target, m.source);
        created.push(target);
      } else if (path.resolve(m.source) === path.resolve(target)) {
        // Already in place (the disk was written straight into the output folder).
      } else if (opts.move) {
        await moveFile(m.source, target);
        moved.push([m.source, target]);
      } else {
        // Reflink where the filesystem can (btrfs, XFS): instant and no extra space.
        await copyFile(m.source, target, fsConstants.COPYFILE_FICLONE);
        created.push(target);
      }
    }
  } catch (e) {
    for (const file of created) await rm(file, { force: true });
    for (const [from, to] of moved.reverse()) await moveFile(to, from).catch(() => undefined);
    throw e;
  }
}

export interface StreamingOvaRequest {
  ovfName: string;
  mfName: string;
  diskName: string;
  /**
   * The OVF text for a disk file of `diskBytes` bytes. It is called once with Number.MAX_SAFE_INTEGER to size
   * the room reserved for it, and once with the real size once the disk is written. Only numbers that can only
   * shrink may change in between (the file size, and a populated size first given as the capacity), so the
   * real text is never longer.
   */
  ovf: (diskBytes: number) => string;
  /** The manifest's algorithm; the disk is hashed with it as it streams. */
  digest: ManifestDigest;
  /** Seconds since the epoch for every member; default 0. */
  mtime?: number;
  /** A .cert member signing the manifest, between the .mf and the disk. */
  signature?: { certName: string; signer: OvaSigner };
}

export interface StreamingOvaResult {
  /** Size of the whole archive. */
  bytes: number;
  diskBytes: number;
  /** In hex, by the request's algorithm. */
  diskDigest: string;
  ovfBytes: number;
}

/** The OVF padded with trailing whitespace (still the same XML document) to exactly `length` bytes. */
export function padOvf(ovf: string, length: number): Buffer {
  const text = Buffer.from(ovf, 'utf8');
  const pad = length - text.length;
  if (pad < 0) throw new C2vError('internal', `the OVF (${text.length} bytes) outgrew the ${length} bytes reserved for it`);
  if (pad === 0) return text;
  // Whitespace after the root element is allowed XML (Misc); a closing newline keeps the file tidy.
  return Buffer.concat([text, Buffer.from(`${' '.repeat(pad - 1)}\n`, 'ascii')]);
}

/**
 * An OVA written in one pass with the disk streamed into it. Layout: [.ovf header][.ovf, padded to its
 * reserved length][.mf header][.mf][.cert header][.cert, when signed][disk header][disk ...][padding][end of
 * archive]. The .mf has fixed-length lines (the algorithm fixes the number of hex digits), an RSA signature's
 * length is fixed by its key, and the OVF is padded to a length reserved up front, so their members' sizes are
 * known before the disk is; the disk's size and digest are known when it ends, and finish() then writes the OVF,
 * the .mf, the .cert and the headers into the room left at the front (positioned writes). The archive
 * is valid ustar (GNU for a disk of 8 GiB or more, never PAX) with the OVF first, and appears under its name only
 * once complete.
 */
export class StreamingOva {
  private readonly partial: string;
  private readonly ovfReserve: number;
  private readonly mfLength: number;
  private readonly certLength: number;
  private readonly diskStart: number;
  private disk: { bytes: number; digest: string } | undefined;
  private done = false;

  private constructor(
    readonly outPath: string,
    private readonly req: StreamingOvaRequest,
    private readonly fh: FileHandle,
    ovfReserve: number,
  ) {
    this.partial = `${outPath}.partial`;
    this.ovfReserve = ovfReserve;
    this.mfLength = Buffer.byteLength(this.manifest(zeroDigest(req.digest), zeroDigest(req.digest)), 'utf8');
    const sig = req.signature;
    this.certLength = sig ? certFileLength(sig.signer, req.mfName, req.digest) : 0;
    const certRoom = sig ? TAR_BLOCK + roundUpToBlock(this.certLength) : 0;
    this.diskStart = TAR_BLOCK + roundUpToBlock(this.ovfReserve) + TAR_BLOCK + roundUpToBlock(this.mfLength) + certRoom + TAR_BLOCK;
  }

  static async create(outPath: string, req: StreamingOvaRequest): Promise<StreamingOva> {
    if (!req.ovfName.endsWith('.ovf')) throw new C2vError('internal', `the first OVA member must be the .ovf descriptor, got ${req.ovfName}`);
    const names = [req.ovfName, req.mfName, ...(req.signature ? [req.signature.certName] : []), req.diskName];
    if (new Set(names).size !== names.length) throw new C2vError('internal', `OVA member names must differ: ${names.join(', ')}`);
    // Names are checked by the header encoder before any file exists.
    for (const name of names) encodeOvaMemberHeader({ name, size: 0, mtime: req.mtime ?? 0 });
    // The OVF is built (and validated) once before any file exists.
    const ovfReserve = Buffer.byteLength(req.ovf(Number.MAX_SAFE_INTEGER), 'utf8');
    const fh = await open(`${outPath}.partial`, 'w');
    const ova = new StreamingOva(outPath, req, fh, ovfReserve);
    debug('streaming %s: OVF room %d bytes, disk at %d', outPath, ova.ovfReserve, ova.diskStart);
    return ova;
  }

  private manifest(ovfHex: string, diskHex: string): string {
    return formatManifest(
      [
        { name: this.req.ovfName, hex: ovfHex },
        { name: this.req.diskName, hex: diskHex },
      ],
      this.req.digest,
    );
  }

  /**
   * Runs `produce`, which writes the disk member's bytes through `sink`, front to back; they are hashed as they
   * go. Call once. On failure the partial archive is removed.
   */
  async writeDisk<T>(produce: (sink: (chunk: Uint8Array) => Promise<void>) => Promise<T>): Promise<T & { bytes: number; digest: string }> {
    if (this.disk || this.done) throw new C2vError('internal', 'StreamingOva.writeDisk() called twice');
    const writer = new StagedWriter(this.fh, this.diskStart, { hash: this.req.digest });
    let result: T;
    let digest: string;
    try {
      result = await produce((chunk) => writer.write(chunk));
      digest = (await writer.finish())!;
    } catch (e) {
      await writer.finish().catch(() => undefined);
      await this.abort();
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new C2vError('space', `no space left on the device while writing ${this.partial}`, { cause: e });
      }
      throw e;
    }
    this.disk = { bytes: writer.bytes, digest };
    debug('%s: %d bytes, %s %s', this.req.diskName, writer.bytes, this.req.digest, digest);
    return { ...result, bytes: writer.bytes, digest };
  }

  /** Writes the end of the archive, then the OVF, the .mf and the headers at the front; moves the OVA into place. */
  async finish(): Promise<StreamingOvaResult> {
    if (!this.disk || this.done) throw new C2vError('internal', 'StreamingOva.finish() before writeDisk() or twice');
    this.done = true;
    try {
      return await this.writeFront(this.disk);
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  private async writeFront({ bytes: diskBytes, digest: diskDigest }: { bytes: number; digest: string }): Promise<StreamingOvaResult> {
    const mtime = this.req.mtime ?? 0;
    const ovf = padOvf(this.req.ovf(diskBytes), this.ovfReserve);
    const ovfDigest = createHash(this.req.digest).update(ovf).digest('hex');
    const mf = Buffer.from(this.manifest(ovfDigest, diskDigest), 'utf8');
    if (mf.length !== this.mfLength) throw new C2vError('internal', `manifest is ${mf.length} bytes, ${this.mfLength} were reserved`);

    const members: [string, Buffer][] = [
      [this.req.ovfName, ovf],
      [this.req.mfName, mf],
    ];
    const sig = this.req.signature;
    if (sig) {
      const cert = signManifest(sig.signer, this.req.mfName, this.req.digest, mf);
      if (cert.length !== this.certLength) throw new C2vError('internal', `the .cert is ${cert.length} bytes, ${this.certLength} were reserved`);
      members.push([sig.certName, cert]);
    }

    const front = Buffer.alloc(this.diskStart);
    let at = 0;
    for (const [name, data] of members) {
      encodeOvaMemberHeader({ name, size: data.length, mtime }).copy(front, at);
      data.copy(front, at + TAR_BLOCK);
      at += TAR_BLOCK + roundUpToBlock(data.length);
    }
    encodeOvaMemberHeader({ name: this.req.diskName, size: diskBytes, mtime }).copy(front, at);

    const tail = Buffer.concat([tarPadding(diskBytes), TAR_END]);
    const end = this.diskStart + diskBytes;
    await writeAll(this.fh, tail, end);
    await writeAll(this.fh, front, 0);
    await this.fh.close();
    await rename(this.partial, this.outPath);
    return { bytes: end + tail.length, diskBytes, diskDigest, ovfBytes: ovf.length };
  }

  /** Drops the partial archive (on any failure). */
  async abort(): Promise<void> {
    this.done = true;
    await this.fh.close().catch(() => undefined);
    await rm(this.partial, { force: true });
  }
}
