import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import createDebug from 'debug';
import { execa, type Options, type ResultPromise } from 'execa';
import { C2vError } from '../errors.js';

const debug = createDebug('c2v:exec');

/** Which Debian package provides each host tool, so a missing one can be named with its fix. */
export const TOOL_PACKAGES: Record<string, string> = {
  mke2fs: 'e2fsprogs (>= 1.47.1; bookworm-backports)',
  e2fsck: 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mmd: 'mtools',
  'grub-mkimage': 'grub-common (with grub-pc-bin and grub-efi-amd64-bin)',
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  xmllint: 'libxml2-utils',
  genisoimage: 'genisoimage',
  xorriso: 'xorriso',
  zstd: 'zstd',
  tar2sqfs: 'squashfs-tools-ng',
  rdsquashfs: 'squashfs-tools-ng',
  xz: 'xz-utils',
};

function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/**
 * The one way c2v runs a subprocess: argv logged at debug level, failures turned into one typed
 * error carrying the exit code and the end of stderr.
 */
export function run(file: string, args: readonly string[], options: Options = {}): ResultPromise {
  debug('%s %s', file, args.join(' '));
  const child = execa(file, args, { stripFinalNewline: true, ...options });
  // Attach the mapping without detaching the ResultPromise's stream properties (callers pipe into stdin).
  const mapped = child.catch((e: unknown) => {
    throw toolError(file, e);
  });
  return Object.assign(child, {
    then: mapped.then.bind(mapped),
    catch: mapped.catch.bind(mapped),
    finally: mapped.finally.bind(mapped),
  }) as ResultPromise;
}

export function toolError(file: string, e: unknown): C2vError {
  const err = e as { code?: string; exitCode?: number; stderr?: unknown; isCanceled?: boolean; isTerminated?: boolean; signal?: string };
  if (err.code === 'ENOENT') {
    const pkg = TOOL_PACKAGES[file];
    return new C2vError('tool', `${file} is not installed${pkg ? `: install the Debian package ${pkg}` : ''} (or run scripts/install-host-deps)`, { cause: e });
  }
  if (err.isTerminated && (err.signal === 'SIGINT' || err.signal === 'SIGTERM')) {
    return new C2vError('interrupted', `${file} was interrupted`, { cause: e });
  }
  const stderr = typeof err.stderr === 'string' ? tail(err.stderr) : '';
  if (/No space left on device|Disk quota exceeded/i.test(stderr)) {
    return new C2vError('space', `${file} ran out of disk space in the workspace: free space there, or point --workdir at a larger filesystem`, { cause: e, detail: stderr });
  }
  return new C2vError('tool', `${file} failed (exit ${err.exitCode ?? '?'})${stderr ? `: ${stderr.split('\n').pop()}` : ''}`, {
    cause: e,
    detail: stderr,
  });
}

/** Where `file` would be found on PATH, or undefined. */
export async function findOnPath(file: string, pathVar = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of pathVar.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, file);
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/**
 * Fails before any long step (a build, an export) when a host tool is missing, naming every missing one and the
 * Debian packages that provide them, so one apt-get fixes it.
 */
export async function requireTools(files: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const f of files) if (!(await findOnPath(f))) missing.push(f);
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map((f) => (TOOL_PACKAGES[f] ?? f).split(' ')[0]))];
  const named = missing.map((f) => (TOOL_PACKAGES[f] ? `${f} (Debian package ${TOOL_PACKAGES[f]})` : f)).join(', ');
  throw new C2vError('tool', `missing host tool${missing.length > 1 ? 's' : ''}: ${named}; install with apt-get install ${packages.join(' ')} (or run scripts/install-host-deps)`);
}
