import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { run } from '../adapters/exec.js';
import { requireTarCapableMke2fs } from '../adapters/tools.js';
import type { RootfsSource } from '../adapters/engine.js';
import { filterRootfs, type RootfsAddition, type RootfsFile, type RootfsFixes, type RootfsInfo } from '../formats/rootfs-filter.js';
import type { ResultPromise } from 'execa';
import type { GuestEdit } from '../formats/guest-edits.js';
import { chooseKernel, fstab, grubConfig, type KernelChoice } from '../plan/boot-config.js';
import type { Templates } from '../plan/template.js';
import { mke2fsConfig } from '../plan/rootfs.js';
import { formatSize } from '../config/size.js';
import { buildEpoch } from '../plan/identity.js';

const debug = createDebug('c2v:disk');

export interface RootFilesystemRequest {
  source: RootfsSource;
  /** ext4 features the guest's own tools understand (plan/rootfs.ts ext4Features). */
  features: string[];
  diskPath: string;
  offsetBytes: number;
  sizeBytes: number;
  fsUuid: string;
  hashSeed: string;
  espUuid: string;
  hostname: string;
  title: string;
  workDir: string;
  mtimeClamp?: number;
  /** Added to the kernel command line in grub.cfg. */
  kernelCmdline?: string;
  /** For fstab and grub.cfg (adapters/templates.ts loadTemplates). */
  templates: Templates;
  /** Files of the image left out (plan/guest-files.ts). */
  leaveOut?: RegExp;
  /** Files, links and folders c2v adds to the guest (the app service, keys), appended to the stream. */
  extraFiles?: RootfsAddition[];
  /** Small files of the image c2v rewrites (root's password). */
  edits?: GuestEdit[];
  /** Inode count for mke2fs -N; default one per 8 KiB. */
  inodes?: number;
  /** Called as the tar stream reaches mke2fs, with its bytes so far. */
  onProgress?: (tarBytes: number) => void;
}

/**
 * The content did not fit the root partition's blocks or inodes. The stream is gone by then; the caller can
 * measure it (measureRootFilesystem) and size again, or tell the user how much is needed.
 */
export class RootfsTooSmall extends C2vError {
  constructor(
    readonly sizeBytes: number,
    options: { cause?: unknown; detail?: string },
  ) {
    super('input', `the image content does not fit the ${formatSize(sizeBytes)} root partition: raise --disk-size (or use --disk-size auto)`, options);
  }
}

export interface RootFilesystemResult {
  info: RootfsInfo;
  kernel: KernelChoice;
  features: string[];
}

/**
 * Streams the container filesystem through the filter straight into mke2fs, which writes the ext4 into the
 * root partition's byte range of the disk file. Nothing is extracted on the host, so ownership, device nodes and
 * capabilities survive without root.
 */
export async function makeRootFilesystem(req: RootFilesystemRequest): Promise<RootFilesystemResult> {
  await requireTarCapableMke2fs();
  const features = req.features;
  const conf = path.join(req.workDir, 'mke2fs.conf');
  await writeFile(conf, mke2fsConfig(features));

  // SOURCE_DATE_EPOCH (or the epoch the caller derived from the image) pins every time mke2fs writes.
  const epoch = req.mtimeClamp ?? buildEpoch(process.env.SOURCE_DATE_EPOCH, undefined);

  let kernel: KernelChoice | undefined;
  const args = [
    '-F',
    '-q',
    '-t',
    'ext4',
    '-L',
    'root',
    '-U',
    req.fsUuid,
    '-E',
    // root_owner: the tar from docker export has no entry for / itself, and mke2fs would otherwise give the root
    // directory the uid of whoever runs c2v (not root when c2v runs rootless), which also changes the bytes.
    `offset=${req.offsetBytes},hash_seed=${req.hashSeed},lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0`,
    '-d',
    '-',
    req.diskPath,
    `${Math.floor(req.sizeBytes / 1024)}k`,
  ];
  if (req.inodes) args.splice(args.indexOf('-d'), 0, '-N', String(req.inodes));
  const env: Record<string, string> = { MKE2FS_CONFIG: conf };
  if (epoch !== undefined) {
    // 1.47.1+ reads SOURCE_DATE_EPOCH; E2FSPROGS_FAKE_TIME is the older spelling of the same thing.
    env.SOURCE_DATE_EPOCH = String(epoch);
    env.E2FSPROGS_FAKE_TIME = String(epoch);
  }
  const info = await streamRootfsInto(req, filterOptions(req, epoch, (k) => (kernel = k)), () => run('mke2fs', args, { env, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }), (e) => mapMke2fsError(e, req.sizeBytes));
  debug('rootfs: %d entries, %d bytes, features %s', info.entries, info.bytes, features.join(','));
  if (!kernel) throw noKernelError();
  return { info, kernel, features };
}

export function noKernelError(): C2vError {
  return new C2vError(
    'input',
    'the image has no kernel in /boot: add one to the image (Debian/Ubuntu: RUN apt-get install -y linux-image-amd64 systemd-sysv; Alpine: RUN apk add linux-virt openrc)',
  );
}

/**
 * Streams the image's file system through the filter into a tool reading a tar on stdin (mke2fs, tar2sqfs) and
 * returns what went through. A failure names its first cause: a dead export stream or a refused entry makes the
 * tool fail too (on a cut tar), and only the tool's own failures go through `mapToolError`.
 */
export async function streamRootfsInto(
  req: { source: RootfsSource; onProgress?: (tarBytes: number) => void },
  fixes: RootfsFixes,
  start: () => ResultPromise,
  mapToolError: (e: unknown) => unknown,
): Promise<RootfsInfo> {
  const input = await req.source.export();
  // The engine's stream failing (engine stopped, connection cut) is told apart from a bad tar and from the tool.
  let sourceError: Error | undefined;
  input.on('error', (e: Error) => {
    // Not the echo of our own side failing (the tool gone, the filter refusing an entry), which tears the pipe down.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED' || code === 'EPIPE' || e instanceof C2vError) return;
    sourceError ??= e;
  });
  const { output, info } = filterRootfs(input, fixes);
  if (req.onProgress) {
    // Watching the export's chunks adds no stage to the stream (the filter already reads them in flowing mode),
    // and backpressure from the tool pauses these events with the rest.
    let tarBytes = 0;
    const onProgress = req.onProgress;
    input.on('data', (chunk: Buffer) => onProgress((tarBytes += chunk.length)));
  }
  const child = start();
  const feed = pipeline(output, child.stdin!);
  const [tool, fed, seen] = await Promise.allSettled([child, feed, info]);
  if (tool.status === 'rejected' || fed.status === 'rejected' || seen.status === 'rejected') {
    input.destroy();
    if (sourceError) throw exportFailed(sourceError);
    if (seen.status === 'rejected' && seen.reason instanceof C2vError) throw seen.reason;
    if (tool.status === 'rejected') throw mapToolError(tool.reason);
    if (seen.status === 'rejected') throw exportFailed(seen.reason as Error);
    throw exportFailed((fed as PromiseRejectedResult).reason as Error);
  }
  return seen.value;
}

/** The filter's fixes and added files, the same for the real run and a measuring one. */
function filterOptions(req: RootFilesystemRequest, epoch: number | undefined, onKernel: (k: KernelChoice | undefined) => void) {
  return {
    hostname: req.hostname,
    fstab: fstab({ rootFsUuid: req.fsUuid, espUuid: req.espUuid }, req.templates),
    ensureDirs: ['boot/efi', 'boot/grub'],
    extraFiles: req.extraFiles,
    edits: req.edits,
    leaveOut: req.leaveOut,
    mtimeClamp: epoch,
    finalFiles: (seen: RootfsInfo): RootfsFile[] => {
      const kernel = chooseKernel(seen.kernels, seen.initrds, seen.symlinks);
      onKernel(kernel);
      if (!kernel) return [];
      return [{ path: 'boot/grub/grub.cfg', content: grubConfig({ title: req.title, rootFsUuid: req.fsUuid, kernel, extraCmdline: req.kernelCmdline }, req.templates), mode: 0o644 }];
    },
  };
}

/**
 * Streams the image through the filter once more, into nothing, to learn what the content weighs in ext4. Only
 * run after the content did not fit: the export is the costly part, and sizing by bytes is right for most images.
 */
export async function measureRootFilesystem(req: RootFilesystemRequest): Promise<RootfsInfo> {
  const epoch = req.mtimeClamp ?? buildEpoch(process.env.SOURCE_DATE_EPOCH, undefined);
  const input = await req.source.export();
  const { output, info } = filterRootfs(input, filterOptions(req, epoch, () => undefined));
  try {
    await pipeline(
      output,
      new Writable({
        write: (_chunk, _enc, done) => done(),
      }),
    );
    return await info;
  } catch (e) {
    input.destroy();
    if (e instanceof C2vError) throw e;
    throw exportFailed(e as Error);
  }
}

export function exportFailed(e: Error): C2vError {
  const code = (e as NodeJS.ErrnoException).code;
  const why = code && !e.message.includes(code) ? `${e.message} (${code})` : e.message;
  return new C2vError('engine', `the container engine stopped sending the image's file system (${why}): check that the engine still runs (docker info) and retry`, { cause: e });
}

function mapMke2fsError(e: unknown, sizeBytes: number): unknown {
  const text = e instanceof C2vError ? (e.detail ?? e.message) : '';
  if (/No space left on device/i.test(text)) {
    return new C2vError('space', `the workspace ran out of space while writing the root filesystem: free space there or point --workdir elsewhere`, { cause: e });
  }
  if (e instanceof C2vError && /Could not allocate|No free space|inode/i.test(text)) {
    return new RootfsTooSmall(sizeBytes, { cause: e, detail: e.detail });
  }
  return e;
}
