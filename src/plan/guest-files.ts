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
  templates: Templates;
}

export interface GuestFilesPlan {
  additions: RootfsAddition[];
  edits: GuestEdit[];
  /** The app command the service runs, when there is one. */
  appArgv?: string[];
  /** Added to the kernel command line. */
  kernelCmdline: string;
}

export function planGuestFiles(req: GuestFilesRequest): GuestFilesPlan {
  const argv = containerArgv(req.command, req.cmdOverride);
  const appArgv = req.appService && isAppCommand(argv) ? argv : undefined;
  const additions: RootfsAddition[] = [];
  const edits: GuestEdit[] = [];
  if (appArgv) additions.push(...appService(req, appArgv));
  if (req.sshAuthorizedKeys) {
    if (!req.probe.hasSshd) throw new AppliancePlanError('--ssh-key needs an SSH server in the image, and it has none: the packages step adds one (it runs when the image lacks a kernel, an init or sshd)');
    additions.push({ path: '/root/.ssh', directory: true, mode: 0o700 }, { path: '/root/.ssh/authorized_keys', content: `${req.sshAuthorizedKeys.trimEnd()}\n`, mode: 0o600 });
  }
  // No default passwords: an image c2v made into a VM keeps root locked unless the user hands us a hash.
  if (req.rootPasswordHash) edits.push({ path: '/etc/shadow', op: 'shadow-password', user: 'root', hash: req.rootPasswordHash });
  else if (req.probe.packages) edits.push({ path: '/etc/shadow', op: 'shadow-password', user: 'root', hash: null });
  return {
    additions,
    edits,
    appArgv,
    // Classic ethN names let one static ifupdown file cover every NIC, whatever slot vSphere puts it in.
    kernelCmdline: req.probe.packages?.includes('network ifupdown') ? 'net.ifnames=0' : '',
  };
}

function appService(req: GuestFilesRequest, argv: string[]): RootfsAddition[] {
  const wrapper: RootfsAddition = { path: APP_WRAPPER_PATH, content: appWrapper(req.command, argv, req.source, req.templates), mode: 0o755 };
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
