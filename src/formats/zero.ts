/** The zero page isZero compares against: one grain, the largest piece callers check at once. */
const ZERO_PAGE = new Uint8Array(65536);

/**
 * True when every byte is zero. The one zero check in c2v's TypeScript (grains in the deflate engines, blocks in
 * zerofree): it compares against a zero page with memcmp (Buffer.compare) rather than looping in JS.
 */
export function isZero(buf: Uint8Array): boolean {
  for (let off = 0; off < buf.length; off += ZERO_PAGE.length) {
    const end = Math.min(buf.length, off + ZERO_PAGE.length);
    if (Buffer.compare(buf.subarray(off, end), ZERO_PAGE.subarray(0, end - off)) !== 0) return false;
  }
  return true;
}
