/**
 * --format netboot: the image's file system streams once into a squashfs root image, and the kernel, its
 * initramfs and the modules the boot step needs are read back out of that image. The initramfs gets c2v's boot
 * step appended as a second archive; boot.ipxe, the GRUB entry and the README carry the root image's digest.
 */
import { createReadStream } from 'node:fs';
import { appendFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { C2vError } from '../errors.js';
import type { RootfsSource } from '../adapters/engine.js';
import { copySquashfsFile, plainModule, readSquashfsFile, squashfsFromTar } from '../adapters/squashfs.js';
import { appendPadding, encodeNewc, type CpioEntry } from '../formats/cpio.js';
import type { RootfsInfo } from '../formats/rootfs-filter.js';
import { chooseKernel, type KernelChoice } from '../plan/boot-config.js';
import type { DiskPlan } from '../plan/conversion.js';
import { INITRAMFS_MODULE_DIR, INITRAMFS_SCRIPT, moduleLoadOrder, NETBOOT_FILES, NetbootPlanError, netbootTexts, sha256Sums, type KernelModules, type NetbootPlan } from '../plan/netboot.js';
import { renderTemplate, type Templates } from '../plan/template.js';
import { formatSize } from '../config/size.js';
import type { StageRunner } from '../progress.js';
import type { Workspace } from '../adapters/workspace.js';
import { noKernelError, streamRootfsInto } from './root-filesystem.js';

export interface NetbootRequest {
  source: RootfsSource;
  /** The guest files, edits, host name and epoch, as the disk would get them. */
  disk: DiskPlan;
  netboot: NetbootPlan;
  /** A new folder in the workspace. */
  folder: string;
  templates: Templates;
  onProgress?: (tarBytes: number) => void;
}

export interface NetbootOutput {
  /** Bytes of the folder's files. */
  bytes: number;
  rootBytes: number;
  kernel: string;
}

/** The two stages of a network boot folder, made in the workspace and published as the output folder. */
export async function buildNetbootFolder(
  req: Omit<NetbootRequest, 'folder' | 'onProgress'> & { ws: Workspace; stages: StageRunner; output: string },
): Promise<NetbootOutput> {
  const folder = req.ws.file('netboot');
  const { stages } = req;
  const root = await stages.run(
    'rootfs',
    'Writing the squashfs root image from the image',
    (_update, progress) => {
      const total = Math.max(1, req.disk.image.sizeBytes);
      return writeRootImage({ ...req, folder, onProgress: (bytes) => progress(Math.min(bytes, total), total) });
    },
    (r) => `${r.info.entries} entries, ${formatSize(r.info.bytes)} of files in ${formatSize(r.bytes)}, kernel ${r.kernel.kernel}`,
  );
  const done = await stages.run(
    'netboot',
    'Writing the kernel, the initramfs with the boot step, and boot.ipxe',
    () => finishNetbootFolder({ ...req, folder }, root),
    (r) => `root image sha256 ${r.rootSha256.slice(0, 12)}, modules ${r.modules.join(', ') || 'none (built in)'}, initramfs ${formatSize(r.initrdBytes)}`,
  );
  await req.ws.publish(folder, req.output);
  return { bytes: done.folderBytes, rootBytes: root.bytes, kernel: root.kernel.kernel };
}

export interface RootImageResult {
  info: RootfsInfo;
  kernel: KernelChoice;
  bytes: number;
}

/** The root image: the filtered tar into tar2sqfs, with the network boot's fstab in place of the disk's. */
export async function writeRootImage(req: NetbootRequest): Promise<RootImageResult> {
  await mkdir(req.folder);
  const image = path.join(req.folder, NETBOOT_FILES.root);
  const { disk } = req;
  let kernel: KernelChoice | undefined;
  const info = await streamRootfsInto(
    req,
    {
      hostname: disk.rootfs.hostname,
      fstab: renderTemplate(req.templates.netbootFstab, {}),
      extraFiles: disk.guest.additions,
      edits: disk.guest.edits,
      leaveOut: disk.guest.leaveOut ? new RegExp(disk.guest.leaveOut) : undefined,
      mtimeClamp: disk.epoch,
      finalFiles: (seen) => {
        kernel = chooseKernel(seen.kernels, seen.initrds, seen.symlinks);
        return [];
      },
    },
    () => squashfsFromTar(image, { epoch: disk.epoch }),
    (e) => e,
  );
  if (!kernel) throw noKernelError();
  return { info, kernel, bytes: (await stat(image)).size };
}

export interface NetbootFolderResult {
  rootSha256: string;
  modules: string[];
  initrdBytes: number;
  folderBytes: number;
}

/** The kernel, the initramfs with c2v's step appended, and the server-side files, beside the root image. */
export async function finishNetbootFolder(req: NetbootRequest, root: RootImageResult): Promise<NetbootFolderResult> {
  const { folder } = req;
  const image = path.join(folder, NETBOOT_FILES.root);
  const { kernel } = root;
  if (!kernel.initrd) {
    throw new C2vError('input', `the image has ${kernel.kernel} but no initramfs beside it, and the network boot step runs in one: install initramfs-tools in the image (update-initramfs -c -k all)`);
  }
  const mods = await kernelModules(image, kernel.version ?? '');
  let order;
  try {
    order = moduleLoadOrder(mods);
  } catch (e) {
    if (e instanceof NetbootPlanError) throw new C2vError('input', e.message, { cause: e });
    throw e;
  }
  const entries: CpioEntry[] = [
    { path: 'scripts', kind: 'dir', mode: 0o755 },
    { path: INITRAMFS_SCRIPT, kind: 'file', mode: 0o755, data: Buffer.from(renderTemplate(req.templates.netbootScript, {})) },
    { path: path.dirname(INITRAMFS_MODULE_DIR), kind: 'dir', mode: 0o755 },
    { path: INITRAMFS_MODULE_DIR, kind: 'dir', mode: 0o755 },
  ];
  for (const m of order) {
    const data = await plainModule(m.path, await readSquashfsFile(image, `${mods.dir}/${m.path}`));
    entries.push({ path: `${INITRAMFS_MODULE_DIR}/${m.archiveName}`, kind: 'file', mode: 0o644, data });
  }
  const kernelPath = path.join(folder, NETBOOT_FILES.kernel);
  const initrdPath = path.join(folder, NETBOOT_FILES.initrd);
  await copySquashfsFile(image, kernel.kernel, kernelPath);
  await copySquashfsFile(image, kernel.initrd, initrdPath);
  // The kernel finds the next archive only at a 4-byte boundary after the distribution's.
  const cpio = encodeNewc(entries, req.disk.epoch ?? 0);
  await appendFile(initrdPath, Buffer.concat([appendPadding((await stat(initrdPath)).size), cpio]));

  const rootSha256 = await sha256File(image);
  const texts = netbootTexts(req.netboot, { sha256: rootSha256, bytes: root.bytes }, req.disk.rootfs.title, req.templates);
  await writeFile(path.join(folder, NETBOOT_FILES.ipxe), texts.ipxe);
  await writeFile(path.join(folder, NETBOOT_FILES.grub), texts.grub);
  await writeFile(path.join(folder, NETBOOT_FILES.readme), texts.readme);
  const summed = [NETBOOT_FILES.kernel, NETBOOT_FILES.initrd, NETBOOT_FILES.root, NETBOOT_FILES.ipxe, NETBOOT_FILES.grub, NETBOOT_FILES.readme];
  const sums = await Promise.all(summed.map(async (name) => ({ name, sha256: name === NETBOOT_FILES.root ? rootSha256 : await sha256File(path.join(folder, name)) })));
  await writeFile(path.join(folder, NETBOOT_FILES.sums), sha256Sums(sums));
  const sizes = await Promise.all(Object.values(NETBOOT_FILES).map(async (name) => (await stat(path.join(folder, name))).size));
  return { rootSha256, modules: order.map((m) => m.name), initrdBytes: (await stat(initrdPath)).size, folderBytes: sizes.reduce((a, b) => a + b, 0) };
}

/** The kernel's module indexes, under /usr/lib (merged /usr) or /lib; a squashfs path must not cross a symlink. */
async function kernelModules(image: string, version: string): Promise<KernelModules & { dir: string }> {
  for (const dir of [`usr/lib/modules/${version}`, `lib/modules/${version}`]) {
    const dep = await readSquashfsFile(image, `${dir}/modules.dep`).catch(() => undefined);
    if (!dep) continue;
    const builtin = await readSquashfsFile(image, `${dir}/modules.builtin`).catch(() => Buffer.alloc(0));
    return { version, dep: dep.toString('utf8'), builtin: builtin.toString('utf8'), dir };
  }
  throw new C2vError('input', `the image's kernel ${version} has no /lib/modules/${version}/modules.dep, so the network boot's modules cannot be found: run depmod ${version} in the image`);
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
