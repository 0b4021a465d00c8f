import { run } from '../adapters/exec.js';

/**
 * Runs the real zerofree on the root filesystem inside the disk file; libext2fs takes the partition's offset
 * from the `?offset=` suffix, so no partition is cut out or mounted. On a filesystem mke2fs just made in a sparse
 * file the free blocks are holes already and this only verifies that; it matters when the rootfs was touched.
 */
export async function zerofreeRoot(diskPath: string, offsetBytes: number): Promise<void> {
  await run('zerofree', [`${diskPath}?offset=${offsetBytes}`]);
}
