import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { appWrapper, containerArgv, isAppCommand, openrcScript, splitUser, systemdUnit, type ImageCommand } from '../../src/plan/app-service.js';
import { AppliancePlanError, planAppliance, setupScript, type ImageProbe } from '../../src/plan/appliance.js';
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

  it('adds kernel, systemd, network and the app service to a Debian app image', () => {
    const plan = planAppliance({ templates, source: 'myapp:1.4', command: cmd, probe: appImage, init: 'auto', appService: true })!;
    expect(plan).toMatchObject({ family: 'debian', template: 'debian.Dockerfile', init: 'systemd', installKernel: true, installInit: true, installNetwork: true, kernelCmdline: 'net.ifnames=0' });
    expect(plan.buildArgs).toEqual({ C2V_KERNEL: '1', C2V_INIT: 'systemd', C2V_NETWORK: '1', C2V_SSH: '0' });
    expect(plan.files.map((f) => f.path).sort()).toEqual(['c2v/app-run', 'c2v/c2v-app.service', 'c2v/interfaces', 'c2v/setup.sh']);
    const setup = plan.files.find((f) => f.path === 'c2v/setup.sh')!.content;
    expect(setup).toContain('systemctl enable c2v-app.service');
    expect(setup).toContain('systemctl enable serial-getty@ttyS0.service');
    expect(setup).toContain('passwd -l root');
  });

  it('leaves a VM image alone', () => {
    const vm: ImageProbe = { osRelease: bookworm, hasKernel: true, init: 'systemd' };
    expect(planAppliance({ templates, source: 'vm', command: { ...cmd, entrypoint: [], cmd: ['/sbin/init'] }, probe: vm, init: 'auto', appService: true })).toBeUndefined();
    expect(planAppliance({ templates, source: 'vm', command: cmd, probe: vm, init: 'auto', appService: false })).toBeUndefined();
  });

  it('adds only the service layer to an image that has kernel and init', () => {
    const plan = planAppliance({ templates, source: 'x', command: cmd, probe: { osRelease: bookworm, hasKernel: true, init: 'systemd' }, init: 'auto', appService: true })!;
    expect(plan.buildArgs).toEqual({ C2V_KERNEL: '0', C2V_INIT: 'none', C2V_NETWORK: '0', C2V_SSH: '0' });
    expect(plan.kernelCmdline).toBe('');
  });

  it('switches to OpenRC on request, with networking and the getty in inittab', () => {
    const plan = planAppliance({ templates, source: 'x', command: cmd, probe: appImage, init: 'openrc', appService: true })!;
    expect(plan.buildArgs.C2V_INIT).toBe('openrc');
    const setup = plan.files.find((f) => f.path === 'c2v/setup.sh')!.content;
    expect(setup).toContain('rc-update add networking boot');
    expect(setup).toContain('rc-update add c2v-app default');
    expect(setup).toContain('T0:2345:respawn:/sbin/agetty -L 115200 ttyS0 vt100');
    expect(plan.files.map((f) => f.path)).toContain('c2v/c2v-app.openrc');
  });

  it('installs an SSH key and a root password hash only when given', () => {
    const plan = planAppliance({ templates, source: 'x', command: cmd, probe: appImage, init: 'auto', appService: false, sshAuthorizedKeys: 'ssh-ed25519 AAAA test', rootPasswordHash: '$6$salt$hash' })!;
    expect(plan.buildArgs.C2V_SSH).toBe('1');
    expect(plan.files.find((f) => f.path === 'c2v/authorized_keys')?.content).toBe('ssh-ed25519 AAAA test\n');
    expect(setupScript({ family: 'debian', init: 'systemd', installNetwork: false, app: false, ssh: false, rootPasswordHash: '$6$salt$hash' }, templates)).toContain(`usermod -p '$6$salt$hash' root`);
  });

  it('refuses distributions without a template, and OpenRC where there is none', () => {
    expect(() => planAppliance({ templates, source: 'x', command: cmd, probe: { osRelease: { ID: 'arch', PRETTY_NAME: 'Arch Linux' }, hasKernel: false, init: 'none' }, init: 'auto', appService: true })).toThrow(
      AppliancePlanError,
    );
    expect(() => planAppliance({ templates, source: 'x', command: cmd, probe: { osRelease: { ID: 'rocky', ID_LIKE: 'rhel' }, hasKernel: false, init: 'none' }, init: 'openrc', appService: true })).toThrow(
      /--init openrc is not available/,
    );
  });
});
