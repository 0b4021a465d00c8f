/**
 * Reading a tar stream entry by entry, as libarchive (and so mke2fs -d) reads it.
 *
 * TarParser is a push parser: feed it chunks, it calls back with each entry's header, then its data in
 * pieces of the chunks it was given. Memory stays bounded: it keeps one header block, or one extension
 * header's data (up to maxExtension), never a body. readTar wraps it as an async iterator for consumers that
 * await (files written to disk, an engine's HTTP response).
 *
 * Each entry comes with the header blocks exactly as read (pax and GNU long-name headers included), so a
 * consumer that passes an entry through unchanged can copy it bit for bit.
 */
import { C2vError } from '../../errors.js';
import {
  TAR_BLOCK,
  cStringOf,
  decodeHeader,
  entryKind,
  isZeroBlock,
  roundUpToBlock,
  textOf,
  type Malformed,
  type TarHeader,
  type TarKind,
} from './header.js';
import { applyPax, parsePax, type PaxRecord } from './pax.js';

export interface GlobalHeader {
  /** The 'g' header block, then its data with the padding. */
  raw: Buffer[];
  /** The records' bytes (parsePax reads them); libarchive ignores global headers, so they are not applied. */
  data: Buffer;
}

export interface TarEntry {
  /** With pax records and GNU long names (L, K) applied. */
  header: TarHeader;
  kind: TarKind;
  /** The entry's own pax ('x') records, in order, each with its bytes as read. */
  pax: PaxRecord[];
  /** The header blocks exactly as read: extension headers with their data and padding, then the entry's header. */
  raw: Buffer[];
  /** Global ('g') headers read since the previous entry. */
  globals: GlobalHeader[];
  /** Byte offset of the entry's own header block. */
  offset: number;
}

export interface TarHandler {
  entry(e: TarEntry): void;
  /** The entry's data, header.size bytes in all, in order. */
  data?(chunk: Buffer): void;
  /** The zeros after the data, up to the next block boundary. */
  padding?(chunk: Buffer): void;
  /** The end of the archive; `globals` are the global headers after the last entry. */
  end?(globals: GlobalHeader[]): void;
}

export interface TarReadOptions {
  /** Names the stream in errors: "<source> is not a valid tar stream: ...". */
  source?: string;
  /** The largest extension header (pax, GNU long name) accepted; libarchive gives up above 1 MiB. */
  maxExtension?: number;
  /** Accept an input that ends at an entry boundary without the end-of-archive blocks. */
  endMarkerOptional?: boolean;
}

const MAX_EXTENSION = 8 * 1024 * 1024;

type State = 'header' | 'extension' | 'body' | 'end';

export class TarParser {
  private readonly source: string;
  private readonly maxExtension: number;
  private readonly endMarkerOptional: boolean;

  private state: State = 'header';
  private pos = 0;
  private acc: Buffer[] = [];
  private accLen = 0;
  private need = TAR_BLOCK;
  private extension: { typeflag: string; size: number; block: Buffer; at: number } | null = null;
  private pendingRaw: Buffer[] = [];
  private pendingPax: PaxRecord[] = [];
  private longName: string | null = null;
  private longLink: string | null = null;
  private globals: GlobalHeader[] = [];
  private body: { data: number; rest: number } | null = null;

  constructor(
    private readonly handler: TarHandler,
    options: TarReadOptions = {},
  ) {
    this.source = options.source ?? 'the input';
    this.maxExtension = options.maxExtension ?? MAX_EXTENSION;
    this.endMarkerOptional = options.endMarkerOptional ?? false;
  }

  /** Whether the end-of-archive marker has been read; what follows it is ignored. */
  get ended(): boolean {
    return this.state === 'end';
  }

  write(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.state === 'end') {
        // Whatever follows the end-of-archive marker (record padding) is not part of the archive.
        this.pos += chunk.length - off;
        return;
      }
      if (this.state === 'body') {
        off = this.consumeBody(chunk, off);
        continue;
      }
      const take = Math.min(this.need - this.accLen, chunk.length - off);
      this.acc.push(chunk.subarray(off, off + take));
      this.accLen += take;
      this.pos += take;
      off += take;
      if (this.accLen < this.need) return;
      const buf = this.acc.length === 1 ? this.acc[0] : Buffer.concat(this.acc, this.accLen);
      this.acc = [];
      this.accLen = 0;
      if (this.state === 'header') this.onHeaderBlock(buf);
      else this.onExtensionData(buf);
    }
  }

  /** The input has ended: throws unless the archive did. */
  end(): void {
    if (this.state === 'end') return;
    const clean = this.state === 'header' && this.accLen === 0;
    if (clean && this.endMarkerOptional && this.pendingRaw.length === 0) {
      this.finishArchive();
      return;
    }
    throw this.malformed(clean ? 'stream ended without the end-of-archive marker' : 'stream ended inside an entry', this.pos);
  }

  private malformed(what: string, at: number): C2vError {
    return new C2vError('input', `${this.source} is not a valid tar stream: ${what} (at byte ${at})`);
  }

  private at(at: number): Malformed {
    return (what) => this.malformed(what, at);
  }

  private consumeBody(chunk: Buffer, off: number): number {
    const b = this.body!;
    const n = Math.min(b.rest, chunk.length - off);
    const dataBytes = Math.min(n, b.data);
    if (dataBytes > 0) this.handler.data?.(chunk.subarray(off, off + dataBytes));
    if (n > dataBytes) this.handler.padding?.(chunk.subarray(off + dataBytes, off + n));
    b.data -= dataBytes;
    b.rest -= n;
    this.pos += n;
    if (b.rest === 0) {
      this.body = null;
      this.state = 'header';
    }
    return off + n;
  }

  private onHeaderBlock(block: Buffer): void {
    const at = this.pos - TAR_BLOCK;
    // libarchive stops at the first zero block, so the archive ends there for mke2fs too.
    if (isZeroBlock(block)) {
      if (this.pendingRaw.length > 0) throw this.malformed('extension header without an entry', at);
      this.finishArchive();
      return;
    }
    const h = decodeHeader(block, this.at(at));
    switch (h.typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K':
        if (h.size > this.maxExtension) throw this.malformed(`extension header of ${h.size} bytes`, at);
        this.extension = { typeflag: h.typeflag, size: h.size, block, at };
        this.need = roundUpToBlock(h.size);
        this.state = 'extension';
        if (this.need === 0) this.onExtensionData(Buffer.alloc(0));
        return;
      case 'S':
        // Its sparse map continues in extra header blocks that would be read as entries.
        throw new C2vError('input', `${this.source} contains an old-style GNU sparse entry (${textOf(h.name)}), which c2v cannot read`);
    }
    this.onEntry(h, block, at);
  }

  private onExtensionData(buf: Buffer): void {
    const ext = this.extension!;
    const data = buf.subarray(0, ext.size);
    if (ext.typeflag === 'g') {
      this.globals.push({ raw: [ext.block, buf], data });
    } else {
      this.pendingRaw.push(ext.block, buf);
      if (ext.typeflag === 'x') this.pendingPax.push(...parsePax(data, this.at(ext.at)));
      else if (ext.typeflag === 'L') this.longName = cStringOf(data);
      else this.longLink = cStringOf(data);
    }
    this.extension = null;
    this.need = TAR_BLOCK;
    this.state = 'header';
  }

  private onEntry(header: TarHeader, block: Buffer, at: number): void {
    if (this.longName !== null) header.name = this.longName;
    if (this.longLink !== null) header.linkname = this.longLink;
    applyPax(header, this.pendingPax, this.at(at));
    const entry: TarEntry = {
      header,
      kind: entryKind(header.typeflag, header.name),
      pax: this.pendingPax,
      raw: [...this.pendingRaw, block],
      globals: this.globals,
      offset: at,
    };
    this.pendingPax = [];
    this.pendingRaw = [];
    this.longName = null;
    this.longLink = null;
    this.globals = [];
    // libarchive reads no data for these types whatever the size says, other readers skip it: refuse to guess.
    if ('123456'.includes(header.typeflag) && header.size > 0) {
      throw this.malformed(`${entry.kind} entry ${textOf(header.name)} claims ${header.size} data bytes`, at);
    }
    this.handler.entry(entry);
    if (header.size > 0) {
      this.body = { data: header.size, rest: roundUpToBlock(header.size) };
      this.state = 'body';
    }
  }

  private finishArchive(): void {
    this.state = 'end';
    const globals = this.globals;
    this.globals = [];
    this.handler.end?.(globals);
  }
}

export interface TarStreamEntry extends TarEntry {
  /** The entry's data. Read it before asking for the next entry; an unread body is skipped. */
  body: AsyncIterable<Buffer>;
}

type ParserEvent = { entry: TarEntry } | { data: Buffer } | { end: true };

/**
 * The entries of a tar stream, one at a time. Input is read only as the entries and bodies are consumed; when
 * the iteration stops (the end of the archive, a break, an error) the input is released (a Readable is destroyed).
 */
export async function* readTar(input: AsyncIterable<Uint8Array | string>, options: TarReadOptions = {}): AsyncGenerator<TarStreamEntry> {
  const queue: ParserEvent[] = [];
  const parser = new TarParser(
    {
      entry: (entry) => queue.push({ entry }),
      data: (data) => queue.push({ data }),
      end: () => queue.push({ end: true }),
    },
    options,
  );
  const source = input[Symbol.asyncIterator]();
  let exhausted = false;
  /** Parses one more chunk of input (the parser throws if the input ends early); false once there is none. */
  const pull = async (): Promise<boolean> => {
    if (exhausted) return false;
    const next = await source.next();
    if (next.done) {
      exhausted = true;
      parser.end();
    } else {
      const v = next.value;
      parser.write(typeof v === 'string' ? Buffer.from(v) : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
    return true;
  };

  let current = 0;
  try {
    for (;;) {
      if (queue.length === 0) {
        if (!(await pull())) return;
        continue;
      }
      const event = queue.shift()!;
      if ('end' in event) return;
      if ('data' in event) continue; // the rest of a body its reader skipped
      const seq = ++current;
      let left = event.entry.header.size;
      const body = async function* (): AsyncGenerator<Buffer> {
        while (left > 0) {
          if (seq !== current) throw new C2vError('internal', 'a tar entry body was read after the next entry');
          if (queue.length === 0) {
            if (!(await pull())) return;
            continue;
          }
          const next = queue[0];
          if (!('data' in next)) return;
          queue.shift();
          left -= next.data.length;
          yield next.data;
        }
      };
      yield { ...event.entry, body: body() };
    }
  } finally {
    await source.return?.();
  }
}

/** An entry's whole data; for small members only (`limit` bytes at most). */
export async function readBody(entry: TarStreamEntry, limit = Number.MAX_SAFE_INTEGER): Promise<Buffer> {
  if (entry.header.size > limit) throw new C2vError('input', `${textOf(entry.header.name)} is ${entry.header.size} bytes, more than the ${limit} expected`);
  const chunks: Buffer[] = [];
  for await (const c of entry.body) chunks.push(c);
  return Buffer.concat(chunks);
}
