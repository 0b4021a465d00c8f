import { constants as fsConstants, rmdirSync, rmSync } from 'node:fs';
import { access, copyFile, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { HOST_ID, isProcessAlive, registerCleanup, removeDirSync } from './cleanup.js';

const debug = createDebug('c2v:workspace');

const PREFIX = '.c2v-work-';
/** "<pid> <host id>" of the run that owns a workspace, so a later run can remove what a killed one left. */
const OWNER_FILE = 'c2v-owner';

/**
 * Removes the workspaces in `parent` that runs killed without a chance to clean up (SIGKILL, a power cut) left:
 * those whose owner ran on this host and is gone. Workspaces of live runs, of other hosts sharing the folder, and
 * those without an owner file (still being created, or kept with --keep-workdir) stay.
 */
async function sweepWorkspaces(parent: string, own: string): Promise<void> {
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    const dir = path.join(parent, name);
    if (!name.startsWith(PREFIX) || dir === own) continue;
    const owner = await readFile(path.join(dir, OWNER_FILE), 'utf8').catch(() => '');
    const m = /^(\d+) (.*)\n$/.exec(owner);
    if (!m || m[2] !== HOST_ID || isProcessAlive(Number(m[1]))) continue;
    debug('removing the workspace %s of the dead run %s', dir, m[1]);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

const SPACE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

/** ENOSPC and friends as the "out of space" error (exit 7); anything else unchanged. */
export function spaceError(e: unknown, where: string): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && SPACE_CODES.has(code)) {
    return new C2vError('space', `out of disk space writing ${where} (${code}): free space there, or choose another --workdir or --output`, { cause: e });
  }
  return e;
}

/**
 * mkdir -p, one level at a time: node's recursive mkdir spins forever where mkdir keeps failing with ENOENT
 * (under /proc, for one).
 */
async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    const s = await stat(d).catch(() => undefined);
    if (s) break;
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    await mkdir(d).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}

/**
 * A temporary folder made before the workspace exists (a registry's blob cache, kaniko's tarballs, a prepared
 * build context), in the same place; the parent folders it had to create go with it, so a run that fails then
 * leaves no empty output folder behind.
 */
export async function makeScratchDir(parent: string, prefix: string): Promise<{ dir: string; dispose: () => Promise<void>; disposeSync: () => void }> {
  const created: string[] = [];
  for (let d = path.resolve(parent); !(await stat(d).catch(() => undefined)); d = path.dirname(d)) {
    created.unshift(d);
    if (path.dirname(d) === d) break;
  }
  await makeDirs(parent);
  const dir = await mkdtemp(path.join(parent, prefix));
  const parents = [...created].reverse();
  return {
    dir,
    dispose: async () => {
      await rm(dir, { recursive: true, force: true });
      for (const d of parents) if (!(await rmdir(d).then(() => true, () => false))) break;
    },
    disposeSync: () => {
      rmSync(dir, { recursive: true, force: true });
      for (const d of parents) {
        try {
          rmdirSync(d);
        } catch {
          break;
        }
      }
    },
  };
}

/** The nearest existing ancestor of `parent` must be a writable directory. */
async function checkCreatable(parent: string): Promise<void> {
  let d = parent;
  for (;;) {
    const s = await stat(d).catch(() => undefined);
    if (s) {
      const ok = s.isDirectory() && (await access(d, fsConstants.W_OK | fsConstants.X_OK).then(() => true, () => false));
      // Only /proc, /sys and the like refuse a mkdir under a writable-looking directory; create() reports those.
      if (!ok) throw new C2vError('usage', `cannot create ${parent}: ${d} is ${s.isDirectory() ? 'not writable' : 'not a directory'}; choose a writable place with --workdir or --output`);
      return;
    }
    if (path.dirname(d) === d) return;
    d = path.dirname(d);
  }
}

/**
 * A private staging folder beside the output (same filesystem, so the finished artefact moves into place with
 * one rename). Outputs never appear under their final name half-written. Nothing c2v writes goes anywhere
 * else: temporary files live here, and the output's name is only ever the target of a rename.
 */
export class Workspace {
  private unregister: () => void;

  private constructor(readonly dir: string, private readonly keep: boolean) {
    this.unregister = registerCleanup(`workspace ${dir}`, () => this.remove(), () => {
      if (!this.keep) removeDirSync(this.dir);
    });
  }

  /**
   * Fails early (before a build) when the workspace could not be made in `parent`: its nearest existing
   * ancestor must be a writable directory. Creates nothing.
   */
  static async preflight(...parents: string[]): Promise<void> {
    for (const parent of new Set(parents.map((p) => path.resolve(p)))) await checkCreatable(parent);
  }

  static async create(parent: string, keep = false): Promise<Workspace> {
    let dir: string;
    try {
      await makeDirs(parent);
      dir = await mkdtemp(path.join(parent, PREFIX));
      await writeFile(path.join(dir, OWNER_FILE), `${process.pid} ${HOST_ID}\n`);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const space = spaceError(e, `the workspace in ${parent}`);
      if (space !== e) throw space;
      throw new C2vError('usage', `cannot create a workspace in ${parent} (${err.code ?? err.message}): choose a writable place with --workdir or --output`, { cause: e });
    }
    debug('workspace %s', dir);
    const ws = new Workspace(dir, keep);
    await sweepWorkspaces(parent, dir);
    return ws;
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Moves a finished artefact to its final name, replacing an older one there. Within one filesystem that is one
   * rename. When the workspace is elsewhere (--workdir on another filesystem) the artefact is first copied next to
   * the output under a temporary name and then renamed, so the final name never shows a partial file.
   */
  async publish(from: string, to: string): Promise<void> {
    try {
      await this.moveInto(from, to);
    } catch (e) {
      throw spaceError(e, to);
    }
  }

  private async moveInto(from: string, to: string, copy = false): Promise<void> {
    await makeDirs(path.dirname(to));
    const existing = await stat(to).catch(() => undefined);
    const staged = await this.stageBeside(from, to, copy);
    try {
      if (existing?.isDirectory()) {
        const old = `${to}.c2v-old-${process.pid}`;
        await rename(to, old);
        try {
          await rename(staged.path, to);
        } catch (e) {
          await rename(old, to).catch(() => undefined);
          throw e;
        }
        await rm(old, { recursive: true, force: true });
      } else {
        await rename(staged.path, to);
      }
    } catch (e) {
      // Two bind mounts of one filesystem share st_dev, yet rename(2) between them fails: copy after all.
      if ((e as NodeJS.ErrnoException).code === 'EXDEV' && !copy) {
        await staged.discard();
        return this.moveInto(from, to, true);
      }
      throw e;
    } finally {
      await staged.discard();
    }
  }

  /**
   * `from` itself when it can be renamed to `to`; else a copy beside `to` (under a temporary name that an
   * interrupt or a failure removes again).
   */
  private async stageBeside(from: string, to: string, copy: boolean): Promise<{ path: string; discard: () => Promise<void> }> {
    const [src, dst] = await Promise.all([stat(from), stat(path.dirname(to))]);
    if (src.dev === dst.dev && !copy) return { path: from, discard: async () => {} };
    const staged = path.join(path.dirname(to), `.${path.basename(to)}.c2v-partial-${process.pid}`);
    debug('%s is on another filesystem than %s: copying', this.dir, path.dirname(to));
    const unregister = registerCleanup(`partial ${staged}`, () => rm(staged, { recursive: true, force: true }), () => removeDirSync(staged));
    const discard = async () => {
      // After a successful rename there is nothing left at `staged`; force makes that a no-op.
      await rm(staged, { recursive: true, force: true });
      unregister();
    };
    try {
      if (src.isDirectory()) await cp(from, staged, { recursive: true, errorOnExist: true, force: false });
      else await copyFile(from, staged, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
    } catch (e) {
      await discard();
      throw e;
    }
    return { path: staged, discard };
  }

  private async remove(): Promise<void> {
    if (this.keep) {
      // Without an owner a kept workspace is never swept as a dead run's leftover.
      await rm(path.join(this.dir, OWNER_FILE), { force: true });
      debug('keeping workspace %s', this.dir);
      return;
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  async dispose(): Promise<void> {
    this.unregister();
    await this.remove();
  }
}
