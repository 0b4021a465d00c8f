/**
 * The files of an image store, read in place: a directory (an OCI layout) or a tar (`docker save`, an OCI
 * archive). A tar is indexed by walking its headers with seeks, so a multi-gigabyte archive costs a few reads
 * before any layer is opened, and each member is then read as a byte range of the file.
 */
import { createReadStream } from 'node:fs';
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { C2vError } from '../../errors.js';
import { TAR_BLOCK, applyPax, cStringOf, decodeHeader, entryKind, isZeroBlock, parsePax, roundUpToBlock, textOf, type Malformed, type PaxRecord, type TarKind } from '../../formats/tar/index.js';

export interface StoredFiles {
  /** "docker-archive:app.tar", for messages. */
  readonly describe: string;
  /** The member's size, or undefined when there is none (symlinks are followed). */
  size(name: string): Promise<number | undefined>;
  /** A small member (JSON) whole; refuses one larger than `limit`. */
  read(name: string, limit?: number): Promise<Buffer>;
  open(name: string): Promise<Readable>;
}

const JSON_LIMIT = 16 * 1024 * 1024;
const MAX_EXTENSION = 8 * 1024 * 1024;

function missing(files: StoredFiles, name: string): C2vError {
  return new C2vError('input', `${files.describe} has no ${name}, which its manifest names: the archive is incomplete or damaged; save or copy it again`);
}

/** Names inside a store are relative and stay inside it. */
function storePath(name: string, describe: string): string {
  const clean = path.posix.normalize(name.replace(/^\.\//, ''));
  if (clean.startsWith('../') || clean === '..' || path.posix.isAbsolute(clean)) {
    throw new C2vError('input', `${describe} names ${JSON.stringify(name)}, outside the archive: the image is damaged or hostile`);
  }
  return clean;
}

export class DirectoryFiles implements StoredFiles {
  constructor(
    private readonly dir: string,
    readonly describe: string,
  ) {}

  async size(name: string): Promise<number | undefined> {
    const s = await stat(this.full(name)).catch(() => undefined);
    return s?.isFile() ? s.size : undefined;
  }

  async read(name: string, limit = JSON_LIMIT): Promise<Buffer> {
    const size = await this.size(name);
    if (size === undefined) throw missing(this, name);
    if (size > limit) throw new C2vError('input', `${this.describe}: ${name} is ${size} bytes, larger than such a file can be`);
    return readFile(this.full(name));
  }

  async open(name: string): Promise<Readable> {
    if ((await this.size(name)) === undefined) throw missing(this, name);
    return createReadStream(this.full(name), { highWaterMark: 1024 * 1024 });
  }

  private full(name: string): string {
    return path.join(this.dir, storePath(name, this.describe));
  }
}

interface Member {
  kind: TarKind;
  offset: number;
  size: number;
  linkname: string;
}

export class TarFiles implements StoredFiles {
  private constructor(
    private readonly file: string,
    readonly describe: string,
    private readonly members: Map<string, Member>,
  ) {}

  static async open(file: string, describe: string): Promise<TarFiles> {
    const fh = await open(file, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new C2vError('input', `${describe}: cannot read ${file} (${e.code ?? e.message})`, { cause: e });
    });
    try {
      return new TarFiles(file, describe, await walkMembers(fh, (await fh.stat()).size, describe));
    } finally {
      await fh.close();
    }
  }

  async size(name: string): Promise<number | undefined> {
    return this.member(name)?.size;
  }

  async read(name: string, limit = JSON_LIMIT): Promise<Buffer> {
    const m = this.member(name);
    if (!m) throw missing(this, name);
    if (m.size > limit) throw new C2vError('input', `${this.describe}: ${name} is ${m.size} bytes, larger than such a file can be`);
    const fh = await open(this.file, 'r');
    try {
      const buf = Buffer.alloc(m.size);
      const { bytesRead } = await fh.read(buf, 0, m.size, m.offset);
      if (bytesRead !== m.size) throw truncated(this.describe);
      return buf;
    } finally {
      await fh.close();
    }
  }

  async open(name: string): Promise<Readable> {
    const m = this.member(name);
    if (!m) throw missing(this, name);
    if (m.size === 0) return createReadStream(this.file, { start: 0, end: -1 });
    return createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1024 * 1024 });
  }

  /** The member at `name`, through symlinks and hard links (old `docker save` links repeated layers to the first). */
  private member(name: string, depth = 0): Member | undefined {
    const key = storePath(name, this.describe);
    const m = this.members.get(key);
    if (!m || depth > 8) return undefined;
    if (m.kind === 'symlink') return this.member(path.posix.join(path.posix.dirname(key), m.linkname), depth + 1);
    if (m.kind === 'hardlink') return this.member(m.linkname, depth + 1);
    return m.kind === 'file' ? m : undefined;
  }
}

function truncated(describe: string): C2vError {
  return new C2vError('input', `${describe} is truncated (it ends inside a member): the copy is incomplete; save or copy it again`);
}

/** Every member's name, kind and byte range, from the headers alone. */
async function walkMembers(fh: FileHandle, fileSize: number, describe: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  const block = Buffer.alloc(TAR_BLOCK);
  let pos = 0;
  let pax: PaxRecord[] = [];
  let longName: string | null = null;
  let longLink: string | null = null;
  const readAt = async (buf: Buffer, at: number): Promise<void> => {
    const { bytesRead } = await fh.read(buf, 0, buf.length, at);
    if (bytesRead !== buf.length) throw truncated(describe);
  };
  for (;;) {
    if (pos + TAR_BLOCK > fileSize) {
      if (pos === fileSize && members.size > 0) return members; // no end marker: accepted, as libarchive does
      throw pos === 0 ? new C2vError('input', `${describe} is empty or not a tar archive`) : truncated(describe);
    }
    await readAt(block, pos);
    if (isZeroBlock(block)) return members;
    const malformed: Malformed = (what) => new C2vError('input', `${describe} is not a valid tar archive: ${what} (at byte ${pos})`);
    const h = decodeHeader(block, malformed);
    const dataAt = pos + TAR_BLOCK;
    pos = dataAt + roundUpToBlock(h.size);
    if ('xLKg'.includes(h.typeflag)) {
      if (h.size > MAX_EXTENSION) throw malformed(`extension header of ${h.size} bytes`);
      const data = Buffer.alloc(h.size);
      await readAt(data, dataAt);
      if (h.typeflag === 'x') pax = parsePax(data, malformed);
      else if (h.typeflag === 'L') longName = cStringOf(data);
      else if (h.typeflag === 'K') longLink = cStringOf(data);
      continue;
    }
    if (longName !== null) h.name = longName;
    if (longLink !== null) h.linkname = longLink;
    applyPax(h, pax, malformed);
    pax = [];
    longName = longLink = null;
    if (dataAt + h.size > fileSize) throw truncated(describe);
    const name = textOf(h.name).replace(/^\.\//, '').replace(/\/+$/, '');
    members.set(name, { kind: entryKind(h.typeflag, h.name), offset: dataAt, size: h.size, linkname: textOf(h.linkname) });
  }
}
