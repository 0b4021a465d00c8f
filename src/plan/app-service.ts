/**
 * The image's ENTRYPOINT + CMD, ENV, WORKDIR and USER as a boot service. One POSIX-sh wrapper carries the
 * environment and argv (one quoting scheme for every init system); the systemd unit or OpenRC script around it
 * adds the user, restarts and logging.
 */
export interface ImageCommand {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  user: string;
  exposedPorts: string[];
}

export const APP_WRAPPER_PATH = '/usr/local/lib/c2v/app-run';
export const APP_SERVICE_NAME = 'c2v-app';

const INIT_PROGRAMS = new Set(['/sbin/init', '/usr/sbin/init', '/lib/systemd/systemd', '/usr/lib/systemd/systemd', 'init', 'systemd', '/sbin/openrc-init', 'openrc-init']);
const BARE_SHELLS = new Set(['sh', 'bash', 'ash', 'dash', '/bin/sh', '/bin/bash', '/bin/ash', '/bin/dash', '/usr/bin/bash', '/usr/bin/sh']);

/** What the container would run: ENTRYPOINT followed by CMD, as docker does. */
export function containerArgv(cmd: ImageCommand, override?: string[]): string[] {
  return override && override.length ? override : [...cmd.entrypoint, ...cmd.cmd];
}

/**
 * Whether the argv is an application worth a service. An init means the image is already a VM; a bare
 * interactive shell (the base images' default) would exit at once without a terminal and restart forever.
 */
export function isAppCommand(argv: string[]): boolean {
  if (argv.length === 0) return false;
  if (INIT_PROGRAMS.has(argv[0])) return false;
  if (argv.length === 1 && BARE_SHELLS.has(argv[0])) return false;
  return true;
}

/** Single-quotes a word for POSIX sh; the only character that needs care inside single quotes is the quote. */
export function shQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function appWrapper(cmd: ImageCommand, argv: string[], source: string): string {
  const lines = ['#!/bin/sh', `# Written by c2v: the command of ${source.replace(/\n/g, ' ')}, as the container would run it.`];
  for (const kv of cmd.env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const key = kv.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    lines.push(`export ${key}=${shQuote(kv.slice(eq + 1))}`);
  }
  const dir = cmd.workingDir || '/';
  lines.push(`cd ${shQuote(dir)} || exit 1`);
  lines.push(`exec ${argv.map(shQuote).join(' ')}`);
  lines.push('');
  return lines.join('\n');
}

/** "1000", "app", "app:staff", "1000:1000" -> user and optional group, as docker accepts them. */
export function splitUser(user: string): { user?: string; group?: string } {
  if (!user) return {};
  const [u, g] = user.split(':', 2);
  return { user: u || undefined, group: g || undefined };
}

export function systemdUnit(cmd: ImageCommand, source: string): string {
  const { user, group } = splitUser(cmd.user);
  const lines = [
    '[Unit]',
    `Description=Application of ${source.replace(/\n/g, ' ')} (converted by c2v)`,
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${APP_WRAPPER_PATH}`,
  ];
  if (user) lines.push(`User=${user}`);
  if (group) lines.push(`Group=${group}`);
  lines.push('Restart=on-failure', 'RestartSec=2', 'StandardOutput=journal+console', 'StandardError=journal+console', '', '[Install]', 'WantedBy=multi-user.target', '');
  return lines.join('\n');
}

export function openrcScript(cmd: ImageCommand, source: string): string {
  const { user, group } = splitUser(cmd.user);
  const lines = [
    '#!/sbin/openrc-run',
    `description=${shQuote(`Application of ${source.replace(/\n/g, ' ')} (converted by c2v)`)}`,
    'supervisor=supervise-daemon',
    `command=${shQuote(APP_WRAPPER_PATH)}`,
    'respawn_delay=2',
    'respawn_max=0',
    `output_log=${shQuote(`/var/log/${APP_SERVICE_NAME}.log`)}`,
    `error_log=${shQuote(`/var/log/${APP_SERVICE_NAME}.log`)}`,
  ];
  if (user) {
    const owner = group ? `${user}:${group}` : user;
    lines.push(`command_user=${shQuote(owner)}`);
    // supervise-daemon opens the log after dropping privileges: the file must already be the user's.
    lines.push('', 'start_pre() {', `\tcheckpath -f -m 0640 -o ${shQuote(owner)} ${shQuote(`/var/log/${APP_SERVICE_NAME}.log`)}`, '}');
  }
  // `use`, not `need`: Debian's networking script provides "networking", Alpine's "net"; a hard need on a name
  // nobody provides keeps the app from starting at all.
  lines.push('', 'depend() {', '\tuse net networking', '\tafter net networking firewall', '}', '');
  return lines.join('\n');
}
