/**
 * The packages an image lacks to be a VM (kernel, init, DHCP networking, VMware tools, an SSH server), added by
 * one build step that does not depend on the image's config: templates/packages/ holds a Dockerfile stage and a
 * script that detects the distribution at build time and installs only what is missing. Any builder runs it (the
 * Docker engine, kaniko, buildah), and it caches well. What follows from the config (the app service, keys, the
 * root password) is written at conversion time instead (guest-files.ts). Pure: the caller probes and builds.
 */
import { containerArgv, isAppCommand, type ImageCommand } from './app-service.js';
import { renderTemplate, type Templates } from './template.js';
import { distroFamily, type DistroFamily } from './os-release.js';

export type InitSystem = 'systemd' | 'openrc';
export type InitChoice = InitSystem | 'auto';

export interface ImageProbe {
  osRelease: Readonly<Record<string, string>>;
  hasKernel: boolean;
  /** The init the image already has, if any. */
  init: InitSystem | 'other' | 'none';
  /** Whether an SSH server is installed. */
  hasSshd?: boolean;
  /** Whether cloud-init is installed. */
  hasCloudInit?: boolean;
  /** Whether the signed shim and GRUB --secure-boot takes are installed. */
  hasSignedBoot?: boolean;
  /** Whether the QEMU guest agent is installed. */
  hasGuestAgent?: boolean;
  /** Whether busybox is installed (the network boot step's tools in the initramfs). */
  hasBusybox?: boolean;
  /** Kernels whose modules lack what --format netboot mounts with (plan/netboot.ts netbootLacks); probed for it only. */
  netbootLacks?: { version: string; lacks: string[] }[];
  /** What c2v's packages step recorded (/etc/c2v/packages); undefined when the image never went through it. */
  packages?: string[];
}

export interface ApplianceRequest {
  source: string;
  command: ImageCommand;
  probe: ImageProbe;
  init: InitChoice;
  appService: boolean;
  cmdOverride?: string[];
  sshAuthorizedKeys?: string;
  /** An SSH server for keys given at deploy time (--ssh); keys given now imply it. */
  ssh?: boolean;
  /** cloud-init in place of c2v's guest agent (--cloud-init). */
  cloudInit?: boolean;
  /** The signed boot chain of --secure-boot. */
  secureBoot?: boolean;
  /** The QEMU guest agent (--guest-agent). */
  guestAgent?: boolean;
  /** busybox for the network boot step (--format netboot). */
  netboot?: boolean;
  templates: Templates;
}

export interface ContextFile {
  path: string;
  content: string;
  mode: number;
}

export interface AppliancePlan {
  family: DistroFamily;
  /** The build context's Dockerfile: the packages stage, FROM the image. */
  dockerfile: string;
  /** The init the image will run (what the step keeps or adds). */
  init: InitSystem;
  installKernel: boolean;
  installInit: boolean;
  installNetwork: boolean;
  ssh: boolean;
  cloudInit: boolean;
  /** The signed shim and GRUB, for --secure-boot. */
  secureBoot: boolean;
  /** The QEMU guest agent, for --guest-agent. */
  guestAgent: boolean;
  /** busybox, for --format netboot. */
  netboot: boolean;
  /** The app command the service will run (written at conversion time, listed here to say what comes). */
  appArgv?: string[];
  /** C2V_INIT, C2V_SSH, C2V_CLOUD_INIT, C2V_SECURE_BOOT, C2V_GUEST_AGENT, C2V_NETBOOT and C2V_USER: the choices the stage takes, with the image's USER to restore after it. */
  buildArgs: Record<string, string>;
  /** The build context besides the Dockerfile, under PACKAGES_CONTEXT_DIR. */
  files: ContextFile[];
}

export const NIC_COUNT = 4;
/** The build context's folder for the script and its files, which the stage copies in. */
export const PACKAGES_CONTEXT_DIR = 'c2v-packages';
/** Where the packages step records what it added, one word per line (`kernel`, `init systemd`, ...). */
export const PACKAGES_RECORD = '/etc/c2v/packages';

const DEFAULT_INIT: Record<DistroFamily, InitSystem> = { debian: 'systemd', ubuntu: 'systemd', alpine: 'openrc', rhel: 'systemd' };
const OPENRC_FAMILIES: ReadonlySet<DistroFamily> = new Set(['debian', 'alpine']);

export class AppliancePlanError extends Error {}

/**
 * The image's USER, restored after the stage's `USER root` ('' when it had none: builders store that as no user,
 * as the image had it). It lands in a Dockerfile line, so it must be a plain name or id: anything else could add
 * instructions.
 */
export function stageUser(user: string): string {
  if (user && !/^[A-Za-z0-9._][A-Za-z0-9._-]*(:[A-Za-z0-9._][A-Za-z0-9._-]*)?$/.test(user)) {
    throw new AppliancePlanError(`the image's USER ${JSON.stringify(user)} is not a user or uid[:group] c2v can carry through a build: set a plain USER in the image`);
  }
  return user;
}

/** The packages step, or undefined when the image has what a VM needs (then no builder is needed at all). */
export function planAppliance(req: ApplianceRequest): AppliancePlan | undefined {
  const argv = containerArgv(req.command, req.cmdOverride);
  const appArgv = req.appService && isAppCommand(argv) ? argv : undefined;
  const hasInit = req.probe.init === 'systemd' || req.probe.init === 'openrc';
  const wantsInit: InitSystem | undefined = req.init === 'auto' ? (hasInit ? (req.probe.init as InitSystem) : undefined) : req.init;
  const installInit = !hasInit || (wantsInit !== undefined && wantsInit !== req.probe.init);
  const installKernel = !req.probe.hasKernel;
  const wantsSsh = Boolean(req.ssh || req.sshAuthorizedKeys);
  const installSsh = wantsSsh && !req.probe.hasSshd;
  const installCloudInit = Boolean(req.cloudInit) && !req.probe.hasCloudInit;
  const installSecureBoot = Boolean(req.secureBoot) && !req.probe.hasSignedBoot;
  const installGuestAgent = Boolean(req.guestAgent) && !req.probe.hasGuestAgent;
  const installNetboot = Boolean(req.netboot) && !req.probe.hasBusybox;
  if (!installKernel && !installInit && !installSsh && !installCloudInit && !installSecureBoot && !installGuestAgent && !installNetboot) return undefined;

  const family = distroFamily(req.probe.osRelease);
  const pretty = req.probe.osRelease.PRETTY_NAME ?? req.probe.osRelease.ID ?? 'an unknown distribution';
  if (!family) {
    throw new AppliancePlanError(
      `c2v has no packages step for ${pretty} (from /etc/os-release): add a kernel and an init to the image yourself, or base it on Debian, Ubuntu, Alpine or a RHEL-like distribution`,
    );
  }
  const init = wantsInit ?? DEFAULT_INIT[family];
  if (init === 'openrc' && !OPENRC_FAMILIES.has(family)) {
    throw new AppliancePlanError(`--init openrc is not available for ${pretty}: use --init systemd (or auto)`);
  }
  const buildArgs = {
    C2V_INIT: req.init,
    C2V_SSH: wantsSsh ? '1' : '0',
    C2V_CLOUD_INIT: req.cloudInit ? '1' : '0',
    C2V_SECURE_BOOT: req.secureBoot ? '1' : '0',
    C2V_GUEST_AGENT: req.guestAgent ? '1' : '0',
    C2V_NETBOOT: req.netboot ? '1' : '0',
    C2V_USER: stageUser(req.command.user),
  };
  return {
    family,
    dockerfile: packagesStage(req.templates, buildArgs),
    init,
    installKernel,
    installInit,
    // A fresh kernel or init means the image was an app image: it gets networking and VMware tools as well.
    installNetwork: installKernel || installInit,
    ssh: installSsh,
    cloudInit: installCloudInit,
    secureBoot: installSecureBoot,
    guestAgent: installGuestAgent,
    netboot: installNetboot,
    appArgv,
    buildArgs,
    files: packagesContext(req.templates),
  };
}

/**
 * The stage FROM `base` (a reference, or the alias of a Dockerfile's last stage), with the build args'
 * defaults set to this conversion's choices, so a builder run without arguments (kaniko in a pipeline) does
 * the same as c2v's own build.
 */
export function packagesStage(templates: Pick<Templates, 'packagesStage'>, args: Record<string, string>, base = '${C2V_BASE}'): string {
  return renderTemplate(templates.packagesStage, {
    base,
    init: args.C2V_INIT,
    ssh: args.C2V_SSH,
    cloudInit: args.C2V_CLOUD_INIT ?? '0',
    secureBoot: args.C2V_SECURE_BOOT ?? '0',
    guestAgent: args.C2V_GUEST_AGENT ?? '0',
    netboot: args.C2V_NETBOOT ?? '0',
    user: args.C2V_USER,
  });
}

/** The script and the static DHCP configuration the stage copies in; neither depends on the image. */
export function packagesContext(templates: Pick<Templates, 'packagesScript' | 'interfaces'>): ContextFile[] {
  return [
    { path: 'c2v-packages.sh', content: renderTemplate(templates.packagesScript, {}), mode: 0o755 },
    { path: 'interfaces', content: ifupdownInterfaces(templates), mode: 0o644 },
  ];
}

export function ifupdownInterfaces(templates: Pick<Templates, 'interfaces'>): string {
  return renderTemplate(templates.interfaces, { nics: Array.from({ length: NIC_COUNT }, (_, i) => `eth${i}`) });
}

/** The words of the packages record, comments and blank lines left out. */
export function parsePackagesRecord(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}
