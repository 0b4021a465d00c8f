import { open, truncate, writeFile } from 'node:fs/promises';

/** A sparse file of `size` bytes holding data only at the given offsets, as a raw disk image mostly is. */
export async function makeSparseFile(path: string, size: number, writes: readonly (readonly [number, Buffer])[]): Promise<void> {
  await writeFile(path, '');
  await truncate(path, size);
  const fh = await open(path, 'r+');
  try {
    for (const [at, data] of writes) await fh.write(data, 0, data.length, at);
  } finally {
    await fh.close();
  }
}
