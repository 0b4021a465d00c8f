/**
 * `c2v convert` as a list of verb-named steps: find or build the image, plan, add what a VM needs, then apply the
 * plan stage by stage. Planning is pure (plan/conversion.ts); each stage gets what it needs and returns what it
 * made; the artefact moves to its final name only at the very end.
 */
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from './errors.js';
import type { ConvertOptions } from './config/schema.js';
import { formatSize } from './config/size.js';
import type { ImageBackends, ImageInfo } from './adapters/engine.js';
import type { BackendContext } from './adapters/backends.js';
import { parsePlatform } from './formats/oci/manifest.js';
import type { InputSpec } from './plan/image.js';
import { RootfsHandle } from './adapters/rootfs-handle.js';
import { loadTemplates } from './adapters/templates.js';
import { makeScratchDir, Workspace } from './adapters/workspace.js';
import { requireTarCapableMke2fs } from './adapters/tools.js';
import { requireTools } from './adapters/exec.js';
import { StageRunner, type Reporter, type StageTiming } from './progress.js';
import { buildEpoch } from './plan/identity.js';
import { checkHardwareLimits, checkFlagCombinations, describeAppliance, planConversion, withLayout, type ConversionPlan, type ConversionRequest, type DiskPlan } from './plan/conversion.js';
import { refitLayout, rootPartition } from './plan/disk-size.js';
import type { DiskLayout } from './plan/layout.js';
import type { Templates } from './plan/template.js';
import type { ImageProbe } from './plan/appliance.js';
import { acquireImage, requireBuilder, type AcquireOptions } from './stages/acquire.js';
import { prepareContext } from './stages/prepare.js';
import { registerCleanup } from './adapters/cleanup.js';
import { DockerEngine } from './adapters/docker.js';
import { classifyInput, defaultName } from './stages/input.js';
import { buildAppliance } from './stages/appliance.js';
import { probeImage, readOsRelease } from './stages/probe.js';
import { makeGrubImages } from './stages/boot-loader.js';
import { createDiskFile, writePartitionTables } from './stages/disk.js';
import { makeEsp } from './stages/esp.js';
import { makeRootFilesystem, measureRootFilesystem, RootfsTooSmall, type RootFilesystemRequest } from './stages/root-filesystem.js';
import { zerofreeRoot } from './stages/zerofree.js';
import { writeOutput } from './stages/outputs.js';
import { buildNetbootFolder } from './stages/netboot.js';
import { readEula, readSigner, readSshKey } from './stages/flag-files.js';
import type { OvaSigner } from './formats/ova-signature.js';

export interface ConvertResult {
  output: string;
  format: ConvertOptions['format'];
  name: string;
  image: { ref: string; id: string };
  /** The disk's capacity; for --format netboot, the root image's bytes. */
  diskBytes: number;
  artifactBytes: number;
  kernel: string;
  timings: StageTiming[];
}

function defaultOutput(name: string, format: ConvertOptions['format']): string {
  if (format === 'ovf') return name;
  return format === 'netboot' ? `${name}-netboot` : `${name}.${format}`;
}

/** What c2v would do, computed and printed by `--plan`: the image is found (or built) and looked into, nothing is written. */
export async function planConvert(opts: ConvertOptions, backendsFor: BackendChoice, reporter: Reporter): Promise<ConversionPlan> {
  const run = await begin(opts, backendsFor, new StageRunner(reporter));
  try {
    return await run.plan();
  } finally {
    await run.rootfs.release();
    await run.backends.close?.();
  }
}

export async function convert(opts: ConvertOptions, backendsFor: BackendChoice, reporter: Reporter): Promise<ConvertResult> {
  const stages = new StageRunner(reporter);
  const run = await begin(opts, backendsFor, stages);
  let ws: Workspace | undefined;
  try {
    let plan = await run.plan();
    ws = await Workspace.create(run.workParent, opts.keepWorkdir);
    if (plan.appliance) {
      const appliance = plan.appliance;
      // The derived image gets a container of its own: the base image's is not needed while it builds.
      await run.rootfs.release();
      const builder = requireBuilder(
        run.backends,
        `adding ${describeAppliance(appliance)} to ${run.image.ref}`,
        run.backends.builder ? undefined : 'an image read from a file or a registry has none here: convert an image that already has a kernel and init (like examples/debian-vm), or load it into a Docker engine (docker load -i FILE) and convert docker-daemon:NAME',
      );
      const workDir = ws.dir;
      const vmImage = await stages.run(
        'appliance',
        `Adding ${describeAppliance(appliance)} (the ${appliance.family} packages step)`,
        (update) =>
          buildAppliance(builder, run.image, appliance, {
            workDir,
            tag: `c2v-appliance/${plan.name.toLowerCase()}:latest`,
            onLog: (line) => {
              stages.log('appliance', line);
              update(line.slice(0, 100));
            },
          }),
        (i) => `${i.ref} (${formatSize(i.sizeBytes)})`,
      );
      plan = await run.plan(vmImage);
    }
    const disk = plan.disk;
    if (!disk) throw new C2vError('internal', 'the plan has no disk after the appliance step');
    const result = { output: plan.output.path, format: opts.format, name: plan.name, image: { ref: run.image.ref, id: run.image.id } };
    if (plan.output.netboot) {
      const source = await run.rootfs.of(disk.image.id);
      const nb = await buildNetbootFolder({ source, disk, netboot: plan.output.netboot, templates: run.templates, ws, stages, output: plan.output.path });
      return { ...result, diskBytes: nb.rootBytes, artifactBytes: nb.bytes, kernel: nb.kernel, timings: stages.timings };
    }
    const built = await buildDisk(disk, run, ws, stages);
    const artifactBytes = await writeOutput({ output: plan.output, disk: built.disk, diskPath: built.diskPath, ws, stages, signer: run.signer });
    return {
      ...result,
      diskBytes: built.disk.layout.diskBytes,
      artifactBytes,
      kernel: built.kernel,
      timings: stages.timings,
    };
  } finally {
    await run.rootfs.release();
    await ws?.dispose();
    await run.backends.close?.();
  }
}

/** Picks the source, builder and janitor for the input's form (adapters/backends.ts). */
export type BackendChoice = (input: InputSpec, ctx: BackendContext) => Promise<ImageBackends>;

interface Run {
  backends: ImageBackends;
  image: ImageInfo;
  workParent: string;
  rootfs: RootfsHandle;
  templates: Templates;
  /** --sign and --cert, read and checked before the image is acquired. */
  signer?: OvaSigner;
  /** The plan for the acquired image, or for the appliance image once it is built. */
  plan(vmImage?: ImageInfo): Promise<ConversionPlan>;
}

/** Everything before the plan: the input's form, checks that should fail before a long build, the image. */
async function begin(opts: ConvertOptions, backendsFor: BackendChoice, stages: StageRunner): Promise<Run> {
  const input = await classifyInput(opts.input, { pull: opts.pull });
  const name = opts.name ?? defaultName(input);
  const output = path.resolve(opts.output ?? defaultOutput(name, opts.format));
  const outputIsDir = await stat(output).then((s) => s.isDirectory(), () => false);
  if (outputIsDir && opts.format !== 'ovf' && opts.format !== 'netboot') {
    throw new C2vError('usage', `--output ${output} is a directory: give a file name, like ${path.join(output, defaultOutput(name, opts.format))}`);
  }
  const sshAuthorizedKeys = await readSshKey(opts.sshKey);
  const eula = await readEula(opts.eula);
  checkFlagCombinations(opts);
  const signer = await readSigner(opts.sign, opts.cert);
  const templates = await loadTemplates();
  // A malformed SOURCE_DATE_EPOCH, or a VM its hardware version cannot run, fails here, not after a build.
  buildEpoch(process.env.SOURCE_DATE_EPOCH, undefined);
  checkHardwareLimits(opts);
  const workParent = opts.workdir ? path.resolve(opts.workdir) : path.dirname(output);
  // Downloading and indexing layers happen inside the acquire stage, which reports them as its progress.
  let acquireProgress: ((done: number, total: number) => void) | undefined;
  const backends = await backendsFor(input, {
    onProgress: (done, total) => acquireProgress?.(done, total),
    platform: parsePlatform(opts.platform),
    insecureRegistries: opts.insecureRegistry ?? [],
    workParent,
    maxLayerBytes: opts.diskSize === 'auto' ? undefined : opts.diskSize,
    onLog: (line) => stages.log('acquire', line),
    builder: opts.builder,
    kanikoImage: opts.kanikoImage,
  });
  const prepared = onePassContexts(opts, templates, workParent);
  let image: ImageInfo;
  try {
    image = await acquire(opts, input, name, output, backends, workParent, stages, (p) => (acquireProgress = p), prepared.prepare);
  } catch (e) {
    await backends.close?.();
    throw e;
  } finally {
    await prepared.dispose();
  }
  const rootfs = new RootfsHandle(backends.source);
  let request: Omit<ConversionRequest, 'vmImage' | 'vmProbe'> | undefined;
  let vmProbe: { id: string; probe: ImageProbe } | undefined;
  return {
    backends,
    image,
    workParent,
    rootfs,
    templates,
    signer,
    async plan(vmImage) {
      if (!request) {
        // The image is looked into (os-release, kernel, init) without starting it.
        const source = await rootfs.of(image.id);
        const osRelease = await readOsRelease(source);
        const probe = await probeImage(source, osRelease, { netboot: opts.format === 'netboot' });
        request = { name, output, options: opts, image, osRelease, probe, sshAuthorizedKeys, eula, sourceDateEpoch: process.env.SOURCE_DATE_EPOCH, templates };
      }
      if (vmImage && vmProbe?.id !== vmImage.id) {
        // The guest files are written for what the packages step left: its init, its record.
        const source = await rootfs.of(vmImage.id);
        vmProbe = { id: vmImage.id, probe: await probeImage(source, await readOsRelease(source), { netboot: opts.format === 'netboot' }) };
      }
      return planConversion({ ...request, vmImage, vmProbe: vmImage && vmProbe?.probe });
    },
  };
}

/** Host checks that should fail before a long build, then the image itself. */
async function acquire(
  opts: ConvertOptions,
  input: InputSpec,
  name: string,
  output: string,
  backends: ImageBackends,
  workParent: string,
  stages: StageRunner,
  onStageProgress: (progress: (done: number, total: number) => void) => void,
  prepare: AcquireOptions['prepare'],
): Promise<ImageInfo> {
  if (!opts.plan) {
    // Host tools and the workspace's place are checked before a possibly long build, not after it.
    await Promise.all([
      opts.format === 'netboot' ? requireTools(['tar2sqfs', 'rdsquashfs']) : requireTarCapableMke2fs(),
      opts.format === 'netboot' ? undefined : requireTools(['grub-mkimage', 'mkfs.vfat', ...(opts.boot === 'bios' ? [] : ['mmd', 'mcopy'])]),
      Workspace.preflight(workParent, path.dirname(output)),
      backends.janitor?.sweep().catch(() => 0),
    ]);
  }
  return stages.run(
    'acquire',
    input.kind === 'image' ? `Finding image ${input.ref}` : `Building ${path.join(input.contextDir, input.dockerfile)}`,
    (update, progress) => {
      onStageProgress(progress);
      return acquireImage(backends, input, { name, prepare, onLog: (line) => { stages.log('acquire', line); update(line.slice(0, 100)); } });
    },
    (i) => `${i.ref} (${formatSize(i.sizeBytes)})`,
  );
}

interface BuiltDisk {
  diskPath: string;
  /** The plan's disk, re-laid when the content had to be measured. */
  disk: DiskPlan;
  kernel: string;
}

/** The raw disk: GRUB images, the ext4 root from the image's stream, the ESP, GPT and boot code, zeroed free space. */
async function buildDisk(disk: DiskPlan, run: Run, ws: Workspace, stages: StageRunner): Promise<BuiltDisk> {
  const diskPath = ws.file('disk.raw');
  const source = await run.rootfs.of(disk.image.id);
  const grub = await stages.run('bootloader', 'Making GRUB images', () =>
    makeGrubImages({
      workDir: ws.dir,
      rootFsUuid: disk.identity.rootFsUuid,
      bios: disk.boot.bios,
      efi: disk.boot.efi,
      templates: run.templates,
      signed: disk.boot.signed && { plan: disk.boot.signed, source },
    }),
  );
  let layout = disk.layout;
  let refitNote = '';
  const rootRequest = (l: DiskLayout, inodes?: number, onProgress?: (tarBytes: number) => void): RootFilesystemRequest => {
    const part = rootPartition(l);
    return {
      source,
      features: disk.rootfs.features,
      diskPath,
      offsetBytes: part.offsetBytes,
      sizeBytes: part.sizeBytes,
      inodes,
      fsUuid: disk.identity.rootFsUuid,
      hashSeed: disk.identity.rootHashSeed,
      espUuid: disk.rootfs.espUuid,
      hostname: disk.rootfs.hostname,
      title: disk.rootfs.title,
      workDir: ws.dir,
      kernelCmdline: disk.boot.kernelCmdline || undefined,
      extraFiles: disk.guest.additions,
      edits: disk.guest.edits,
      leaveOut: disk.guest.leaveOut ? new RegExp(disk.guest.leaveOut) : undefined,
      mtimeClamp: disk.epoch,
      onProgress,
      templates: run.templates,
    };
  };
  const rootfs = await stages.run(
    'rootfs',
    `Writing the ext4 root filesystem (${formatSize(rootPartition(layout).sizeBytes)}) from the image`,
    async (update, progress) => {
      // The tar runs a little past the image's size (headers), so progress is capped at it.
      const total = Math.max(1, disk.image.sizeBytes);
      const onTar = (bytes: number): void => progress(Math.min(bytes, total), total);
      await createDiskFile(diskPath, layout.diskBytes);
      try {
        return await makeRootFilesystem(rootRequest(layout, undefined, onTar));
      } catch (e) {
        if (!(e instanceof RootfsTooSmall)) throw e;
        // Sized by bytes, an image of many tiny files runs out of blocks or inodes: measure it and size again.
        update('the image holds more files than its size suggests: measuring it');
        const refit = refitLayout(await measureRootFilesystem(rootRequest(layout)), disk.requestedSize, disk.identity, layout);
        layout = refit.layout;
        const size = formatSize(rootPartition(layout).sizeBytes);
        refitNote = `; the image holds more files than its size suggests, so it was measured and written again into ${size} with ${refit.inodes} inodes`;
        update(`writing it again into ${size} with ${refit.inodes} inodes`);
        await rm(diskPath, { force: true });
        await createDiskFile(diskPath, layout.diskBytes);
        return await makeRootFilesystem(rootRequest(layout, refit.inodes, onTar));
      }
    },
    (r) => `${r.info.entries} entries, ${formatSize(r.info.bytes)}, kernel ${r.kernel.kernel}${refitNote}`,
  );
  await run.rootfs.release();
  const root = rootPartition(layout);
  const esp = layout.partitions.find((p) => p.role === 'esp')!;
  await stages.run('esp', 'Writing the EFI system partition', () =>
    makeEsp({ diskPath, offsetBytes: esp.offsetBytes, sizeBytes: esp.sizeBytes, volumeId: disk.identity.espVolumeId, files: grub.espFiles, epoch: disk.epoch }),
  );
  await stages.run('partition', 'Writing GPT and boot code', () => writePartitionTables(diskPath, layout, grub));
  await stages.run(
    'zerofree',
    'Zeroing free blocks of the root filesystem',
    () => zerofreeRoot(diskPath, root.offsetBytes),
    (z) => `${z.zeroedBlocks} blocks zeroed; ${formatSize(z.checkedBytes)} of ${formatSize(z.freeBytes)} free space read (the rest are holes)`,
  );
  return { diskPath, disk: withLayout(disk, layout), kernel: rootfs.kernel.kernel };
}

/**
 * For a builder that builds once (kaniko): the Dockerfile's context as `c2v prepare` writes it, in a folder
 * beside the output that goes once the image is acquired.
 */
function onePassContexts(opts: ConvertOptions, templates: Templates, workParent: string): { prepare: AcquireOptions['prepare']; dispose: () => Promise<void> } {
  const scratches: Awaited<ReturnType<typeof makeScratchDir>>[] = [];
  const disposeAll = async (): Promise<void> => {
    for (const s of scratches.reverse()) await s.dispose();
  };
  const unregister = registerCleanup('prepared contexts', disposeAll, () => scratches.forEach((s) => s.disposeSync()));
  return {
    prepare: async (input) => {
      const scratch = await makeScratchDir(workParent, '.c2v-prepare-');
      scratches.push(scratch);
      const out = path.join(scratch.dir, 'context');
      await prepareContext({
        input,
        output: out,
        init: opts.init,
        ssh: Boolean(opts.sshKey),
        templates,
        userOf: async (ref) => (await new DockerEngine().inspect(ref).catch(() => undefined))?.config.user,
      });
      return { contextDir: out, dockerfile: 'Dockerfile' };
    },
    dispose: async () => {
      await disposeAll();
      unregister();
    },
  };
}
