/**
 * The image's ENTRYPOINT + CMD, ENV, WORKDIR and USER as a boot service. One POSIX-sh wrapper carries the
 * environment and argv (one quoting scheme for every init system); the systemd unit or OpenRC script around it
 * adds the user, restarts and logging.
 */
import { renderTemplate, type Templates, type TemplateValue } from './template.js';

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

/** The image reference as one line: it goes into comments and descriptions. */
function oneLine(source: string): string {
  return source.replace(/\n/g, ' ');
}

function appDescription(source: string): string {
  return `Application of ${oneLine(source)} (converted by c2v)`;
}

/** The wrapper at APP_WRAPPER_PATH: ENV entries that are not valid sh names are left out, as sh could not set them. */
export function appWrapper(cmd: ImageCommand, argv: string[], source: string, templates: Pick<Templates, 'appRun'>, deployEnv = ''): string {
  const env: TemplateValue[] = [];
  for (const kv of cmd.env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const key = kv.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    env.push({ key, value: kv.slice(eq + 1) });
  }
  return renderTemplate(templates.appRun, { source: oneLine(source), env, deployEnv, workingDir: cmd.workingDir || '/', argv });
}

/** "1000", "app", "app:staff", "1000:1000" -> user and optional group, as docker accepts them. */
export function splitUser(user: string): { user?: string; group?: string } {
  if (!user) return {};
  const [u, g] = user.split(':', 2);
  return { user: u || undefined, group: g || undefined };
}

export function systemdUnit(cmd: ImageCommand, source: string, templates: Pick<Templates, 'systemdUnit'>): string {
  const { user, group } = splitUser(cmd.user);
  return renderTemplate(templates.systemdUnit, { description: appDescription(source), wrapperPath: APP_WRAPPER_PATH, user: user ?? '', group: group ?? '' });
}

export function openrcScript(cmd: ImageCommand, source: string, templates: Pick<Templates, 'openrcScript'>): string {
  const { user, group } = splitUser(cmd.user);
  const owner = user ? (group ? `${user}:${group}` : user) : '';
  return renderTemplate(templates.openrcScript, {
    description: appDescription(source),
    wrapperPath: APP_WRAPPER_PATH,
    logPath: `/var/log/${APP_SERVICE_NAME}.log`,
    owner,
  });
}
