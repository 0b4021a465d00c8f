import { C2vError } from '../errors.js';
import { run } from './exec.js';

/** e2fsprogs learned to read a tar for `mke2fs -d` in 1.47.1. */
export const MIN_E2FSPROGS = '1.47.1';

export function compareDotted(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** "mke2fs 1.47.2 (1-Jan-2025)" -> "1.47.2" */
export function parseMke2fsVersion(text: string): string | undefined {
  return /mke2fs\s+(\d+(?:\.\d+)+)/.exec(text)?.[1];
}

let checked: Promise<string> | undefined;

/** Fails early, with the fix, when the host's mke2fs cannot take a tar on stdin. */
export function requireTarCapableMke2fs(): Promise<string> {
  checked ??= (async () => {
    const r = await run('mke2fs', ['-V'], { reject: false, all: true });
    const version = parseMke2fsVersion(String(r.all ?? ''));
    if (!version) throw new C2vError('tool', 'could not tell the version of mke2fs: install e2fsprogs >= 1.47.1');
    if (compareDotted(version, MIN_E2FSPROGS) < 0) {
      throw new C2vError(
        'tool',
        `mke2fs ${version} cannot read a tar (needs e2fsprogs >= ${MIN_E2FSPROGS}): on Debian bookworm run apt-get install -t bookworm-backports e2fsprogs (or scripts/install-host-deps)`,
      );
    }
    return version;
  })();
  return checked;
}
