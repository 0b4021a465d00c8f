import { encodeOvaMemberHeader, tarPadding, TAR_END } from '../../src/formats/tar/index.js';

/**
 * The simplest OVA writer: each member's header, data and padding in turn, then the end of the archive. Tests
 * compare StreamingOva (which fills its front in last, with positioned writes) against it.
 */
export function ovaBytes(members: readonly { name: string; data: Buffer }[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) parts.push(encodeOvaMemberHeader({ name: m.name, size: m.data.length, mtime }), m.data, tarPadding(m.data.length));
  parts.push(TAR_END);
  return Buffer.concat(parts);
}
