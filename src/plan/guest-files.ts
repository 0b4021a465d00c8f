/**
 * What c2v writes into the guest's root file system at conversion time, from the image's config and the flags:
 * the app service (its wrapper, unit or OpenRC script, and the link that enables it), root's SSH keys, root's
 * password or lock. No builder is involved, so changing a flag rebuilds nothing. Pure: the final image's probe
 * says which init will run it.
 */
import type { GuestEdit } from '../formats/guest-edits.js';
import type { RootfsAddition } from '../formats/rootfs-filter.js';
import { APP_SERVICE_NAME, APP_WRAPPER_PATH, appWrapper, containerArgv, isAppCommand, openrcScript, systemdUnit, type ImageCommand } from './app-service.js';
import { AppliancePlanError, type ImageProbe } from './appliance.js';
import type { Templates } from './template.js';
import { distroFamily } from './os-release.js';
import { APP_ENV_PATH, guestAgentFiles, managedNetwork, SSH_HOST_KEYS } from './guest-agent.js';
import { appOvfProperties, cloudInitProperties, standardProperties, type AppProperty, type OvfProperty } from './properties.js';

export interface GuestFilesRequest {
  /** The image as the user named it, for descriptions. */
  source: string;
  /** The user's image's config: ENTRYPOINT, CMD, ENV, WORKDIR, USER. */
  command: ImageCommand;
  /** The image that becomes the disk (after the packages step, when there was one). */
  probe: ImageProbe;
  appService: boolean;
  cmdOverride?: string[];
  sshAuthorizedKeys?: string;
  rootPasswordHash?: string;
  /** cloud-init applies the OVF environment instead of c2v's guest agent. */
  cloudInit?: boolean;
  /** The app's deploy-time settings (plan/properties.ts appProperties); the plan gives them only where the agent runs an app service (conversion.ts checkProperties). */
  appProperties?: readonly AppProperty[];
  templates: Templates;
}

export interface GuestFilesPlan {
  additions: RootfsAddition[];
  edits: GuestEdit[];
  /** The app command the service runs, when there is one. */
  appArgv?: string[];
  /** Added to the kernel command line. */
  kernelCmdline: string;
  /** Files of the image left out of the disk, as a RegExp source over paths without the leading '/'. */
  leaveOut?: string;
  /** The OVF properties the guest agent applies; none when the guest has no init the agent runs under. */
  ovfProperties: OvfProperty[];
}

export function planGuestFiles(req: GuestFilesRequest): GuestFilesPlan {
  const argv = containerArgv(req.command, req.cmdOverride);
  const appArgv = req.appService && isAppCommand(argv) ? argv : undefined;
  const additions: RootfsAddition[] = [];
  const edits: GuestEdit[] = [];
  const props = req.appProperties ?? [];
  const init = req.probe.init === 'systemd' || req.probe.init === 'openrc' ? req.probe.init : undefined;
  if (props.length && !init) throw new AppliancePlanError(`--property needs c2v's guest agent, which runs under systemd or OpenRC, and the image has neither: use --init systemd`);
  if (appArgv) additions.push(...appService(req, appArgv, props));
  if (req.sshAuthorizedKeys) {
    if (!req.probe.hasSshd) throw new AppliancePlanError('--ssh-key needs an SSH server in the image, and it has none: the packages step adds one (it runs when the image lacks a kernel, an init or sshd)');
    additions.push({ path: '/root/.ssh', directory: true, mode: 0o700 }, { path: '/root/.ssh/authorized_keys', content: `${req.sshAuthorizedKeys.trimEnd()}\n`, mode: 0o600 });
  }
  // No default passwords: an image c2v made into a VM keeps root locked unless the user hands us a hash.
  if (req.rootPasswordHash) edits.push({ path: '/etc/shadow', op: 'shadow-password', user: 'root', hash: req.rootPasswordHash });
  else if (req.probe.packages) edits.push({ path: '/etc/shadow', op: 'shadow-password', user: 'root', hash: null });
  const network = managedNetwork(req.probe.packages);
  const sshd = Boolean(req.probe.hasSshd);
  if (init && !req.cloudInit) {
    const appProperties = props.map((p) => p.name);
    const appBooleans = props.filter((p) => p.type === 'bool').map((p) => p.name);
    const family = distroFamily(req.probe.osRelease);
    const openrcRunlevel = family === 'debian' || family === 'ubuntu' ? 'sysinit' : 'boot';
    additions.push(...guestAgentFiles({ init, appProperties, appBooleans, appOwner: req.command.user, network, openrcRunlevel }, req.templates));
  }
  return {
    additions,
    edits,
    appArgv,
    // cloud-init makes new host keys on an instance's first boot itself; the agent does when they are missing.
    leaveOut: init && sshd && !req.cloudInit ? SSH_HOST_KEYS : undefined,
    ovfProperties: req.cloudInit ? cloudInitProperties() : init ? [...standardProperties({ network: network !== '', sshd }), ...appOvfProperties(props)] : [],
    // Classic ethN names let one static ifupdown file cover every NIC, whatever slot vSphere puts it in.
    kernelCmdline: req.probe.packages?.includes('network ifupdown') ? 'net.ifnames=0' : '',
  };
}

function appService(req: GuestFilesRequest, argv: string[], props: readonly AppProperty[]): RootfsAddition[] {
  // A property's default stands in for the image's ENV; the agent's file, when there is one, overrides both.
  const defaults = props.filter((p) => p.default !== undefined).map((p) => `${p.name}=${p.default}`);
  const env = [...req.command.env.filter((kv) => !defaults.some((d) => kv.split('=', 1)[0] === d.split('=', 1)[0])), ...defaults];
  const deployEnv = props.length ? APP_ENV_PATH : '';
  const wrapper: RootfsAddition = { path: APP_WRAPPER_PATH, content: appWrapper({ ...req.command, env }, argv, req.source, req.templates, deployEnv), mode: 0o755 };
  switch (req.probe.init) {
    case 'systemd': {
      const unit = `/etc/systemd/system/${APP_SERVICE_NAME}.service`;
      return [
        wrapper,
        { path: unit, content: systemdUnit(req.command, req.source, req.templates), mode: 0o644 },
        // What `systemctl enable` would make, given the unit's WantedBy=multi-user.target.
        { path: `/etc/systemd/system/multi-user.target.wants/${APP_SERVICE_NAME}.service`, symlink: unit },
      ];
    }
    case 'openrc': {
      const script = `/etc/init.d/${APP_SERVICE_NAME}`;
      return [
        wrapper,
        { path: script, content: openrcScript(req.command, req.source, req.templates), mode: 0o755 },
        // What `rc-update add c2v-app default` would make.
        { path: `/etc/runlevels/default/${APP_SERVICE_NAME}`, symlink: script },
      ];
    }
    default:
      throw new AppliancePlanError(`the image's init cannot run the app service (it is neither systemd nor OpenRC): use --init systemd, or --no-app-service`);
  }
}
