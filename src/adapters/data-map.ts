/**
 * Where a sparse file has data. Node has no SEEK_DATA, so this asks the kernel through tools, in order:
 * 1. FIEMAP via `filefrag -v` (e2fsprogs, which c2v needs anyway): ext4, XFS, btrfs. One call, a few ms.
 * 2. SEEK_DATA/SEEK_HOLE via python3's os.lseek: also tmpfs and overlayfs, where FIEMAP is missing.
 * 3. Nothing known: the whole file counts as data (correct, only slower: holes read as zeros).
 * Each strategy that is skipped says why at debug level (DEBUG=c2v:disk).
 */
import createDebug from 'debug';
import { run } from './exec.js';

const debug = createDebug('c2v:disk');

/** A byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface DataMap {
  ranges: ByteRange[];
  method: 'fiemap' | 'seek-data' | 'none';
}

/**
 * Parses `filefrag -v` output into byte ranges. Extents flagged `unwritten` (preallocated) read as zeros and are
 * left out; `delalloc` ones (still in the page cache) are data. Exported for tests.
 */
export function parseFilefrag(text: string): ByteRange[] {
  const bs = /\(\d+ blocks? of (\d+) bytes\)/.exec(text);
  if (!bs) throw new Error('filefrag printed no block size');
  const blockBytes = Number(bs[1]);
  const ranges: ByteRange[] = [];
  let listed = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+\d+\.\.\s*\d+:\s+\d+:(.*)$/.exec(line);
    if (!m) continue;
    listed += 1;
    if (/\bunwritten\b/.test(m[3])) continue;
    ranges.push({ start: Number(m[1]) * blockBytes, end: (Number(m[2]) + 1) * blockBytes });
  }
  // Guard against a format this parser does not know (FIBMAP fallback, another version): an extent count
  // with no extent parsed must not read as "no data".
  const found = /: (\d+) extents? found/.exec(text);
  if (!found) throw new Error('filefrag output not understood (no extent count)');
  if (Number(found[1]) > 0 && (listed === 0 || !/ext:\s+logical_offset:/.test(text))) {
    throw new Error('filefrag output not understood (extents found but none listed)');
  }
  return ranges;
}

const SEEK_DATA_SCRIPT = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
end = os.fstat(fd).st_size
pos = 0
out = []
while pos < end:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as e:
        if e.errno == 6:  # ENXIO: no data after pos
            break
        raise
    stop = os.lseek(fd, start, os.SEEK_HOLE)
    out.append("%d %d" % (start, stop))
    pos = stop
print("\\n".join(out))
`;

/** Sorted, merged ranges clipped to [0, size). */
export function normalizeRanges(ranges: ByteRange[], size: number): ByteRange[] {
  const sorted = ranges
    .map((r) => ({ start: Math.max(0, r.start), end: Math.min(size, r.end) }))
    .filter((r) => r.end > r.start)
    .sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/** Where two ascending lists of disjoint ranges overlap. */
export function intersectRanges(a: readonly ByteRange[], b: readonly ByteRange[]): ByteRange[] {
  const out: ByteRange[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const start = Math.max(a[i].start, b[j].start);
    const end = Math.min(a[i].end, b[j].end);
    if (end > start) out.push({ start, end });
    if (a[i].end < b[j].end) i++;
    else j++;
  }
  return out;
}

export async function dataMap(path: string, size: number): Promise<DataMap> {
  try {
    const { stdout } = await run('filefrag', ['-v', path], { env: { LC_ALL: 'C' } });
    return { ranges: normalizeRanges(parseFilefrag(String(stdout)), size), method: 'fiemap' };
  } catch (e) {
    debug('data map: FIEMAP (filefrag -v) unusable: %s', (e as Error).message.split('\n')[0]);
  }
  try {
    const { stdout } = await run('python3', ['-c', SEEK_DATA_SCRIPT, path]);
    const ranges = String(stdout)
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [start, end] = l.split(' ').map(Number);
        return { start, end };
      });
    return { ranges: normalizeRanges(ranges, size), method: 'seek-data' };
  } catch (e) {
    debug('data map: SEEK_DATA (python3) unusable: %s', (e as Error).message.split('\n')[0]);
  }
  debug('data map: none; reading all of %s', path);
  return { ranges: size > 0 ? [{ start: 0, end: size }] : [], method: 'none' };
}
