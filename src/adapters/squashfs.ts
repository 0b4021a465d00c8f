/**
 * squashfs-tools-ng at the edge: tar2sqfs turns the root file system's tar stream into a squashfs image without
 * root (owners, modes, device nodes and xattrs come from the tar, nothing is extracted), and rdsquashfs reads
 * single files back out of it. squashfs-tools' own mksquashfs learned to read a tar only in 4.6 (sqfstar), which
 * bookworm does not have; tar2sqfs is in bookworm and trixie alike.
 */
import os from 'node:os';
import { gunzipSync } from 'node:zlib';
import { run } from './exec.js';

export const ZSTD_LEVEL = 6;

/** A tar2sqfs reading stdin: the caller pipes the tar into `child.stdin`. */
export function squashfsFromTar(outPath: string, opts: { epoch?: number }) {
  const defaults = `uid=0,gid=0,mode=0755,mtime=${opts.epoch ?? 0}`;
  // zstd: fast to unpack in the guest, and every kernel c2v boots has it. Level 6, not tar2sqfs's 15: on a 640 MB
  // image (npm run bench -- --squashfs) 15 took 45 s for a root 6% smaller than 6 makes in 4 s. --no-skip: an entry
  // tar2sqfs cannot read fails the conversion instead of silently leaving a file out of the root.
  const args = ['--compressor', 'zstd', '--comp-extra', `level=${ZSTD_LEVEL}`, '--block-size', '131072', '--num-jobs', String(Math.max(1, os.availableParallelism())), '--defaults', defaults, '--no-skip', '--quiet', outPath];
  return run('tar2sqfs', args, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
}

/** Copies one regular file out of a squashfs image into `dest` (a new file). */
export async function copySquashfsFile(image: string, inner: string, dest: string): Promise<void> {
  await run('rdsquashfs', ['--cat', inner, image], { stdout: { file: dest }, stderr: 'pipe' });
}

/** One file of a squashfs image in memory: for small ones (module indexes, modules). */
export async function readSquashfsFile(image: string, inner: string): Promise<Buffer> {
  const r = await run('rdsquashfs', ['--cat', inner, image], { encoding: 'buffer', stripFinalNewline: false, maxBuffer: 256 * 1024 * 1024 });
  return Buffer.from(r.stdout as Uint8Array);
}

/** A kernel module as the kernel's insmod takes it: compressed ones (.ko.xz, .ko.zst, .ko.gz) unpacked here. */
export async function plainModule(file: string, data: Buffer): Promise<Buffer> {
  if (file.endsWith('.ko')) return data;
  if (file.endsWith('.gz')) return gunzipSync(data);
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : undefined;
  if (!tool) throw new Error(`unknown kernel module compression: ${file}`);
  const r = await run(tool, ['-dc'], { input: data, encoding: 'buffer', stripFinalNewline: false, maxBuffer: 256 * 1024 * 1024 });
  return Buffer.from(r.stdout as Uint8Array);
}
