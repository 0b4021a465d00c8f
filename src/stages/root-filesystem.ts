import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { run } from '../adapters/exec.js';
import { requireTarCapableMke2fs } from '../adapters/tools.js';
import type { RootfsSource } from '../adapters/engine.js';
import { filterRootfs, parseOsRelease, type RootfsFile, type RootfsInfo } from '../formats/rootfs-filter.js';
import { chooseKernel, fstab, grubConfig, type KernelChoice } from '../plan/boot-config.js';
import { ext4Features, mke2fsConfig, type OsRelease } from '../plan/rootfs.js';
import { formatSize } from '../config/size.js';

const debug = createDebug('c2v:disk');

export async function readOsRelease(source: RootfsSource): Promise<OsRelease> {
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    const data = await source.readFile(p);
    if (data) return parseOsRelease(data.toString('utf8'));
  }
  return {};
}

export interface RootFilesystemRequest {
  source: RootfsSource;
  osRelease: OsRelease;
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
  /** Files c2v adds to the guest (service units, keys), appended to the stream. */
  extraFiles?: RootfsFile[];
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
  const features = ext4Features(req.osRelease);
  const conf = path.join(req.workDir, 'mke2fs.conf');
  await writeFile(conf, mke2fsConfig(features));

  let kernel: KernelChoice | undefined;
  const input = await req.source.export();
  const { output, info } = filterRootfs(input, {
    hostname: req.hostname,
    fstab: fstab({ rootFsUuid: req.fsUuid, espUuid: req.espUuid }),
    ensureDirs: ['boot/efi', 'boot/grub'],
    extraFiles: req.extraFiles,
    mtimeClamp: req.mtimeClamp,
    finalFiles: (seen) => {
      kernel = chooseKernel(seen.kernels, seen.initrds, seen.symlinks);
      if (!kernel) return [];
      return [{ path: 'boot/grub/grub.cfg', content: grubConfig({ title: req.title, rootFsUuid: req.fsUuid, kernel }), mode: 0o644 }];
    },
  });

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
    `offset=${req.offsetBytes},hash_seed=${req.hashSeed},lazy_itable_init=1,lazy_journal_init=1`,
    '-d',
    '-',
    req.diskPath,
    `${Math.floor(req.sizeBytes / 1024)}k`,
  ];
  const child = run('mke2fs', args, { env: { MKE2FS_CONFIG: conf }, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
  const feed = pipeline(output, child.stdin!);
  const [mk, fed, seen] = await Promise.allSettled([child, feed, info]);
  if (mk.status === 'rejected') {
    input.destroy();
    throw mapMke2fsError(mk.reason, req.sizeBytes);
  }
  if (seen.status === 'rejected') throw seen.reason;
  if (fed.status === 'rejected') throw new C2vError('engine', `the image export stream failed: ${(fed.reason as Error).message}`, { cause: fed.reason });
  debug('rootfs: %d entries, %d bytes, features %s', seen.value.entries, seen.value.bytes, features.join(','));
  if (!kernel) {
    throw new C2vError(
      'input',
      'the image has no kernel in /boot: add one to the image (Debian/Ubuntu: RUN apt-get install -y linux-image-amd64 systemd-sysv; Alpine: RUN apk add linux-virt openrc)',
    );
  }
  return { info: seen.value, kernel, features };
}

function mapMke2fsError(e: unknown, sizeBytes: number): unknown {
  const text = e instanceof C2vError ? (e.detail ?? e.message) : '';
  if (/No space left on device/i.test(text)) {
    return new C2vError('space', `the workspace ran out of space while writing the root filesystem: free space there or point --workdir elsewhere`, { cause: e });
  }
  if (e instanceof C2vError && /Could not allocate|No free space|inode/i.test(text)) {
    return new C2vError('input', `the image content does not fit the ${formatSize(sizeBytes)} root partition: raise --disk-size (or use --disk-size auto)`, { cause: e, detail: e.detail });
  }
  return e;
}
