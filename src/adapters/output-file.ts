import { open, rm, type FileHandle } from 'node:fs/promises';
import { C2vError } from '../errors.js';

/**
 * Runs `write` on a new file at outPath. On any failure the partial file goes, so that nothing half-written is
 * ever left under an output's name, and a full disk is said as such.
 */
export async function writeNewFile<T>(outPath: string, write: (fh: FileHandle) => Promise<T>): Promise<T> {
  const fh = await open(outPath, 'w');
  try {
    const result = await write(fh);
    await fh.close();
    return result;
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(outPath, { force: true });
    if ((e as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new C2vError('space', `no space left on the device while writing ${outPath}`, { cause: e });
    }
    throw e;
  }
}
