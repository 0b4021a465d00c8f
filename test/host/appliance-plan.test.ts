import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { appWrapper, containerArgv, isAppCommand, openrcScript, splitUser, systemdUnit, type ImageCommand } from '../../src/plan/app-service.js';
import { AppliancePlanError, planAppliance, type ImageProbe } from '../../src/plan/appliance.js';
import { planGuestFiles } from '../../src/plan/guest-files.js';
import { distroFamily } from '../../src/plan/os-release.js';
import { shQuote, type Templates } from '../../src/plan/template.js';

const cmd: ImageCommand = {
  entrypoint: ['/usr/bin/tini', '--'],
  cmd: ['python3', 'app.py', "it's $HOME"],
  env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'GREETING=hello world', 'QUOTE=a\'b"c$d`e', 'bad key=x'],
  workingDir: '/srv/app',
  user: 'app:staff',
  exposedPorts: ['8080/tcp'],
};
const bookworm = { ID: 'debian', VERSION_ID: '12', PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)' };
const appImage: ImageProbe = { osRelease: bookworm, hasKernel: false, init: 'none' };

let templates: Templates;
beforeAll(async () => {
  templates = await loadTemplates();
});

describe('the app command as a service', () => {
  it('runs ENTRYPOINT then CMD, or the override', () => {
    expect(containerArgv(cmd)).toEqual(['/usr/bin/tini', '--', 'python3', 'app.py', "it's $HOME"]);
    expect(containerArgv(cmd, ['nginx', '-g', 'daemon off;'])).toEqual(['nginx', '-g', 'daemon off;']);
  });

  it('is not made for inits and bare shells', () => {
    expect(isAppCommand(['/sbin/init'])).toBe(false);
    expect(isAppCommand(['/lib/systemd/systemd'])).toBe(false);
    expect(isAppCommand(['bash'])).toBe(false);
    expect(isAppCommand([])).toBe(false);
    expect(isAppCommand(['bash', '-c', 'exec app'])).toBe(true);
  });

  it('writes a wrapper that a real sh runs with the exact environment, directory and argv', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-wrap-'));
    try {
      const probe = { ...cmd, workingDir: dir };
      const script = appWrapper(probe, ['/bin/sh', '-c', 'printf "%s|%s|%s|%s" "$GREETING" "$QUOTE" "$(pwd)" "$1"', 'arg0', "it's $HOME"], 'img:1', templates);
      const file = path.join(dir, 'run');
      writeFileSync(file, script, { mode: 0o755 });
      const out = execFileSync('/bin/sh', [file], { encoding: 'utf8', env: {} });
      expect(out).toBe(`hello world|a'b"c$d\`e|${dir}|it's $HOME`);
      expect(script).not.toContain('bad key');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('quotes for sh', () => {
    expect(shQuote("a'b")).toBe(`'a'\\''b'`);
    expect(splitUser('1000:1000')).toEqual({ user: '1000', group: '1000' });
    expect(splitUser('')).toEqual({});
  });

  it('makes a systemd unit that restarts on failure and logs to the console, as the image USER', () => {
    const unit = systemdUnit(cmd, 'myapp:1.4', templates);
    expect(unit).toContain('ExecStart=/usr/local/lib/c2v/app-run\n');
    expect(unit).toContain('User=app\nGroup=staff\n');
    expect(unit).toContain('Restart=on-failure\n');
    expect(unit).toContain('StandardOutput=journal+console\n');
    expect(unit).toContain('WantedBy=multi-user.target\n');
  });

  it('makes an OpenRC script supervised and respawned', () => {
    const s = openrcScript(cmd, 'myapp:1.4', templates);
    expect(s.startsWith('#!/sbin/openrc-run\n')).toBe(true);
    expect(s).toContain('supervisor=supervise-daemon\n');
    expect(s).toContain("command_user='app:staff'\n");
    expect(s).toContain('use net networking');
  });
});

describe('appliance planning', () => {
  it('detects the distribution family', () => {
    expect(distroFamily(bookworm)).toBe('debian');
    expect(distroFamily({ ID: 'ubuntu', ID_LIKE: 'debian' })).toBe('ubuntu');
    expect(distroFamily({ ID: 'linuxmint', ID_LIKE: 'ubuntu debian' })).toBe('ubuntu');
    expect(distroFamily({ ID: 'alpine' })).toBe('alpine');
    expect(distroFamily({ ID: 'rocky', ID_LIKE: 'rhel centos fedora' })).toBe('rhel');
    expect(distroFamily({ ID: 'arch' })).toBeUndefined();
  });

  it('builds the packages step for a Debian app image: one stage and one script, whatever its config', () => {
    const plan = planAppliance({ templates, source: 'myapp:1.4', command: cmd, probe: appImage, init: 'auto', appService: true })!;
    expect(plan).toMatchObject({ family: 'debian', init: 'systemd', installKernel: true, installInit: true, installNetwork: true, ssh: false });
    expect(plan.buildArgs).toEqual({ C2V_INIT: 'auto', C2V_SSH: '0', C2V_CLOUD_INIT: '0', C2V_SECURE_BOOT: '0', C2V_GUEST_AGENT: '0', C2V_NETBOOT: '0', C2V_USER: 'app:staff' });
    expect(plan.files.map((f) => f.path).sort()).toEqual(['c2v-packages.sh', 'interfaces']);
    expect(plan.dockerfile).toMatch(/^FROM \$\{C2V_BASE\}$/m);
    expect(plan.dockerfile).toMatch(/^ARG C2V_USER=app:staff$/m);
    // Another app on the same base needs the same build context but for the USER it restores.
    const other = planAppliance({ templates, source: 'other:2', command: { ...cmd, cmd: ['node', 'server.js'], env: [] }, probe: appImage, init: 'auto', appService: true })!;
    expect(other.files).toEqual(plan.files);
  });

  it('needs no build for a VM image, nor for the app service, keys or a password on one', () => {
    const vm: ImageProbe = { osRelease: bookworm, hasKernel: true, init: 'systemd', hasSshd: true };
    expect(planAppliance({ templates, source: 'vm', command: { ...cmd, entrypoint: [], cmd: ['/sbin/init'] }, probe: vm, init: 'auto', appService: true })).toBeUndefined();
    expect(planAppliance({ templates, source: 'vm', command: cmd, probe: vm, init: 'auto', appService: true, sshAuthorizedKeys: 'ssh-ed25519 AAAA' })).toBeUndefined();
    expect(planAppliance({ templates, source: 'vm', command: cmd, probe: { ...vm, hasSshd: false }, init: 'auto', appService: true, sshAuthorizedKeys: 'ssh-ed25519 AAAA' })).toMatchObject({ ssh: true, installKernel: false });
  });

  it('builds for --secure-boot only when the image lacks the signed shim and GRUB', () => {
    const vm: ImageProbe = { osRelease: bookworm, hasKernel: true, init: 'systemd', hasSshd: true };
    const plan = planAppliance({ templates, source: 'vm', command: cmd, probe: vm, init: 'auto', appService: true, secureBoot: true });
    expect(plan).toMatchObject({ secureBoot: true, installKernel: false, installInit: false, installNetwork: false });
    expect(plan!.buildArgs.C2V_SECURE_BOOT).toBe('1');
    expect(plan!.dockerfile).toMatch(/^ARG C2V_SECURE_BOOT=1$/m);
    expect(planAppliance({ templates, source: 'vm', command: cmd, probe: { ...vm, hasSignedBoot: true }, init: 'auto', appService: true, secureBoot: true })).toBeUndefined();
  });

  it('builds for --guest-agent only when the image lacks qemu-ga', () => {
    const vm: ImageProbe = { osRelease: bookworm, hasKernel: true, init: 'systemd', hasSshd: true };
    const plan = planAppliance({ templates, source: 'vm', command: cmd, probe: vm, init: 'auto', appService: true, guestAgent: true });
    expect(plan).toMatchObject({ guestAgent: true, installKernel: false, buildArgs: { C2V_GUEST_AGENT: '1' } });
    expect(planAppliance({ templates, source: 'vm', command: cmd, probe: { ...vm, hasGuestAgent: true }, init: 'auto', appService: true, guestAgent: true })).toBeUndefined();
  });

  it('refuses a USER that could add lines to the stage', () => {
    expect(() => planAppliance({ templates, source: 'x', command: { ...cmd, user: 'app\nRUN rm -rf /' }, probe: appImage, init: 'auto', appService: true })).toThrow(/is not a user or uid\[:group\]/);
  });
});

/** The guest agent's files, which every guest with systemd or OpenRC gets (plan/guest-agent.ts). */
const AGENT = /^\/usr\/local\/lib\/c2v\/(c2v-guest|network\.sh|ovf-env\.awk|grow-root)$|^\/etc\/c2v\/guest\.conf$|c2v-guest|journald\.conf\.d/;
const withoutAgent = <T extends { path: string }>(files: T[]): T[] => files.filter((f) => !AGENT.test(f.path));

describe('guest files, written at conversion time', () => {
  const systemdVm: ImageProbe = { osRelease: bookworm, hasKernel: true, init: 'systemd', hasSshd: true, packages: ['kernel', 'init systemd', 'network ifupdown', 'vmtools'] };

  it('the app service under systemd: wrapper, unit and the link systemctl enable would make', () => {
    const g = planGuestFiles({ templates, source: 'myapp:1.4', command: cmd, probe: systemdVm, appService: true });
    expect(withoutAgent(g.additions).map((a) => [a.path, 'symlink' in a ? `-> ${a.symlink}` : 'content' in a ? (a.mode ?? 0o644).toString(8) : 'dir'])).toEqual([
      ['/usr/local/lib/c2v/app-run', '755'],
      ['/etc/systemd/system/c2v-app.service', '644'],
      ['/etc/systemd/system/multi-user.target.wants/c2v-app.service', '-> /etc/systemd/system/c2v-app.service'],
    ]);
    expect(g.kernelCmdline).toBe('net.ifnames=0');
    // The image went through the packages step: root is locked unless a hash is given.
    expect(g.edits).toEqual([{ path: '/etc/shadow', op: 'shadow-password', user: 'root', hash: null }]);
  });

  it('the app service under OpenRC, enabled in the default runlevel', () => {
    const g = planGuestFiles({ templates, source: 'x', command: cmd, probe: { ...systemdVm, init: 'openrc' }, appService: true });
    expect(withoutAgent(g.additions).map((a) => a.path)).toEqual(['/usr/local/lib/c2v/app-run', '/etc/init.d/c2v-app', '/etc/runlevels/default/c2v-app']);
    expect(g.additions.map((a) => a.path)).toEqual(expect.arrayContaining(['/etc/init.d/c2v-guest', '/etc/runlevels/sysinit/c2v-guest']));
  });

  it('SSH keys and a root password hash, only when given; a VM image of its own is not touched otherwise', () => {
    const g = planGuestFiles({ templates, source: 'x', command: cmd, probe: systemdVm, appService: false, sshAuthorizedKeys: 'ssh-ed25519 AAAA test\n\n', rootPasswordHash: '$6$salt$hash' });
    expect(withoutAgent(g.additions)).toEqual([
      { path: '/root/.ssh', directory: true, mode: 0o700 },
      { path: '/root/.ssh/authorized_keys', content: 'ssh-ed25519 AAAA test\n', mode: 0o600 },
    ]);
    expect(g.edits).toEqual([{ path: '/etc/shadow', op: 'shadow-password', user: 'root', hash: '$6$salt$hash' }]);
    const own = planGuestFiles({ templates, source: 'vm', command: { ...cmd, cmd: ['/sbin/init'], entrypoint: [] }, probe: { ...systemdVm, packages: undefined }, appService: true });
    // Nothing of its own is touched; it gets only the guest agent, and its SSH host keys are left for it to make.
    expect({ ...own, additions: withoutAgent(own.additions) }).toEqual({ additions: [], edits: [], appArgv: undefined, kernelCmdline: '', leaveOut: '^etc/ssh/ssh_host_[^/]*$', ovfProperties: own.ovfProperties });
    expect(own.ovfProperties.map((p) => p.key)).toEqual(['c2v.hostname', 'c2v.ntp', 'c2v.ssh_keys', 'c2v.root_password']);
  });

  it('refuses what the final image cannot run: an app service without systemd or OpenRC, keys without sshd', () => {
    expect(() => planGuestFiles({ templates, source: 'x', command: cmd, probe: { ...systemdVm, init: 'other' }, appService: true })).toThrow(/neither systemd nor OpenRC/);
    expect(() => planGuestFiles({ templates, source: 'x', command: cmd, probe: { ...systemdVm, hasSshd: false }, appService: false, sshAuthorizedKeys: 'k' })).toThrow(/needs an SSH server/);
  });
});

describe('appliance planning refusals', () => {
  it('refuses distributions without a template, and OpenRC where there is none', () => {
    expect(() => planAppliance({ templates, source: 'x', command: cmd, probe: { osRelease: { ID: 'arch', PRETTY_NAME: 'Arch Linux' }, hasKernel: false, init: 'none' }, init: 'auto', appService: true })).toThrow(
      AppliancePlanError,
    );
    expect(() => planAppliance({ templates, source: 'x', command: cmd, probe: { osRelease: { ID: 'rocky', ID_LIKE: 'rhel' }, hasKernel: false, init: 'none' }, init: 'openrc', appService: true })).toThrow(
      /--init openrc is not available/,
    );
  });
});
