/**
 * What an image lacks to be a VM, and the derived image that adds it: kernel, init, DHCP networking, a serial
 * getty, VMware tools, and the image's own command as a service. Pure: the caller probes the image and builds.
 */
import { APP_SERVICE_NAME, APP_WRAPPER_PATH, appWrapper, containerArgv, isAppCommand, openrcScript, shQuote, systemdUnit, type ImageCommand } from './app-service.js';

export type DistroFamily = 'debian' | 'ubuntu' | 'alpine' | 'rhel';
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

export function distroFamily(os: Readonly<Record<string, string>>): DistroFamily | undefined {
  const ids = [os.ID ?? '', ...(os.ID_LIKE ?? '').split(/\s+/)].map((s) => s.toLowerCase()).filter(Boolean);
  if (ids[0] === 'ubuntu' || (ids.includes('ubuntu') && ids[0] !== 'debian')) return 'ubuntu';
  if (ids.includes('debian')) return 'debian';
  if (ids.includes('alpine')) return 'alpine';
  if (ids.some((i) => ['rhel', 'fedora', 'centos', 'rocky', 'almalinux', 'ol'].includes(i))) return 'rhel';
  return undefined;
}

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
    files.push({ path: 'c2v/app-run', content: appWrapper(req.command, appArgv, req.source), mode: 0o755 });
    files.push(
      init === 'systemd'
        ? { path: `c2v/${APP_SERVICE_NAME}.service`, content: systemdUnit(req.command, req.source), mode: 0o644 }
        : { path: `c2v/${APP_SERVICE_NAME}.openrc`, content: openrcScript(req.command, req.source), mode: 0o755 },
    );
  }
  if (installNetwork && family !== 'rhel') files.push({ path: 'c2v/interfaces', content: ifupdownInterfaces(), mode: 0o644 });
  if (ssh) files.push({ path: 'c2v/authorized_keys', content: req.sshAuthorizedKeys!.trimEnd() + '\n', mode: 0o600 });
  files.push({
    path: 'c2v/setup.sh',
    content: setupScript({ family, init, installNetwork, app: Boolean(appArgv), ssh, rootPasswordHash: req.rootPasswordHash }),
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

export function ifupdownInterfaces(): string {
  const lines = ['# Written by c2v: DHCP on every NIC (the kernel runs with net.ifnames=0, so they are eth0, eth1, ...).', 'auto lo', 'iface lo inet loopback', ''];
  for (let i = 0; i < NIC_COUNT; i++) lines.push(`allow-hotplug eth${i}`, `iface eth${i} inet dhcp`, '');
  return lines.join('\n');
}

interface SetupInput {
  family: DistroFamily;
  init: InitSystem;
  installNetwork: boolean;
  app: boolean;
  ssh: boolean;
  rootPasswordHash?: string;
}

/** Runs inside the derived image's build, after the template installed the packages. */
export function setupScript(s: SetupInput): string {
  const L: string[] = ['#!/bin/sh', '# Written by c2v; runs once while the appliance image is built.', 'set -eu', 'cd /tmp/c2v', ''];
  const enable = (svc: string, runlevel = 'default') => (s.init === 'systemd' ? `systemctl enable ${svc}` : `rc-update add ${svc} ${runlevel}`);
  if (s.installNetwork && s.family !== 'rhel') {
    L.push('mkdir -p /etc/network', 'install -m 0644 interfaces /etc/network/interfaces');
    if (s.init === 'openrc') L.push(enable('networking', 'boot'));
    L.push('');
  }
  if (s.installNetwork && s.family === 'rhel') L.push(enable('NetworkManager'), '');
  // A login prompt on the serial console, where vSphere's serial port and our boot checks look.
  if (s.init === 'systemd') L.push('systemctl enable serial-getty@ttyS0.service');
  else if (s.family === 'alpine') L.push(`grep -q '^ttyS0:' /etc/inittab || echo 'ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100' >> /etc/inittab`);
  else L.push(`grep -q '^T0:' /etc/inittab || echo 'T0:2345:respawn:/sbin/agetty -L 115200 ttyS0 vt100' >> /etc/inittab`);
  if (s.init === 'openrc' && s.family === 'alpine') L.push(enable('devfs', 'sysinit'), enable('mdev', 'sysinit'), enable('hwdrivers', 'sysinit'));
  L.push('if [ -e /etc/init.d/open-vm-tools ] || [ -e /lib/systemd/system/open-vm-tools.service ] || [ -e /usr/lib/systemd/system/vmtoolsd.service ]; then');
  L.push(s.init === 'systemd' ? '  systemctl enable open-vm-tools.service 2>/dev/null || systemctl enable vmtoolsd.service 2>/dev/null || true' : '  rc-update add open-vm-tools default 2>/dev/null || true');
  L.push('fi', '');
  if (s.app) {
    L.push(`mkdir -p ${shQuote(APP_WRAPPER_PATH.replace(/\/[^/]+$/, ''))}`, `install -m 0755 app-run ${shQuote(APP_WRAPPER_PATH)}`);
    if (s.init === 'systemd') L.push(`install -m 0644 ${APP_SERVICE_NAME}.service /etc/systemd/system/${APP_SERVICE_NAME}.service`, enable(`${APP_SERVICE_NAME}.service`));
    else L.push(`install -m 0755 ${APP_SERVICE_NAME}.openrc /etc/init.d/${APP_SERVICE_NAME}`, enable(APP_SERVICE_NAME));
    L.push('');
  }
  if (s.ssh) {
    L.push('install -d -m 0700 /root/.ssh', 'install -m 0600 authorized_keys /root/.ssh/authorized_keys');
    L.push(s.init === 'systemd' ? '(systemctl enable ssh.service 2>/dev/null || systemctl enable sshd.service)' : 'rc-update add sshd default 2>/dev/null || rc-update add ssh default', '');
  }
  // No default passwords: root stays locked unless the user hands us a hash.
  if (s.rootPasswordHash) L.push(`usermod -p ${shQuote(s.rootPasswordHash)} root`);
  else L.push('passwd -l root >/dev/null 2>&1 || true');
  L.push('');
  return L.join('\n');
}
