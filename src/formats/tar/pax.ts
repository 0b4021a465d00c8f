/**
 * POSIX pax extended-header records ("<length> <key>=<value>\n").
 *
 * Values are byte strings, and each record keeps its bytes exactly as read, so binary values (xattrs such as
 * SCHILY.xattr.security.capability) can be copied into another archive unchanged.
 */
import type { Malformed, TarHeader } from './header.js';

export interface PaxRecord {
  key: string;
  /** A byte string: Buffer.from(value, 'latin1') gives the value's bytes. */
  value: string;
  /** The whole record as read, length and newline included. */
  raw: Buffer;
}

export function parsePax(data: Buffer, malformed: Malformed): PaxRecord[] {
  const records: PaxRecord[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    const lenText = space < 0 ? '' : data.toString('latin1', pos, space);
    if (!/^[0-9]+$/.test(lenText)) throw malformed('pax record without a length');
    const end = pos + Number(lenText);
    const eq = data.indexOf(0x3d, space + 1);
    if (end > data.length || end <= space + 1 || data[end - 1] !== 0x0a || eq < 0 || eq >= end) {
      throw malformed('pax record with a wrong length');
    }
    records.push({
      key: data.toString('latin1', space + 1, eq),
      value: data.toString('latin1', eq + 1, end - 1),
      raw: data.subarray(pos, end),
    });
    pos = end;
  }
  return records;
}

/** One record; `value` is a byte string. */
export function encodePaxRecord(key: string, value: string): Buffer {
  const body = Buffer.from(` ${key}=${value}\n`, 'latin1');
  // The length counts its own digits.
  let len = body.length + 1;
  for (;;) {
    const next = body.length + String(len).length;
    if (next === len) break;
    len = next;
  }
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function decimal(record: PaxRecord, malformed: Malformed): number {
  if (!/^[0-9]+$/.test(record.value)) throw malformed(`pax ${record.key} is not a decimal number`);
  return Number(record.value);
}

/** Overrides the header's fields with what the records say, as libarchive reads them. */
export function applyPax(h: TarHeader, records: readonly PaxRecord[], malformed: Malformed): void {
  let sparseName: string | undefined;
  for (const r of records) {
    if (r.value === '') continue; // an empty value means "use the header field"
    switch (r.key) {
      case 'path': h.name = r.value; break;
      case 'linkpath': h.linkname = r.value; break;
      case 'size': h.size = decimal(r, malformed); break;
      case 'uid': h.uid = decimal(r, malformed); break;
      case 'gid': h.gid = decimal(r, malformed); break;
      case 'uname': h.uname = r.value; break;
      case 'gname': h.gname = r.value; break;
      case 'mtime': {
        const t = Math.floor(Number(r.value));
        if (!Number.isSafeInteger(t)) throw malformed('pax mtime is not a number');
        h.mtime = t;
        break;
      }
      case 'SCHILY.devmajor': h.devmajor = decimal(r, malformed); break;
      case 'SCHILY.devminor': h.devminor = decimal(r, malformed); break;
      case 'GNU.sparse.name': sparseName = r.value; break;
    }
  }
  // GNU sparse archives keep a synthetic name in 'path'; the real one wins, as in libarchive.
  if (sparseName !== undefined) h.name = sparseName;
}
