import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { C2vError } from './errors.js';
import type { ConvertOptions } from './config/schema.js';
import { formatSize } from './config/size.js';
import type { ImageEngine, ImageInfo, RootfsSource } from './adapters/engine.js';
import { registerCleanup } from './adapters/cleanup.js';
import { Workspace } from './adapters/workspace.js';
import { streamVmdk, writeVmdk, type VmdkStreamResult } from './adapters/raw-grains.js';
import { requireTarCapableMke2fs } from './adapters/tools.js';
import { StageRunner, type Reporter, type StageTiming } from './progress.js';
import { buildEpoch, deriveIdentity, fatUuid, seedFrom } from './plan/identity.js';
import { requireTools } from './adapters/exec.js';
import { planLayout, type DiskLayout } from './plan/layout.js';
import { autoRootBytes, measuredRootSize, minimumRootBytes } from './plan/rootfs.js';
import { guestOsFor } from './plan/os-type.js';
import { buildOvf, type NicType, type ScsiController } from './plan/ovf.js';
import { formatManifest } from './formats/manifest.js';
import { acquireImage, classifyInput, defaultName } from './stages/acquire.js';
import { makeGrubImages } from './stages/boot-loader.js';
import { createDiskFile, writePartitionTables } from './stages/disk.js';
import { makeEsp } from './stages/esp.js';
import { makeRootFilesystem, measureRootFilesystem, readOsRelease, RootfsTooSmall, type RootFilesystemRequest } from './stages/root-filesystem.js';
import type { RootfsInfo } from './formats/rootfs-filter.js';
import { zerofreeRoot } from './stages/zerofree.js';
import { buildAppliance, probeImage } from './stages/appliance.js';
import { AppliancePlanError, planAppliance, type AppliancePlan, type ImageProbe } from './plan/appliance.js';
import type { OsRelease } from './plan/rootfs.js';
import { StreamingOva, writeOvfFolder } from './stages/package-ova.js';

export interface ConvertResult {
  output: string;
  format: ConvertOptions['format'];
  name: string;
  image: { ref: string; id: string };
  diskBytes: number;
  artifactBytes: number;
  kernel: string;
  timings: StageTiming[];
}

const SCSI: Record<ConvertOptions['scsi'], ScsiController> = { pvscsi: 'VirtualSCSI', lsilogic: 'lsilogic', lsilogicsas: 'lsilogicsas' };
const NIC: Record<ConvertOptions['nic'], NicType> = { vmxnet3: 'VmxNet3', e1000e: 'E1000e' };

function defaultOutput(name: string, format: ConvertOptions['format']): string {
  return format === 'ovf' ? name : `${name}.${format}`;
}

/**
 * The conversion as a list of verb-named steps. Each step gets what it needs and returns what it made;
 * the artefact moves to its final name only at the very end.
 */
export async function convert(opts: ConvertOptions, engine: ImageEngine, reporter: Reporter): Promise<ConvertResult> {
  const stages = new StageRunner(reporter);
  const input = await classifyInput(opts.input);
  const name = opts.name ?? defaultName(input);
  const output = path.resolve(opts.output ?? defaultOutput(name, opts.format));
  const outputIsDir = await stat(output).then((s) => s.isDirectory(), () => false);
  if (outputIsDir && opts.format !== 'ovf') {
    throw new C2vError('usage', `--output ${output} is a directory: give a file name, like ${path.join(output, defaultOutput(name, opts.format))}`);
  }

  // Host tools are checked before a possibly long build, not after it.
  await Promise.all([requireTarCapableMke2fs(), requireTools(['grub-mkimage', 'mkfs.vfat', ...(opts.boot === 'bios' ? [] : ['mmd', 'mcopy'])])]);
  buildEpoch(process.env.SOURCE_DATE_EPOCH, undefined); // a malformed SOURCE_DATE_EPOCH fails here, not after a build
  const workParent = opts.workdir ? path.resolve(opts.workdir) : path.dirname(output);
  await Promise.all([Workspace.preflight(workParent, path.dirname(output)), engine.sweep().catch(() => 0)]);
  const image = await stages.run(
    'acquire',
    input.kind === 'image' ? `Finding image ${input.ref}` : `Building ${path.join(input.contextDir, input.dockerfile)}`,
    (update) => acquireImage(engine, input, { pull: opts.pull, name, onLog: (line) => { stages.log('acquire', line); update(line.slice(0, 100)); } }),
    (i) => `${i.ref} (${formatSize(i.sizeBytes)})`,
  );

  const ws = await Workspace.create(workParent, opts.keepWorkdir);
  let source: RootfsSource | undefined;
  let unregisterSource: (() => void) | undefined;
  try {
    source = await engine.openRootfs(image.id);
    const first = source;
    unregisterSource = registerCleanup('container', () => first.release());
    const osRelease = await readOsRelease(source);

    // An app image gets what a VM needs (kernel, init, network, its command as a service) in a derived image.
    const plan = planApplianceFor(image, osRelease, await probeImage(source, osRelease), opts, await readSshKey(opts.sshKey));
    let vmImage = image;
    if (plan) {
      await first.release();
      unregisterSource();
      vmImage = await stages.run(
        'appliance',
        `Adding ${describePlan(plan)} (${plan.template})`,
        (update) =>
          buildAppliance(engine, image, plan, {
            workDir: ws.dir,
            tag: `c2v-appliance/${name.toLowerCase()}:latest`,
            onLog: (line) => {
              stages.log('appliance', line);
              update(line.slice(0, 100));
            },
          }),
        (i) => `${i.ref} (${formatSize(i.sizeBytes)})`,
      );
      source = await engine.openRootfs(vmImage.id);
      const second = source;
      unregisterSource = registerCleanup('container', () => second.release());
    }
    const opened = source;

    const identity = deriveIdentity(seedFrom([vmImage.id, opts.boot, opts.diskSize, name]));
    // Every time written into the disk: SOURCE_DATE_EPOCH, else the image's creation date (reproducible by default).
    const epoch = buildEpoch(process.env.SOURCE_DATE_EPOCH, vmImage.created);
    let layout = planDisk(vmImage, opts, identity);
    const diskPath = ws.file('disk.raw');
    const wantBios = opts.boot !== 'efi';
    const wantEfi = opts.boot !== 'bios';
    const grub = await stages.run('bootloader', 'Making GRUB images', () =>
      makeGrubImages({ workDir: ws.dir, rootFsUuid: identity.rootFsUuid, bios: wantBios, efi: wantEfi }),
    );

    let refitNote = '';
    const rootRequest = (l: DiskLayout, inodes?: number, onProgress?: (tarBytes: number) => void): RootFilesystemRequest => {
      const part = l.partitions.find((p) => p.role === 'root')!;
      return {
        source: opened,
        osRelease,
        diskPath,
        offsetBytes: part.offsetBytes,
        sizeBytes: part.sizeBytes,
        inodes,
        fsUuid: identity.rootFsUuid,
        hashSeed: identity.rootHashSeed,
        espUuid: fatUuid(identity.espVolumeId),
        hostname: name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'appliance',
        title: osRelease.PRETTY_NAME ?? name,
        workDir: ws.dir,
        kernelCmdline: plan?.kernelCmdline,
        mtimeClamp: epoch,
        onProgress,
      };
    };
    const rootfs = await stages.run(
      'rootfs',
      `Writing the ext4 root filesystem (${formatSize(rootRequest(layout).sizeBytes)}) from the image`,
      async (update, progress) => {
        // The tar runs a little past the image's size (headers), so progress is capped at it.
        const total = Math.max(1, vmImage.sizeBytes);
        const onTar = (bytes: number): void => progress(Math.min(bytes, total), total);
        await createDiskFile(diskPath, layout.diskBytes);
        try {
          return await makeRootFilesystem(rootRequest(layout, undefined, onTar));
        } catch (e) {
          if (!(e instanceof RootfsTooSmall)) throw e;
          // Sized by bytes, an image of many tiny files runs out of blocks or inodes: measure it and size again.
          update('the image holds more files than its size suggests: measuring it');
          const refit = refitDisk(await measureRootFilesystem(rootRequest(layout)), opts, identity, layout);
          layout = refit.layout;
          refitNote = `; the image holds more files than its size suggests, so it was measured and written again into ${formatSize(rootRequest(layout).sizeBytes)} with ${refit.inodes} inodes`;
          update(`writing it again into ${formatSize(rootRequest(layout).sizeBytes)} with ${refit.inodes} inodes`);
          await rm(diskPath, { force: true });
          await createDiskFile(diskPath, layout.diskBytes);
          return await makeRootFilesystem(rootRequest(layout, refit.inodes, onTar));
        }
      },
      (r) => `${r.info.entries} entries, ${formatSize(r.info.bytes)}, kernel ${r.kernel.kernel}${refitNote}`,
    );
    const root = layout.partitions.find((p) => p.role === 'root')!;
    const esp = layout.partitions.find((p) => p.role === 'esp')!;
    await opened.release();
    unregisterSource();

    await stages.run('esp', 'Writing the EFI system partition', () =>
      makeEsp({ diskPath, offsetBytes: esp.offsetBytes, sizeBytes: esp.sizeBytes, volumeId: identity.espVolumeId, efiImagePath: grub.efiImagePath, epoch }),
    );
    await stages.run('partition', 'Writing GPT and boot code', () => writePartitionTables(diskPath, layout, grub));
    await stages.run(
      'zerofree',
      'Zeroing free blocks of the root filesystem',
      () => zerofreeRoot(diskPath, root.offsetBytes),
      (z) => `${z.zeroedBlocks} blocks zeroed; ${formatSize(z.checkedBytes)} of ${formatSize(z.freeBytes)} free space read (the rest are holes)`,
    );

    if (opts.format === 'raw') {
      await ws.publish(diskPath, output);
      return finish(output, layout, rootfs.kernel.kernel);
    }

    const diskName = `${name}-disk1.vmdk`;
    const ovfName = `${name}.ovf`;
    const mfName = `${name}.mf`;
    const vmdkOptions = {
      capacityBytes: layout.diskBytes,
      fileName: diskName,
      adapterType: 'lsilogic' as const,
      virtualHwVersion: opts.hwVersion,
      compressLevel: opts.compressLevel,
      cid: identity.vmdkCid,
    };
    const ovfFor = (fileBytes: number): string =>
      buildOvf({
        name,
        disk: { fileName: diskName, fileBytes, capacityBytes: layout.diskBytes, populatedBytes: rootfs.info.bytes },
        cpus: opts.cpus,
        memoryMiB: opts.memory,
        firmware: wantEfi ? 'efi' : 'bios',
        os: guestOsFor(osRelease, { vmxVersion: opts.hwVersion }),
        vmxVersion: opts.hwVersion,
        scsiController: SCSI[opts.scsi],
        nic: NIC[opts.nic],
        networkName: opts.network,
        annotation: annotation(image, opts),
      });
    const vmdkSummary = (v: VmdkStreamResult & { bytes: number }): string =>
      `${formatSize(v.bytes)} from ${formatSize(v.readBytes)} of data read, ${v.grains} grains (${v.engine}, data map: ${v.mapMethod})`;

    if (opts.format === 'vmdk' || opts.format === 'ovf') {
      // The OVF folder gets its VMDK written in place; nothing is copied afterwards.
      const folder = ws.file('ovf');
      if (opts.format === 'ovf') await mkdir(folder);
      const vmdkPath = opts.format === 'ovf' ? path.join(folder, diskName) : ws.file(diskName);
      const vmdk = await stages.run(
        'vmdk',
        'Writing the streamOptimized VMDK',
        (_update, progress) => writeVmdk(diskPath, vmdkPath, { ...vmdkOptions, onProgress: progress }),
        vmdkSummary,
      );
      await rm(diskPath, { force: true });
      if (opts.format === 'vmdk') {
        await ws.publish(vmdkPath, output);
        return finish(output, layout, rootfs.kernel.kernel, vmdk.bytes);
      }
      const ovfBytes = Buffer.from(ovfFor(vmdk.bytes), 'utf8');
      const mf = Buffer.from(
        formatManifest([
          { name: ovfName, sha256: createHash('sha256').update(ovfBytes).digest('hex') },
          { name: diskName, sha256: vmdk.sha256 },
        ]),
        'utf8',
      );
      const members = [
        { name: ovfName, size: ovfBytes.length, source: ovfBytes },
        { name: mfName, size: mf.length, source: mf },
        { name: diskName, size: vmdk.bytes, source: vmdkPath },
      ];
      await stages.run('package', 'Writing the OVF folder', () => writeOvfFolder(folder, members));
      await ws.publish(folder, output);
      return finish(output, layout, rootfs.kernel.kernel, vmdk.bytes + ovfBytes.length + mf.length);
    }

    // OVA: the VMDK streams straight into the archive, hashed as it goes; the OVF and .mf, which come first,
    // are filled into room reserved for them once the VMDK's size and hash are known.
    const ovaPath = ws.file(`${name}.ova`);
    const ova = await StreamingOva.create(ovaPath, { ovfName, mfName, diskName, ovf: ovfFor });
    let ovaBytes: number;
    try {
      await stages.run(
        'vmdk',
        'Writing the streamOptimized VMDK into the OVA',
        (_update, progress) => ova.writeDisk((sink) => streamVmdk(diskPath, { ...vmdkOptions, onProgress: progress }, sink)),
        vmdkSummary,
      );
      await rm(diskPath, { force: true });
      ovaBytes = (await stages.run('package', 'Writing the OVF and manifest into the OVA', () => ova.finish())).bytes;
    } catch (e) {
      await ova.abort();
      throw e;
    }
    await ws.publish(ovaPath, output);
    return finish(output, layout, rootfs.kernel.kernel, ovaBytes);
  } finally {
    if (source) await source.release();
    unregisterSource?.();
    await ws.dispose();
  }

  function finish(out: string, layout: DiskLayout, kernel: string, artifactBytes = layout.diskBytes): ConvertResult {
    return { output: out, format: opts.format, name, image: { ref: image.ref, id: image.id }, diskBytes: layout.diskBytes, artifactBytes, kernel, timings: stages.timings };
  }
}

type Identity = ReturnType<typeof deriveIdentity>;

function guidsOf(identity: Identity) {
  return { disk: identity.diskGuid, biosBoot: identity.biosBootGuid, esp: identity.espGuid, root: identity.rootGuid };
}

function planDisk(image: ImageInfo, opts: ConvertOptions, identity: Identity): DiskLayout {
  const guids = guidsOf(identity);
  if (opts.diskSize === 'auto') return planLayout({ rootBytes: autoRootBytes(image.sizeBytes), guids });
  const minimum = planLayout({ rootBytes: minimumRootBytes(image.sizeBytes), guids });
  if (opts.diskSize < minimum.diskBytes) {
    throw new C2vError(
      'input',
      `--disk-size ${formatSize(opts.diskSize)} is too small for this image (${formatSize(image.sizeBytes)} of content): use at least ${formatSize(minimum.diskBytes)}, or --disk-size auto`,
    );
  }
  return planLayout({ rootBytes: minimumRootBytes(image.sizeBytes), diskBytes: opts.diskSize, guids });
}

/**
 * The layout and inode count for content measured after it did not fit. `auto` grows the disk; an explicit size
 * is kept when the content fits it with more inodes, and refused with the size it needs when it does not.
 */
function refitDisk(measured: RootfsInfo, opts: ConvertOptions, identity: Identity, current: DiskLayout): { layout: DiskLayout; inodes: number } {
  const guids = guidsOf(identity);
  if (opts.diskSize === 'auto') {
    const size = measuredRootSize(measured, { headroom: true });
    const rootBytes = Math.max(size.bytes, current.partitions.find((p) => p.role === 'root')!.sizeBytes);
    return { layout: planLayout({ rootBytes, guids }), inodes: Math.max(size.inodes, Math.floor(rootBytes / 8192)) };
  }
  const need = measuredRootSize(measured, { headroom: false });
  const root = current.partitions.find((p) => p.role === 'root')!;
  if (need.bytes > root.sizeBytes) {
    const minimum = planLayout({ rootBytes: need.bytes, guids });
    throw new C2vError(
      'input',
      `the image content (${measured.entries} files and folders, ${formatSize(measured.blocks * 4096)} in 4 KiB blocks) does not fit --disk-size ${formatSize(opts.diskSize)}: use at least ${formatSize(minimum.diskBytes)}, or --disk-size auto`,
    );
  }
  return { layout: current, inodes: Math.max(need.inodes, Math.floor(root.sizeBytes / 8192)) };
}

function annotation(image: ImageInfo, opts: ConvertOptions): string {
  const lines = [`Converted by c2v from ${image.ref} (${image.id.slice(0, 19)}).`, `Boot: ${opts.boot}.`];
  if (image.config.exposedPorts.length) lines.push(`Exposed ports: ${image.config.exposedPorts.join(', ')}.`);
  return lines.join('\n');
}

function planApplianceFor(image: ImageInfo, osRelease: OsRelease, probe: ImageProbe, opts: ConvertOptions, sshKey?: string): AppliancePlan | undefined {
  try {
    return planAppliance({
      source: image.ref,
      command: image.config,
      probe,
      init: opts.init,
      appService: opts.appService,
      cmdOverride: opts.cmd,
      sshAuthorizedKeys: sshKey,
      rootPasswordHash: opts.rootPasswordHash,
    });
  } catch (e) {
    if (e instanceof AppliancePlanError) throw new C2vError('input', e.message, { cause: e });
    throw e;
  }
}

function describePlan(plan: AppliancePlan): string {
  const parts = [plan.installKernel && 'a kernel', plan.installInit && plan.init, plan.installNetwork && 'DHCP networking', plan.appArgv && 'the app service', plan.ssh && 'SSH'];
  return parts.filter(Boolean).join(', ') || 'settings';
}

async function readSshKey(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new C2vError('input', `--ssh-key ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): name a public key file such as ~/.ssh/id_ed25519.pub`);
  }
  const keys = text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  if (keys.length === 0 || !keys.every((k) => /^(ssh-|ecdsa-|sk-)\S+ \S+/.test(k.trim()))) {
    throw new C2vError('input', `--ssh-key ${file} is not an OpenSSH public key (expected lines like "ssh-ed25519 AAAA... comment"); pass the .pub file, not the private key`);
  }
  return keys.join('\n');
}
