import { open } from 'node:fs/promises';
import { inflateSync } from 'node:zlib';

/**
 * An independent streamOptimized VMDK reader for tests. It deliberately shares no code or constants with
 * src/formats/vmdk.ts, so a misunderstanding of the format in the writer is not mirrored here.
 */

const S = 512;

export interface ParsedHeader {
  magic: string;
  version: number;
  flags: number;
  capacitySectors: bigint;
  grainSize: bigint;
  descriptorOffset: bigint;
  descriptorSize: bigint;
  numGTEsPerGT: number;
  rgdOffset: bigint;
  gdOffset: bigint;
  overHead: bigint;
  uncleanShutdown: number;
  newlineTest: Buffer;
  compressAlgorithm: number;
}

export function parseHeader(sector: Buffer): ParsedHeader {
  if (sector.length < S) throw new Error(`header needs ${S} bytes, got ${sector.length}`);
  return {
    magic: sector.toString('latin1', 0, 4),
    version: sector.readUInt32LE(4),
    flags: sector.readUInt32LE(8),
    capacitySectors: sector.readBigUInt64LE(12),
    grainSize: sector.readBigUInt64LE(20),
    descriptorOffset: sector.readBigUInt64LE(28),
    descriptorSize: sector.readBigUInt64LE(36),
    numGTEsPerGT: sector.readUInt32LE(44),
    rgdOffset: sector.readBigUInt64LE(48),
    gdOffset: sector.readBigUInt64LE(56),
    overHead: sector.readBigUInt64LE(64),
    uncleanShutdown: sector.readUInt8(72),
    newlineTest: Buffer.from(sector.subarray(73, 77)),
    compressAlgorithm: sector.readUInt16LE(77),
  };
}

export interface ParsedDescriptor {
  text: string;
  /** `key=value` and `key = "value"` lines, quotes removed. */
  fields: Record<string, string>;
  extents: { access: string; sectors: number; type: string; file: string }[];
  /** Bytes after the text: must all be NUL. */
  padding: Buffer;
}

export function parseDescriptor(area: Buffer): ParsedDescriptor {
  const nul = area.indexOf(0);
  const end = nul < 0 ? area.length : nul;
  const text = area.toString('utf8', 0, end);
  const fields: Record<string, string> = {};
  const extents: ParsedDescriptor['extents'] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const ext = /^(RW|RDONLY|NOACCESS) (\d+) (\w+) "([^"]*)"/.exec(line);
    if (ext) {
      extents.push({ access: ext[1], sectors: Number(ext[2]), type: ext[3], file: ext[4] });
      continue;
    }
    const kv = /^([\w.]+)\s*=\s*(.*)$/.exec(line);
    if (kv) fields[kv[1]] = kv[2].replace(/^"(.*)"$/, '$1');
  }
  return { text, fields, extents, padding: Buffer.from(area.subarray(end)) };
}

export type StreamEvent =
  | { kind: 'grain'; sector: number; lba: bigint; size: number; data: Buffer; compressed: Buffer }
  | { kind: 'gt'; sector: number; entries: number[] }
  | { kind: 'gd'; sector: number; entries: number[] }
  | { kind: 'footer'; sector: number; header: ParsedHeader }
  | { kind: 'eos'; sector: number };

export interface ParsedVmdk {
  header: ParsedHeader;
  descriptor: ParsedDescriptor;
  /** Everything found walking forward from overHead by markers, in file order. */
  events: StreamEvent[];
  /** Bytes after the EOS marker (must be 0). */
  trailingBytes: number;
}

/** Parses a whole VMDK held in memory by walking its markers from the first grain to the EOS marker. */
export function parseVmdk(file: Buffer): ParsedVmdk {
  const header = parseHeader(file.subarray(0, S));
  const dOff = Number(header.descriptorOffset) * S;
  const descriptor = parseDescriptor(file.subarray(dOff, dOff + Number(header.descriptorSize) * S));
  const events: StreamEvent[] = [];
  let sector = Number(header.overHead);
  let trailingBytes = -1;
  while (sector * S < file.length) {
    const at = sector * S;
    if (at + S > file.length) throw new Error(`truncated marker at sector ${sector}`);
    const value = file.readBigUInt64LE(at);
    const size = file.readUInt32LE(at + 8);
    if (size !== 0) {
      const compressed = Buffer.from(file.subarray(at + 12, at + 12 + size));
      if (compressed.length !== size) throw new Error(`grain at sector ${sector} runs past the end of the file`);
      events.push({ kind: 'grain', sector, lba: value, size, data: inflateSync(compressed), compressed });
      sector += Math.ceil((12 + size) / S);
      continue;
    }
    const type = file.readUInt32LE(at + 12);
    const n = Number(value);
    const body = file.subarray(at + S, at + S + n * S);
    const u32s = (b: Buffer): number[] => Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(i * 4));
    if (type === 0) {
      events.push({ kind: 'eos', sector });
      trailingBytes = file.length - (at + S);
      break;
    } else if (type === 1) {
      events.push({ kind: 'gt', sector: sector + 1, entries: u32s(body) });
    } else if (type === 2) {
      events.push({ kind: 'gd', sector: sector + 1, entries: u32s(body) });
    } else if (type === 3) {
      events.push({ kind: 'footer', sector: sector + 1, header: parseHeader(body) });
    } else {
      throw new Error(`unknown marker type ${type} at sector ${sector}`);
    }
    sector += 1 + n;
  }
  if (trailingBytes < 0) throw new Error('no end-of-stream marker');
  return { header, descriptor, events, trailingBytes };
}

/**
 * The raw disk bytes, found the way a random-access reader does: footer -> grain directory -> grain tables ->
 * grain markers. Independent of the marker walk above, so the two cross-check each other.
 */
export function reconstruct(file: Buffer): Buffer {
  const footer = parseHeader(file.subarray(file.length - 2 * S, file.length - S));
  const grainSectors = Number(footer.grainSize);
  const grainBytes = grainSectors * S;
  const capacity = Number(footer.capacitySectors) * S;
  const perGT = footer.numGTEsPerGT;
  const grains = Math.ceil(capacity / grainBytes);
  const gdAt = Number(footer.gdOffset) * S;
  const out = Buffer.alloc(capacity);
  for (let g = 0; g < grains; g++) {
    const gtSector = file.readUInt32LE(gdAt + Math.floor(g / perGT) * 4);
    if (gtSector === 0) continue;
    const grainSector = file.readUInt32LE(gtSector * S + (g % perGT) * 4);
    if (grainSector === 0) continue;
    const at = grainSector * S;
    const lba = file.readBigUInt64LE(at);
    if (lba !== BigInt(g * grainSectors)) throw new Error(`grain ${g}: marker lba ${lba}, expected ${g * grainSectors}`);
    const data = inflateSync(file.subarray(at + 12, at + 12 + file.readUInt32LE(at + 8)));
    if (data.length !== grainBytes) throw new Error(`grain ${g} inflates to ${data.length} bytes`);
    data.copy(out, g * grainBytes, 0, Math.min(grainBytes, capacity - g * grainBytes));
  }
  return out;
}

/**
 * Compares a VMDK (in memory) with a raw file grain by grain without holding the raw disk in memory.
 * Returns the first differing grain index, or null when identical.
 */
export async function firstDifferentGrain(vmdk: Buffer, rawPath: string): Promise<number | null> {
  const footer = parseHeader(vmdk.subarray(vmdk.length - 2 * S, vmdk.length - S));
  const grainBytes = Number(footer.grainSize) * S;
  const capacity = Number(footer.capacitySectors) * S;
  const perGT = footer.numGTEsPerGT;
  const gdAt = Number(footer.gdOffset) * S;
  const fh = await open(rawPath, 'r');
  try {
    const raw = Buffer.alloc(grainBytes);
    for (let g = 0; g * grainBytes < capacity; g++) {
      raw.fill(0);
      await fh.read(raw, 0, Math.min(grainBytes, capacity - g * grainBytes), g * grainBytes);
      let expected = Buffer.alloc(grainBytes);
      const gtSector = vmdk.readUInt32LE(gdAt + Math.floor(g / perGT) * 4);
      const grainSector = gtSector === 0 ? 0 : vmdk.readUInt32LE(gtSector * S + (g % perGT) * 4);
      if (grainSector !== 0) {
        const at = grainSector * S;
        expected = inflateSync(vmdk.subarray(at + 12, at + 12 + vmdk.readUInt32LE(at + 8)));
      }
      if (!expected.equals(raw)) return g;
    }
    return null;
  } finally {
    await fh.close();
  }
}
