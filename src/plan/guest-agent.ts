/**
 * c2v's guest agent (templates/guest/): on every boot it grows the root when the disk grew, and applies the OVF
 * environment (deploy-time properties) before the network, SSH and the app start. It is sh and awk, so it runs
 * in any guest c2v makes; this decides where its files go for the guest's init. Pure.
 */
import type { RootfsAddition } from '../formats/rootfs-filter.js';
import type { InitSystem } from './appliance.js';
import { renderTemplate, type Templates } from './template.js';

export const GUEST_AGENT_DIR = '/usr/local/lib/c2v';
export const GUEST_SERVICE_NAME = 'c2v-guest';
/** What the agent writes for the app's wrapper to read: in /run, so deploy-time secrets never reach the disk. */
export const APP_ENV_PATH = '/run/c2v/app.env';
/** SSH host keys: left out of the disk, so that each VM made from one OVA generates its own at first boot. */
export const SSH_HOST_KEYS = '^etc/ssh/ssh_host_[^/]*$';

export type ManagedNetwork = 'ifupdown' | 'networkmanager' | '';

export interface GuestAgentConfig {
  init: InitSystem;
  /** Environment variable names of the app's properties (OVF keys app.NAME). */
  appProperties: readonly string[];
  /** Those of them that are booleans. */
  appBooleans: readonly string[];
  /** The image's USER: app.env is readable by it alone. */
  appOwner: string;
  network: ManagedNetwork;
  /**
   * Where OpenRC runs the agent: Debian's LSB scripts bring the network up in sysinit, Alpine's in boot; it must
   * come before.
   */
  openrcRunlevel: 'sysinit' | 'boot';
}

/** What the packages record says c2v installed for networking: only that is c2v's to rewrite. */
export function managedNetwork(packages: readonly string[] | undefined): ManagedNetwork {
  if (packages?.includes('network ifupdown')) return 'ifupdown';
  if (packages?.includes('network networkmanager')) return 'networkmanager';
  return '';
}

type AgentTemplates = Pick<Templates, 'guestAgent' | 'guestNetwork' | 'ovfEnvAwk' | 'growRoot' | 'guestConf' | 'guestUnit' | 'guestOpenrc' | 'journaldSerial'>;

export function guestAgentFiles(config: GuestAgentConfig, templates: AgentTemplates): RootfsAddition[] {
  const files: RootfsAddition[] = [
    { path: `${GUEST_AGENT_DIR}/c2v-guest`, content: renderTemplate(templates.guestAgent, {}), mode: 0o755 },
    { path: `${GUEST_AGENT_DIR}/network.sh`, content: renderTemplate(templates.guestNetwork, {}), mode: 0o644 },
    { path: `${GUEST_AGENT_DIR}/ovf-env.awk`, content: renderTemplate(templates.ovfEnvAwk, {}), mode: 0o644 },
    { path: `${GUEST_AGENT_DIR}/grow-root`, content: renderTemplate(templates.growRoot, {}), mode: 0o755 },
    {
      path: '/etc/c2v/guest.conf',
      content: renderTemplate(templates.guestConf, { appProperties: [...config.appProperties], appBooleans: [...config.appBooleans], appOwner: config.appOwner, network: config.network }),
      mode: 0o644,
    },
  ];
  if (config.init === 'systemd') {
    const unit = `/etc/systemd/system/${GUEST_SERVICE_NAME}.service`;
    files.push(
      { path: unit, content: renderTemplate(templates.guestUnit, {}), mode: 0o644 },
      // What `systemctl enable` makes of its WantedBy=sysinit.target: it must run before the network comes up.
      { path: `/etc/systemd/system/sysinit.target.wants/${GUEST_SERVICE_NAME}.service`, symlink: unit },
      // The kernel's console is tty0 (what vSphere's console shows); the journal still reaches the serial port.
      { path: '/etc/systemd/journald.conf.d/c2v-serial.conf', content: renderTemplate(templates.journaldSerial, {}), mode: 0o644 },
    );
  } else {
    const script = `/etc/init.d/${GUEST_SERVICE_NAME}`;
    files.push({ path: script, content: renderTemplate(templates.guestOpenrc, {}), mode: 0o755 }, { path: `/etc/runlevels/${config.openrcRunlevel}/${GUEST_SERVICE_NAME}`, symlink: script });
  }
  return files;
}
