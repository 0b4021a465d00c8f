import { registerCleanup } from './cleanup.js';
import type { ImageSource, RootfsSource } from './engine.js';

/**
 * The one open view of an image's file system a run holds (for the engine, a stopped container). It is opened on
 * demand, replaced when another image is asked for, and released on every path out of the run: a normal end, a
 * failure, or an interrupt (through the cleanup registry).
 */
export class RootfsHandle {
  private current: { imageId: string; source: RootfsSource; unregister: () => void } | undefined;

  constructor(private readonly images: ImageSource) {}

  async of(imageId: string): Promise<RootfsSource> {
    if (this.current?.imageId === imageId) return this.current.source;
    await this.release();
    const source = await this.images.openRootfs(imageId);
    this.current = { imageId, source, unregister: registerCleanup('container', () => source.release()) };
    return source;
  }

  async release(): Promise<void> {
    const open = this.current;
    if (!open) return;
    this.current = undefined;
    try {
      await open.source.release();
    } finally {
      open.unregister();
    }
  }
}
