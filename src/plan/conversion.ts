/**
 * What one conversion will do, computed before anything is written: the appliance step, the identities, the disk
 * layout, the boot configuration, the VMDK and OVF settings and the output files. The pipeline applies it stage
 * by stage; `c2v convert --plan` prints it. Pure: the same request always gives the same plan.
 */
import path from 'node:path';
import { C2vError } from '../errors.js';
import type { ConvertOptions } from '../config/schema.js';
import { containerArgv, isAppCommand } from './app-service.js';
import { AppliancePlanError, planAppliance, type AppliancePlan, type ImageProbe } from './appliance.js';
import { planGuestFiles, type GuestFilesPlan } from './guest-files.js';
import { buildEpoch, deriveIdentity, fatUuid, seedFrom, type DiskIdentity } from './identity.js';
import type { ImageInfo } from './image.js';
import { layoutForContent, type DiskSize } from './disk-size.js';
import type { DiskLayout } from './layout.js';
import { ext4Features } from './rootfs.js';
import type { OsRelease } from './os-release.js';
import { guestOsFor, type GuestOs } from './os-type.js';
import type { NicType, OvfSpec, ScsiController } from './ovf.js';
import { appProperties, PropertyError, type OvfProperty } from './properties.js';
import type { ManifestDigest } from '../formats/manifest.js';
import { SecureBootError, signedBootPlan, type SignedBootPlan } from './secure-boot.js';
import { hardwareVersion } from './vsphere-hardware.js';
import { netbootLackMessage, planNetboot, type NetbootPlan } from './netboot.js';
import { distroFamily } from './os-release.js';
import type { Templates } from './template.js';

export interface ConversionRequest {
  /** The VM's name (already validated or derived from the input). */
  name: string;
  /** Absolute output path. */
  output: string;
  options: ConvertOptions;
  /** The image as acquired (built or found). */
  image: ImageInfo;
  osRelease: OsRelease;
  probe: ImageProbe;
  sshAuthorizedKeys?: string;
  /** The appliance image once built; without it a plan that needs one stops before the disk. */
  vmImage?: ImageInfo;
  /** The appliance image looked into: the init and packages the guest files are written for. */
  vmProbe?: ImageProbe;
  /** The --eula file's text. */
  eula?: string;
  /** The environment's SOURCE_DATE_EPOCH, as given. */
  sourceDateEpoch?: string;
  /** The guest files' templates (adapters/templates.ts loadTemplates). */
  templates: Templates;
}

export interface OutputPlan {
  format: ConvertOptions['format'];
  path: string;
  /** Member names of the OVA or OVF folder (also the bare VMDK's name inside the workspace). */
  ovfName: string;
  mfName: string;
  diskName: string;
  /** The .mf's algorithm: `auto` resolved against the hardware version. */
  manifestDigest: ManifestDigest;
  /** The signature member (--sign), after the .mf. */
  certName?: string;
  /** --format netboot: the folder's boot files, in place of a disk image. */
  netboot?: NetbootPlan;
}

/** The disk and what describes it; known once the image that goes onto the disk is known. */
export interface DiskPlan {
  image: { ref: string; id: string; sizeBytes: number };
  /** Every time written into the disk; undefined: the clock (not reproducible). */
  epoch?: number;
  identity: DiskIdentity;
  /** --disk-size: `auto` or bytes. */
  requestedSize: DiskSize;
  /** Sized from the image's bytes; the rootfs stage may measure and re-lay it (see disk-size.ts). */
  layout: DiskLayout;
  boot: { bios: boolean; efi: boolean; kernelCmdline: string; signed?: SignedBootPlan };
  rootfs: { hostname: string; title: string; features: string[]; espUuid: string };
  /** Files, links and edits written into the root file system as it streams (the app service, keys, password). */
  guest: GuestFilesPlan;
  vmdk: { capacityBytes: number; fileName: string; adapterType: 'lsilogic'; virtualHwVersion: number; compressLevel: number; cid: number };
  /** The OVF but for the sizes only the written disk gives (file bytes, populated bytes). */
  ovf: {
    name: string;
    cpus: number;
    memoryMiB: number;
    firmware: 'bios' | 'efi';
    os: GuestOs;
    vmxVersion: number;
    scsiController: ScsiController;
    nic: NicType;
    networkName: string;
    annotation: string;
    product: NonNullable<OvfSpec['product']>;
    serial: boolean;
    secureBoot: boolean;
    eula?: string;
    properties: OvfProperty[];
  };
}

export interface ConversionPlan {
  name: string;
  image: { ref: string; id: string; sizeBytes: number; distribution: string };
  /** The packages step (a derived image built FROM the image), when the image lacks what a VM needs. */
  appliance?: AppliancePlan;
  /** Absent while the appliance image is still to be built: its id and size decide identities and layout. */
  disk?: DiskPlan;
  output: OutputPlan;
}

const SCSI: Record<ConvertOptions['scsi'], ScsiController> = { pvscsi: 'VirtualSCSI', lsilogic: 'lsilogic', lsilogicsas: 'lsilogicsas' };
const NIC: Record<ConvertOptions['nic'], NicType> = { vmxnet3: 'VmxNet3', e1000e: 'E1000e' };

export function planConversion(req: ConversionRequest): ConversionPlan {
  const { name, options: opts, image, osRelease } = req;
  checkHardwareLimits(opts);
  checkFlagCombinations(opts);
  secureBootFor(req);
  checkProperties(req);
  checkNetboot(req);
  const appliance = applianceFor(req);
  const vmImage = req.vmImage ?? (appliance ? undefined : image);
  const disk = vmImage && planDisk(req, vmImage);
  return {
    name,
    image: { ref: image.ref, id: image.id, sizeBytes: image.sizeBytes, distribution: osRelease.PRETTY_NAME ?? osRelease.ID ?? 'unknown' },
    appliance,
    disk,
    output: {
      format: opts.format,
      path: req.output,
      ovfName: `${name}.ovf`,
      mfName: `${name}.mf`,
      diskName: `${name}-disk1.vmdk`,
      manifestDigest: manifestDigestFor(opts),
      certName: opts.sign ? `${name}.cert` : undefined,
      // Known once the disk is: the guest files decide the kernel command line.
      netboot: opts.format === 'netboot' && disk ? planNetboot({ folderName: path.basename(req.output), rootUrl: opts.rootUrl, extraCmdline: disk.boot.kernelCmdline }) : undefined,
    },
  };
}

/** The network boot step is written for initramfs-tools, and mounts squashfs under overlayfs: said before any build. */
function checkNetboot(req: ConversionRequest): void {
  if (req.options.format !== 'netboot') return;
  const family = distroFamily(req.osRelease);
  if (family !== 'debian' && family !== 'ubuntu') {
    const pretty = req.osRelease.PRETTY_NAME ?? req.osRelease.ID ?? 'this distribution';
    throw new C2vError('input', `--format netboot appends its boot step to an initramfs-tools initramfs (Debian, Ubuntu), and ${pretty} boots with another: use --format qcow2 or ova for it`);
  }
  for (const probe of [req.probe, req.vmProbe]) {
    const lacking = probe?.netbootLacks;
    if (lacking?.length) throw new C2vError('input', netbootLackMessage(lacking[0].version, lacking[0].lacks));
  }
}

function planDisk(req: ConversionRequest, vmImage: ImageInfo): DiskPlan {
  const { name, options: opts, osRelease } = req;
  const guest = guestFilesFor(req, req.vmProbe ?? req.probe);
  const identity = deriveIdentity(seedFrom([vmImage.id, opts.boot, opts.diskSize, name]));
  const layout = layoutForContent(vmImage.sizeBytes, opts.diskSize, identity);
  const efi = opts.boot !== 'bios';
  return {
    image: { ref: vmImage.ref, id: vmImage.id, sizeBytes: vmImage.sizeBytes },
    // SOURCE_DATE_EPOCH, else the image's creation date: reproducible by default.
    epoch: buildEpoch(req.sourceDateEpoch, vmImage.created),
    identity,
    requestedSize: opts.diskSize,
    layout,
    boot: { bios: opts.boot !== 'efi', efi, kernelCmdline: guest.kernelCmdline, signed: secureBootFor(req) },
    rootfs: { hostname: hostnameOf(name), title: osRelease.PRETTY_NAME ?? name, features: ext4Features(osRelease), espUuid: fatUuid(identity.espVolumeId) },
    guest,
    vmdk: {
      capacityBytes: layout.diskBytes,
      fileName: `${name}-disk1.vmdk`,
      adapterType: 'lsilogic',
      virtualHwVersion: opts.hwVersion,
      compressLevel: opts.compressLevel,
      cid: identity.vmdkCid,
    },
    ovf: {
      name,
      cpus: opts.cpus,
      memoryMiB: opts.memory,
      firmware: efi ? 'efi' : 'bios',
      os: guestOsFor(osRelease, { vmxVersion: opts.hwVersion }),
      vmxVersion: opts.hwVersion,
      scsiController: SCSI[opts.scsi],
      nic: NIC[opts.nic],
      networkName: opts.network,
      annotation: annotation(req.image, opts),
      product: productOf(req.image, name, opts),
      serial: opts.serial,
      eula: req.eula,
      properties: guest.ovfProperties,
      secureBoot: opts.secureBoot,
    },
  };
}

/** What the deploy wizard shows the appliance to be: the flags, else the image's OCI annotations as labels. */
function productOf(image: ImageInfo, name: string, opts: ConvertOptions): NonNullable<OvfSpec['product']> {
  const label = (key: string): string | undefined => ociLabel(image, key);
  return {
    product: opts.product ?? label('title') ?? name,
    vendor: opts.vendor ?? label('vendor'),
    version: opts.productVersion ?? label('version'),
    productUrl: opts.productUrl ?? label('url'),
  };
}

function ociLabel(image: ImageInfo, key: string): string | undefined {
  return image.config.labels[`org.opencontainers.image.${key}`] || undefined;
}

/** The disk plan once the root filesystem was measured and re-laid (disk-size.ts refitLayout): same identities. */
export function withLayout(disk: DiskPlan, layout: DiskLayout): DiskPlan {
  return { ...disk, layout, vmdk: { ...disk.vmdk, capacityBytes: layout.diskBytes } };
}

/** ESXi 5.5 and 6.0 clients (vmx-10, vmx-11) reject a SHA256 manifest; SHA1 is what they read. */
function manifestDigestFor(opts: ConvertOptions): ManifestDigest {
  if (opts.manifestDigest !== 'auto') return opts.manifestDigest;
  return opts.hwVersion < 13 ? 'sha1' : 'sha256';
}

/** The oldest host of the hardware version must be able to run the VM: its vCPU and memory limits. */
export function checkHardwareLimits(opts: ConvertOptions): void {
  const hw = hardwareVersion(opts.hwVersion);
  if (!hw) throw new C2vError('usage', `--hw-version ${opts.hwVersion} is not an ESXi hardware version`);
  const host = `vmx-${hw.vmx} (ESXi ${hw.esxi})`;
  if (opts.cpus > hw.maxCpus) {
    throw new C2vError('usage', `--cpus ${opts.cpus} is more than ${host} allows (${hw.maxCpus}): lower --cpus or raise --hw-version`);
  }
  if (opts.memory > hw.maxMemoryGB * 1024) {
    throw new C2vError('usage', `--memory ${opts.memory} MiB is more than ${host} allows (${hw.maxMemoryGB} GB): lower --memory or raise --hw-version`);
  }
}

/** Flags that only make sense together, judged before anything is read or built. */
export function checkFlagCombinations(opts: ConvertOptions): void {
  // A signature covers an OVF package's manifest, which only the OVA and the OVF folder have.
  if (opts.sign && opts.format !== 'ova' && opts.format !== 'ovf') {
    throw new C2vError('usage', `--sign signs an OVF package's manifest, and --format ${opts.format} has none: use --format ova or ovf, or drop --sign`);
  }
  if (opts.secureBoot && opts.boot === 'bios') {
    throw new C2vError('usage', '--secure-boot is an EFI feature, and --boot bios installs no EFI boot code: use --boot efi (or hybrid)');
  }
  if (opts.rootUrl && opts.format !== 'netboot') {
    throw new C2vError('usage', `--root-url says where a network boot fetches its root image from, and --format ${opts.format} has none: use --format netboot, or drop --root-url`);
  }
  if (opts.secureBoot && opts.format === 'netboot') {
    throw new C2vError('usage', '--secure-boot signs the disk\'s boot chain, and --format netboot boots through iPXE, which c2v does not sign: drop --secure-boot, or use --format ova or qcow2');
  }
  if (opts.secureBoot && opts.hwVersion < 13) {
    throw new C2vError('usage', `--secure-boot needs --hw-version 13 (ESXi 6.5) or later; vmx-${opts.hwVersion} has no Secure Boot`);
  }
}

function agentRunsApp(req: ConversionRequest): boolean {
  return !req.options.cloudInit && req.options.appService && isAppCommand(containerArgv(req.image.config, req.options.cmd));
}

/** What guest-files.ts would refuse once the disk is planned, said before any build. */
function checkProperties(req: ConversionRequest): void {
  if (!req.options.property?.length) return;
  if (req.options.cloudInit) {
    throw new C2vError('input', `--property is applied by c2v's guest agent, which --cloud-init replaces: hand the app its settings through cloud-init's user-data, or drop --cloud-init`);
  }
  if (!agentRunsApp(req)) {
    throw new C2vError('input', `--property values are handed to the app service, and there is none (--no-app-service, or the image runs no app): drop --property or give the app with --cmd`);
  }
}

function applianceFor(req: ConversionRequest): AppliancePlan | undefined {
  const { image, options: opts } = req;
  return asInputError(() =>
    planAppliance({
      source: image.ref,
      command: image.config,
      probe: req.probe,
      init: opts.init,
      appService: opts.appService,
      cmdOverride: opts.cmd,
      sshAuthorizedKeys: req.sshAuthorizedKeys,
      ssh: opts.ssh,
      cloudInit: opts.cloudInit,
      secureBoot: opts.secureBoot,
      guestAgent: opts.guestAgent,
      netboot: opts.format === 'netboot',
      templates: req.templates,
    }),
  );
}

/** The image's signed boot chain, refused for a distribution without one before any build. */
function secureBootFor(req: ConversionRequest): SignedBootPlan | undefined {
  if (!req.options.secureBoot) return undefined;
  try {
    return signedBootPlan(req.osRelease);
  } catch (e) {
    if (e instanceof SecureBootError) throw new C2vError('input', e.message);
    throw e;
  }
}

/** The app's service comes from the user's image's config, whatever image ends up on the disk. */
function guestFilesFor(req: ConversionRequest, probe: ImageProbe): GuestFilesPlan {
  const { image, options: opts } = req;
  return asInputError(() =>
    planGuestFiles({
      source: image.ref,
      command: image.config,
      probe,
      appService: opts.appService,
      cmdOverride: opts.cmd,
      sshAuthorizedKeys: req.sshAuthorizedKeys,
      rootPasswordHash: opts.rootPasswordHash,
      cloudInit: opts.cloudInit,
      // An image's own property labels count only where the agent hands them to an app service (checkProperties
      // refused the flags elsewhere).
      appProperties: agentRunsApp(req) ? appProperties({ flags: opts.property ?? [], help: opts.propertyHelp ?? [], labels: image.config.labels, command: image.config }) : [],
      templates: req.templates,
    }),
  );
}

function asInputError<T>(plan: () => T): T {
  try {
    return plan();
  } catch (e) {
    if (e instanceof AppliancePlanError || e instanceof PropertyError) throw new C2vError('input', e.message, { cause: e });
    throw e;
  }
}

/** A hostname from the VM name: lower case, letters, digits and inner hyphens, at most 63 characters. */
export function hostnameOf(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 63) || 'appliance'
  );
}

function annotation(image: ImageInfo, opts: ConvertOptions): string {
  const description = ociLabel(image, 'description');
  const licenses = ociLabel(image, 'licenses');
  const lines = [...(description ? [description] : []), `Converted by c2v from ${image.ref} (${image.id.slice(0, 19)}).`, `Boot: ${opts.boot}.`];
  if (licenses) lines.push(`Licenses: ${licenses}.`);
  if (image.config.exposedPorts.length) lines.push(`Exposed ports: ${image.config.exposedPorts.join(', ')}.`);
  return lines.join('\n');
}

/** What the packages step adds, in words. */
export function describeAppliance(plan: AppliancePlan): string {
  const parts = [plan.installKernel && 'a kernel', plan.installInit && plan.init, plan.installNetwork && 'DHCP networking and VMware tools', plan.ssh && 'an SSH server', plan.cloudInit && 'cloud-init', plan.secureBoot && 'the signed shim and GRUB', plan.guestAgent && 'the QEMU guest agent', plan.netboot && 'busybox for the network boot'];
  return parts.filter(Boolean).join(', ') || 'packages';
}
