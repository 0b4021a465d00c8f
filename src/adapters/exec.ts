import createDebug from 'debug';
import { execa, type Options, type ResultPromise } from 'execa';
import { C2vError } from '../errors.js';

const debug = createDebug('c2v:exec');

/** Which Debian package provides each host tool, so a missing one can be named with its fix. */
export const TOOL_PACKAGES: Record<string, string> = {
  mke2fs: 'e2fsprogs (>= 1.47.1; bookworm-backports)',
  e2fsck: 'e2fsprogs',
  zerofree: 'zerofree',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mmd: 'mtools',
  'grub-mkimage': 'grub-common (with grub-pc-bin and grub-efi-amd64-bin)',
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  xmllint: 'libxml2-utils',
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
  return new C2vError('tool', `${file} failed (exit ${err.exitCode ?? '?'})${stderr ? `: ${stderr.split('\n').pop()}` : ''}`, {
    cause: e,
    detail: stderr,
  });
}
