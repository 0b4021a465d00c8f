import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import createDebug from 'debug';
import { registerCleanup, removeDirSync } from './cleanup.js';

const debug = createDebug('c2v:workspace');

/**
 * A private staging folder beside the output (same filesystem, so the finished artefact moves into place with
 * one rename). Outputs never appear under their final name half-written.
 */
export class Workspace {
  private unregister: () => void;

  private constructor(readonly dir: string, private readonly keep: boolean) {
    this.unregister = registerCleanup(`workspace ${dir}`, () => this.remove(), () => {
      if (!this.keep) removeDirSync(this.dir);
    });
  }

  static async create(parent: string, keep = false): Promise<Workspace> {
    await mkdir(parent, { recursive: true });
    const dir = await mkdtemp(path.join(parent, '.c2v-work-'));
    debug('workspace %s', dir);
    return new Workspace(dir, keep);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Moves a finished artefact to its final name, replacing an older one there. */
  async publish(from: string, to: string): Promise<void> {
    const existing = await stat(to).catch(() => undefined);
    if (existing?.isDirectory()) {
      const old = `${to}.c2v-old-${process.pid}`;
      await rename(to, old);
      await rename(from, to);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(from, to);
    }
  }

  private async remove(): Promise<void> {
    if (this.keep) {
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
