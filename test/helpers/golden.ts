/**
 * Golden files hold many renderings, each exactly: a header names the case and its length in bytes, so content
 * that ends without a newline, or holds lines looking like headers, reads back unchanged.
 */
export type GoldenEntries = ReadonlyArray<readonly [name: string, content: string]>;

export function formatGolden(entries: GoldenEntries): Buffer {
  const parts: Buffer[] = [];
  for (const [name, content] of entries) {
    const body = Buffer.from(content, 'utf8');
    parts.push(Buffer.from(`=== ${name} (${body.length} bytes)\n`, 'utf8'), body, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

export function parseGolden(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const eol = data.indexOf(0x0a, at);
    const header = /^=== (.+) \((\d+) bytes\)$/.exec(data.subarray(at, eol < 0 ? data.length : eol).toString('utf8'));
    if (eol < 0 || !header) throw new Error(`golden file: bad header at byte ${at}`);
    const start = eol + 1;
    const end = start + Number(header[2]);
    if (data[end] !== 0x0a) throw new Error(`golden file: entry ${header[1]} is not followed by a newline`);
    out.set(header[1], data.subarray(start, end).toString('utf8'));
    at = end + 1;
  }
  return out;
}
