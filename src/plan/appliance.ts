/**
 * What an image lacks to be a VM, and the derived image that adds it: kernel, init, DHCP networking, a serial
 * getty, VMware tools, and the image's own command as a service. Pure: the caller probes the image and builds.
 */
import { APP_SERVICE_NAME, APP_WRAPPER_PATH, appWrapper, containerArgv, isAppCommand, openrcScript, systemdUnit, type ImageCommand } from './app-service.js';
import { renderTemplate, type Templates } from './template.js';
import { distroFamily, type DistroFamily } from './os-release.js';

export type InitSystem = 'systemd' | 'openrc';
export type InitChoice = InitSystem | 'auto';

export interface ImageProbe {
  osRelease: Readonly<Record<string, string>>;
  hasKernel: boolean;
  /** The init the image already has, if any. */
  init: InitSystem | 'other' | 'none';
}

export interface ApplianceRequest {
  source: string;
  command: ImageCommand;
  probe: ImageProbe;
  init: InitChoice;
  appService: boolean;
  cmdOverride?: string[];
  sshAuthorizedKeys?: string;
  rootPasswordHash?: string;
  templates: Templates;
}

export interface ContextFile {
  path: string;
  content: string;
  mode: number;
}

export interface AppliancePlan {
  family: DistroFamily;
  /** Template under dockerfiles/. */
  template: string;
  init: InitSystem;
  installKernel: boolean;
  installInit: boolean;
  installNetwork: boolean;
  ssh: boolean;
  appArgv?: string[];
  buildArgs: Record<string, string>;
  /** Files of the build context, under c2v/. */
  files: ContextFile[];
  /** Added to the kernel command line. */
  kernelCmdline: string;
}

export const NIC_COUNT = 4;

const DEFAULT_INIT: Record<DistroFamily, InitSystem> = { debian: 'systemd', ubuntu: 'systemd', alpine: 'openrc', rhel: 'systemd' };
const OPENRC_FAMILIES: ReadonlySet<DistroFamily> = new Set(['debian', 'alpine']);

export class AppliancePlanError extends Error {}

/** Returns undefined when the image is a VM already and nothing needs adding. */
export function planAppliance(req: ApplianceRequest): AppliancePlan | undefined {
  const argv = containerArgv(req.command, req.cmdOverride);
  const appArgv = req.appService && isAppCommand(argv) ? argv : undefined;
  const hasInit = req.probe.init === 'systemd' || req.probe.init === 'openrc';
  const wantsInit: InitSystem | undefined = req.init === 'auto' ? (hasInit ? (req.probe.init as InitSystem) : undefined) : req.init;
  const installInit = !hasInit || (wantsInit !== undefined && wantsInit !== req.probe.init);
  const installKernel = !req.probe.hasKernel;
  const ssh = Boolean(req.sshAuthorizedKeys);
  if (!installKernel && !installInit && !appArgv && !ssh && !req.rootPasswordHash) return undefined;

  const family = distroFamily(req.probe.osRelease);
  const pretty = req.probe.osRelease.PRETTY_NAME ?? req.probe.osRelease.ID ?? 'an unknown distribution';
  if (!family) {
    throw new AppliancePlanError(
      `c2v has no template for ${pretty} (from /etc/os-release): add a kernel and an init to the image yourself, or base it on Debian, Ubuntu, Alpine or a RHEL-like distribution`,
    );
  }
  const init = wantsInit ?? DEFAULT_INIT[family];
  if (init === 'openrc' && !OPENRC_FAMILIES.has(family)) {
    throw new AppliancePlanError(`--init openrc is not available for ${pretty}: use --init systemd (or auto)`);
  }
  // A fresh kernel/init means the image was an app image: give it networking as well.
  const installNetwork = installKernel || installInit;
  const files: ContextFile[] = [];
  if (appArgv) {
    files.push({ path: 'c2v/app-run', content: appWrapper(req.command, appArgv, req.source, req.templates), mode: 0o755 });
    files.push(
      init === 'systemd'
        ? { path: `c2v/${APP_SERVICE_NAME}.service`, content: systemdUnit(req.command, req.source, req.templates), mode: 0o644 }
        : { path: `c2v/${APP_SERVICE_NAME}.openrc`, content: openrcScript(req.command, req.source, req.templates), mode: 0o755 },
    );
  }
  if (installNetwork && family !== 'rhel') files.push({ path: 'c2v/interfaces', content: ifupdownInterfaces(req.templates), mode: 0o644 });
  if (ssh) files.push({ path: 'c2v/authorized_keys', content: req.sshAuthorizedKeys!.trimEnd() + '\n', mode: 0o600 });
  files.push({
    path: 'c2v/setup.sh',
    content: setupScript({ family, init, installNetwork, app: Boolean(appArgv), ssh, rootPasswordHash: req.rootPasswordHash }, req.templates),
    mode: 0o755,
  });
  return {
    family,
    template: `${family}.Dockerfile`,
    init,
    installKernel,
    installInit,
    installNetwork,
    ssh,
    appArgv,
    buildArgs: {
      C2V_KERNEL: installKernel ? '1' : '0',
      C2V_INIT: installInit ? init : 'none',
      C2V_NETWORK: installNetwork ? '1' : '0',
      C2V_SSH: ssh ? '1' : '0',
    },
    files,
    // Classic ethN names let one static ifupdown file cover every NIC, whatever slot vSphere puts it in.
    kernelCmdline: installNetwork && family !== 'rhel' ? 'net.ifnames=0' : '',
  };
}

export function ifupdownInterfaces(templates: Pick<Templates, 'interfaces'>): string {
  return renderTemplate(templates.interfaces, { nics: Array.from({ length: NIC_COUNT }, (_, i) => `eth${i}`) });
}

export interface SetupInput {
  family: DistroFamily;
  init: InitSystem;
  installNetwork: boolean;
  app: boolean;
  ssh: boolean;
  rootPasswordHash?: string;
}

/** Runs inside the derived image's build, after the template installed the packages. */
export function setupScript(s: SetupInput, templates: Pick<Templates, 'setup'>): string {
  return renderTemplate(templates.setup, {
    systemd: s.init === 'systemd',
    openrc: s.init === 'openrc',
    alpine: s.family === 'alpine',
    // RHEL-likes configure NICs with NetworkManager; the others get the static ifupdown file.
    ifupdown: s.installNetwork && s.family !== 'rhel',
    networkManager: s.installNetwork && s.family === 'rhel',
    app: s.app,
    wrapperDir: APP_WRAPPER_PATH.replace(/\/[^/]+$/, ''),
    wrapperPath: APP_WRAPPER_PATH,
    serviceName: APP_SERVICE_NAME,
    ssh: s.ssh,
    rootPasswordHash: s.rootPasswordHash ?? '',
  });
}
