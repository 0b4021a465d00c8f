import { readFileSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import createDebug from 'debug';

const debug = createDebug('c2v:cleanup');

/**
 * What must be undone however the run ends: temp folders and engine containers. The pipeline registers and
 * unregisters; the CLI's signal handler drains it before exiting, so Ctrl-C leaves nothing behind.
 */
type Task = { name: string; run: () => Promise<void> | void; sync?: () => void };
const tasks = new Set<Task>();

export function registerCleanup(name: string, run: () => Promise<void> | void, sync?: () => void): () => void {
  const task: Task = { name, run, sync };
  tasks.add(task);
  return () => {
    tasks.delete(task);
  };
}

/** Runs every pending cleanup (newest first), each at most once; errors are logged, never thrown. */
export async function drainCleanups(timeoutMs = 15_000): Promise<void> {
  const pending = [...tasks].reverse();
  tasks.clear();
  const all = Promise.all(
    pending.map(async (t) => {
      try {
        await t.run();
      } catch (e) {
        debug('cleanup %s failed: %s', t.name, (e as Error).message);
      }
    }),
  );
  await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}

/** Last resort at process exit: the synchronous part of what is still registered (removing temp folders). */
export function drainCleanupsSync(): void {
  for (const t of [...tasks].reverse()) {
    try {
      t.sync?.();
    } catch {
      /* exiting anyway */
    }
  }
  tasks.clear();
}

export function removeDirSync(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Where a pid means something: the host name, its boot and the pid namespace (a container has its own). Leftovers
 * (containers, workspaces) carry it with the pid of the run that made them, so a later run on the same host can
 * tell a dead run's leftovers from a live parallel run's.
 */
export const HOST_ID = hostIdentity();

function hostIdentity(): string {
  const read = (f: () => string): string => {
    try {
      return f().trim();
    } catch {
      return '';
    }
  };
  const boot = read(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')).slice(0, 8);
  const pidns = read(() => readlinkSync('/proc/self/ns/pid')).replace(/^pid:\[(\d+)\]$/, '$1');
  return [os.hostname(), boot, pidns].filter(Boolean).join('/');
}

/** Whether a process of this pid namespace runs; EPERM means it does, as someone else. */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
