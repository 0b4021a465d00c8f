/**
 * templates/guest/c2v-guest.sh, c2v's in-guest agent, with guest.conf and the parser as c2v renders them, run for
 * real in dry runs over a fake guest root (C2V_ROOT): under the host's sh, dash and busybox sh, and with busybox's
 * tools alone as an Alpine guest has them. Nothing outside the temporary folder is touched: commands that would
 * change the running system are only named (C2V_DRY_RUN). The parser alone: ovf-env-awk.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { buildOvfEnvironment } from '../../src/formats/ovf-env.js';
import { renderTemplate, type Templates } from '../../src/plan/template.js';
import { BUILD_KEY, KEY_A, KEY_B, OVF_ENV_FIXTURES as FIXTURES, PASSWORD, VSPHERE } from '../helpers/ovf-env-fixtures.js';

const has = (argv: string[]) => spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' }).status === 0;
const SHELLS = [['sh'], ['dash'], ['busybox', 'sh']].filter((s) => has([...s, '-c', ':']));
const busybox = has(['busybox', 'true']);

/** What a value that ran as code would create: outside every guest root. */
const PWNED = path.join(os.tmpdir(), `c2v-guest-pwned-${process.pid}`);

let templates: Templates;
let work: string;
beforeAll(async () => {
  templates = await loadTemplates();
  work = mkdtempSync(path.join(os.tmpdir(), 'c2v-guest-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(PWNED, { force: true });
});

/** Every file under a folder, as path -> content (links as `-> target`). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out[path.relative(dir, p)] = `-> ${readlinkSync(p)}`;
      else if (st.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p, 'latin1');
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

interface GuestConf {
  appProperties: string[];
  appBooleans: string[];
  appOwner: string;
  network: string;
}
const CONF: GuestConf = { appProperties: ['GREETING', 'API_TOKEN', 'EMPTY', 'PORT', 'UNSET'], appBooleans: [], appOwner: 'app:staff', network: 'ifupdown' };

/** A guest root as c2v leaves it (sshd, chpasswd, timesyncd, a build-time key), with two NICs in a fake sysfs. */
function makeGuest(name: string, conf: GuestConf = CONF, extra: Record<string, string | { link: string }> = {}): string {
  const root = path.join(work, name);
  const files: Record<string, string | { link: string }> = {
    'usr/local/lib/c2v/c2v-guest': renderTemplate(templates.guestAgent, {}),
    'usr/local/lib/c2v/ovf-env.awk': renderTemplate(templates.ovfEnvAwk, {}),
    'usr/local/lib/c2v/network.sh': renderTemplate(templates.guestNetwork, {}),
    'etc/c2v/guest.conf': renderTemplate(templates.guestConf, { ...conf }),
    'etc/hostname': 'image-host\n',
    'etc/hosts': '127.0.0.1 localhost\n127.0.1.1 image-host\n',
    'root/.ssh/authorized_keys': `${BUILD_KEY}\n`,
    'usr/sbin/sshd': '',
    'usr/sbin/chpasswd': '',
    'lib/systemd/systemd-timesyncd': '',
    'sys/class/net/lo/address': '00:00:00:00:00:00\n',
    'sys/class/net/eth0/address': '00:50:56:a1:00:01\n',
    'sys/class/net/eth0/device': { link: '../../../devices/pci0000:00/0000:00:11.0/0000:03:00.0' },
    'sys/class/net/eth1/address': '00:50:56:a1:00:02\n',
    'sys/class/net/eth1/device': { link: '../../../devices/pci0000:00/0000:00:11.0/0000:0b:00.0' },
    ...extra,
  };
  for (const [rel, entry] of Object.entries(files)) {
    const p = path.join(root, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    if (typeof entry === 'string') writeFileSync(p, entry);
    else symlinkSync(entry.link, p);
  }
  return root;
}

interface Run {
  status: number | null;
  /** stderr's lines without their `c2v-guest: ` prefix. */
  lines: string[];
  stderr: string;
}

function agent(root: string, opts: { env?: string; shell?: string[]; vars?: Record<string, string> } = {}): Run {
  const shell = opts.shell ?? ['sh'];
  const r = spawnSync(shell[0], [...shell.slice(1), path.join(root, 'usr/local/lib/c2v/c2v-guest')], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, C2V_ROOT: root, C2V_DRY_RUN: '1', ...(opts.env ? { C2V_OVF_ENV: opts.env } : {}), ...opts.vars },
  });
  const raw = r.stderr.split('\n').filter(Boolean);
  for (const l of raw) expect(l, 'every line says who wrote it').toMatch(/^c2v-guest: /);
  expect(r.stdout).toBe('');
  return { status: r.status, lines: raw.map((l) => l.slice('c2v-guest: '.length)), stderr: r.stderr };
}

const read = (root: string, p: string) => readFileSync(path.join(root, p), 'utf8');
const mode = (root: string, p: string) => (lstatSync(path.join(root, p)).mode & 0o777).toString(8);

/** What `. app.env` gives the app's shell, for one variable, as bytes. */
function sourced(root: string, name: string, shell: string[] = ['sh']): Buffer {
  const script = `. "$1" && printf %s "$${name}"`;
  const r = spawnSync('env', ['-i', ...shell, '-c', script, 'sh', path.join(root, 'run/c2v/app.env')]);
  expect(r.status, r.stderr.toString()).toBe(0);
  return r.stdout;
}

const STATIC_INTERFACES = `# Written by c2v-guest at every boot from the OVF properties c2v.ipv4 and c2v.gateway; DHCP where none is set.
auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet static
\taddress 10.0.2.15/24
\tgateway 10.0.2.2

allow-hotplug eth1
iface eth1 inet dhcp
`;
const DHCP_INTERFACES = `# Written by c2v-guest at every boot from the OVF properties c2v.ipv4 and c2v.gateway; DHCP where none is set.
auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet dhcp

allow-hotplug eth1
iface eth1 inet dhcp
`;

/** Busybox's applets alone on PATH: what an Alpine guest runs the agent with. */
function busyboxPath(): string {
  const dir = path.join(work, 'busybox-bin');
  if (!existsSync(dir)) {
    mkdirSync(dir);
    const bin = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
    for (const a of ['sh', 'awk', 'sed', 'tr', 'cat', 'mv', 'cp', 'chmod', 'chown', 'mkdir', 'rm', 'rmdir', 'grep', 'head', 'wc', 'readlink', 'sleep', 'env']) {
      symlinkSync(bin, path.join(dir, a));
    }
  }
  return dir;
}

const VARIANTS: { name: string; shell: string[]; vars?: () => Record<string, string> }[] = [
  ...SHELLS.map((s) => ({ name: s.join(' '), shell: s })),
  ...(busybox ? [{ name: 'busybox sh with busybox tools alone', shell: ['busybox', 'sh'], vars: () => ({ C2V_TEST_PATH: busyboxPath() }) }] : []),
];

describe('applying vSphere’s environment', () => {
  const trees: Record<string, string>[] = [];

  it.each(VARIANTS.map((v) => [v.name, v]))('under %s', (name, v) => {
    const root = makeGuest(`vsphere-${name.replace(/\W+/g, '-')}`);
    const r = agent(root, { env: path.join(FIXTURES, 'vsphere.xml'), shell: v.shell, vars: v.vars?.() });
    expect(r.status).toBe(0);
    const applied = 'c2v.hostname c2v.ipv4 c2v.gateway c2v.dns c2v.search c2v.ntp c2v.ssh_keys c2v.root_password app.GREETING app.API_TOKEN app.EMPTY app.PORT';
    expect(r.lines).toEqual([
      'dry run: would run: ssh-keygen -A',
      "generated this VM's SSH host keys (ssh-keygen -A)",
      'dry run: would run: hostname web-01',
      'dry run: would run: chpasswd, reading root:PASSWORD (23 bytes) on its stdin',
      `dry run: would run: chown app:staff ${root}/run/c2v/app.env`,
      `OVF environment from file (${FIXTURES}/vsphere.xml): applied ${applied}`,
    ]);
    expect(`root:${PASSWORD}\n`).toHaveLength(23);
    expect(read(root, 'etc/hostname')).toBe('web-01\n');
    expect(read(root, 'etc/hosts')).toBe('127.0.0.1 localhost\n127.0.1.1 web-01.example.com web-01\n');
    expect(read(root, 'etc/network/interfaces')).toBe(STATIC_INTERFACES);
    expect(read(root, 'etc/resolv.conf')).toBe(
      '# Written by c2v-guest from the OVF properties c2v.dns and c2v.search.\nnameserver 10.0.2.3\nnameserver 2001:db8::53\nsearch example.com corp.example.com\n',
    );
    expect(read(root, 'etc/systemd/timesyncd.conf.d/c2v.conf')).toBe('# Written by c2v-guest from the OVF property c2v.ntp.\n[Time]\nNTP=0.pool.ntp.org 10.0.2.4\n');
    expect(read(root, 'root/.ssh/authorized_keys')).toBe(
      `${BUILD_KEY}\n# c2v deploy-time keys (OVF property c2v.ssh_keys): rewritten at every boot\n${KEY_A}\n${KEY_B}\n# end of c2v deploy-time keys\n`,
    );
    expect([mode(root, 'root/.ssh'), mode(root, 'root/.ssh/authorized_keys'), mode(root, 'run/c2v'), mode(root, 'run/c2v/app.env')]).toEqual(['700', '600', '755', '600']);
    for (const n of ['GREETING', 'API_TOKEN', 'EMPTY', 'PORT']) expect(sourced(root, n, v.shell), n).toEqual(Buffer.from(VSPHERE[`app.${n}`]));
    expect(read(root, 'run/c2v/app.env')).not.toMatch(/UNSET/);
    // The clear-text password lived under /run/c2v/env only, which is gone; the parsed values with it.
    const files = tree(root);
    expect(Object.keys(files).filter((f) => f.startsWith('run/c2v/') && f !== 'run/c2v/app.env')).toEqual([]);
    for (const [f, content] of Object.entries(files)) expect(content.includes('s3cr&t'), f).toBe(false);
    expect(r.stderr).not.toContain('s3cr&t');
    trees.push(Object.fromEntries(Object.entries(files).map(([f, c]) => [f, c.replaceAll(root, 'ROOT')])));
    expect(trees[trees.length - 1], 'every shell writes the same files').toEqual(trees[0]);
  });
});

describe('hostile values', () => {
  const APP: Record<string, string> = {
    QUOTE: `it's "quoted" 'twice'`,
    SUBST: `$(touch ${PWNED}) \`touch ${PWNED}\` \${HOME}`,
    BACKSLASH: 'a\\b\\\\c\\',
    NEWLINES: '\nfirst\nsecond\n\n',
    PATHLIKE: '../../etc/passwd',
    EMPTY: '',
    LONG: `x'y"z$(id)\`\\\n`.repeat(6000).slice(0, 65536),
  };
  const conf = { ...CONF, appProperties: Object.keys(APP) };
  const env = (extra: { key: string; value: string }[]) => {
    const file = path.join(work, `env-${Math.random().toString(36).slice(2)}.xml`);
    const props = [...Object.entries(APP).map(([k, value]) => ({ key: `app.${k}`, value })), ...extra];
    writeFileSync(file, buildOvfEnvironment({ properties: props }));
    return file;
  };

  it.each(VARIANTS.map((v) => [v.name, v]))('app values come back byte for byte, and odd keys are ignored, under %s', (name, v) => {
    const outside = tree(work);
    const root = makeGuest(`hostile-app-${name.replace(/\W+/g, '-')}`, conf);
    const r = agent(root, {
      env: env([
        { key: '../../x', value: 'escape' },
        { key: 'app.BAD-NAME', value: 'dash' },
        { key: 'app.UNDECLARED', value: 'nobody asked' },
      ]),
      shell: v.shell,
      vars: v.vars?.(),
    });
    expect(r.status).toBe(0);
    expect(r.lines.filter((l) => l.includes('ignored'))).toEqual([expect.stringContaining(`not letters, digits, '.', '_' and '-': "../../x"`)]);
    for (const [n, value] of Object.entries(APP)) expect(sourced(root, n, v.shell).equals(Buffer.from(value)), n).toBe(true);
    const env2 = read(root, 'run/c2v/app.env');
    expect(env2).not.toMatch(/BAD|UNDECLARED|nobody/);
    expect(existsSync(PWNED)).toBe(false);
    expect(Object.keys(tree(root)).filter((f) => /(^|\/)x$/.test(f))).toEqual([]);
    const created = Object.keys(tree(work)).filter((f) => !(f in outside) && !f.startsWith(`${path.relative(work, root)}/`));
    expect(created.filter((f) => !/^env-\w+\.xml$/.test(f) && !f.startsWith('busybox-bin/'))).toEqual([]);
  });

  it("takes vSphere's True and False for a boolean as true and false, and leaves other values and other properties as they are", () => {
    const root = makeGuest('booleans', { ...CONF, appProperties: ['ON', 'OFF', 'ODD', 'TEXT'], appBooleans: ['ON', 'OFF', 'ODD'] });
    const file = path.join(work, 'env-booleans.xml');
    writeFileSync(file, buildOvfEnvironment({ properties: [{ key: 'app.ON', value: 'True' }, { key: 'app.OFF', value: 'FALSE' }, { key: 'app.ODD', value: 'yes' }, { key: 'app.TEXT', value: 'True' }] }));
    expect(agent(root, { env: file }).status).toBe(0);
    expect(['ON', 'OFF', 'ODD', 'TEXT'].map((n) => sourced(root, n).toString())).toEqual(['true', 'false', 'yes', 'True']);
  });

  it('refuses a host name that is not one, and leaves /etc/hostname and /etc/hosts as they were', () => {
    for (const bad of [`$(touch ${PWNED})`, 'a;b', '../etc', `it's`, '-lead.example', 'trail-.example', 'a..b', `${'x'.repeat(64)}.example`, 'two\nlines', 'tab\there']) {
      const root = makeGuest('hostile-hostname', conf);
      const r = agent(root, { env: env([{ key: 'c2v.hostname', value: bad }]) });
      expect(r.status, bad).toBe(0);
      expect(r.lines, bad).toContain("c2v.hostname: not applied: not a host name (RFC 1123: labels of letters, digits and inner hyphens, up to 63 each and 253 in all): kept the image's");
      expect(r.lines.some((l) => l.includes('would run: hostname')), bad).toBe(false);
      expect(read(root, 'etc/hostname')).toBe('image-host\n');
      expect(read(root, 'etc/hosts')).toBe('127.0.0.1 localhost\n127.0.1.1 image-host\n');
      expect(r.lines[r.lines.length - 1]).toMatch(/; not applied: c2v\.hostname$/);
      rmSync(root, { recursive: true });
    }
    expect(existsSync(PWNED)).toBe(false);
  });

  it('refuses network values that are not addresses, falling back to DHCP, and a password with a line break', () => {
    const root = makeGuest('hostile-network', conf);
    const r = agent(root, {
      env: env([
        { key: 'c2v.ipv4', value: '10.0.2.256/24' },
        { key: 'c2v.gateway', value: '10.0.2.1; rm -rf /' },
        { key: 'c2v.dns', value: '10.0.2.3 $(id)' },
        { key: 'c2v.ntp', value: 'pool.ntp.org;reboot' },
        { key: 'c2v.root_password', value: 'one\ntwo' },
      ]),
    });
    expect(r.status).toBe(0);
    expect(read(root, 'etc/network/interfaces')).toBe(DHCP_INTERFACES);
    expect(existsSync(path.join(root, 'etc/resolv.conf'))).toBe(false);
    expect(r.lines.filter((l) => /^c2v\.\w+: not applied: /.test(l))).toHaveLength(5);
    expect(r.lines.some((l) => l.includes('chpasswd'))).toBe(false);
    expect(r.lines[r.lines.length - 1]).toMatch(/; not applied: c2v\.ipv4 c2v\.gateway c2v\.dns c2v\.ntp c2v\.root_password$/);
  });
});

describe('networking, time, keys and defaults', () => {
  it('puts the static address on the NIC whose MAC is the environment’s first, else on the first NIC', () => {
    const root = makeGuest('mac-eth1', CONF, { 'sys/class/net/eth1/address': '00:50:56:AB:CD:EF\n' });
    const xml = path.join(work, 'mac.xml');
    writeFileSync(xml, buildOvfEnvironment({ properties: [{ key: 'c2v.ipv4', value: '192.168.1.5/16' }], adapters: [{ mac: '00:50:56:ab:cd:ef', network: 'VM Network' }] }));
    agent(root, { env: xml });
    expect(read(root, 'etc/network/interfaces')).toMatch(/iface eth0 inet dhcp\n\nallow-hotplug eth1\niface eth1 inet static\n\taddress 192.168.1.5\/16\n$/);
    writeFileSync(xml, buildOvfEnvironment({ properties: [{ key: 'c2v.ipv4', value: '192.168.1.5/16' }], adapters: [{ mac: '00:50:56:00:00:99', network: 'VM Network' }] }));
    agent(root, { env: xml });
    expect(read(root, 'etc/network/interfaces')).toMatch(/iface eth0 inet static\n\taddress 192.168.1.5\/16\n\nallow-hotplug eth1\niface eth1 inet dhcp\n$/);
  });

  it('writes a NetworkManager keyfile for the chosen NIC, 0600, and removes it when no environment says otherwise', () => {
    const root = makeGuest('nm', { ...CONF, network: 'networkmanager' });
    const r = agent(root, { env: path.join(FIXTURES, 'vsphere.xml') });
    expect(r.status).toBe(0);
    const f = 'etc/NetworkManager/system-connections/c2v-eth0.nmconnection';
    expect(read(root, f)).toBe(`# Written by c2v-guest at every boot from the OVF properties c2v.ipv4, c2v.gateway, c2v.dns and c2v.search.
[connection]
id=c2v-eth0
type=ethernet
interface-name=eth0
autoconnect-priority=100

[ipv4]
method=manual
address1=10.0.2.15/24
gateway=10.0.2.2
dns=10.0.2.3;
dns-search=example.com;corp.example.com;

[ipv6]
method=auto
dns=2001:db8::53;
`);
    expect(mode(root, f)).toBe('600');
    expect(existsSync(path.join(root, 'etc/network/interfaces'))).toBe(false);
    agent(root);
    expect(existsSync(path.join(root, f))).toBe(false);
  });

  it('leaves a network c2v does not manage alone, and says so once', () => {
    const root = makeGuest('unmanaged', { ...CONF, network: '' }, { 'etc/network/interfaces': 'the image’s own\n' });
    const r = agent(root, { env: path.join(FIXTURES, 'vsphere.xml') });
    expect(r.lines.filter((l) => l.includes('network'))).toEqual(["network properties set, but c2v does not manage this image's network (it brought its own): left as it is"]);
    expect(read(root, 'etc/network/interfaces')).toBe('the image’s own\n');
    expect(existsSync(path.join(root, 'etc/resolv.conf'))).toBe(false);
  });

  it('gives systemd-resolved the DNS servers when resolv.conf is its stub', () => {
    const root = makeGuest('resolved', CONF, { 'etc/resolv.conf': { link: '../run/systemd/resolve/stub-resolv.conf' } });
    agent(root, { env: path.join(FIXTURES, 'vsphere.xml') });
    expect(readlinkSync(path.join(root, 'etc/resolv.conf'))).toBe('../run/systemd/resolve/stub-resolv.conf');
    expect(read(root, 'etc/systemd/resolved.conf.d/c2v.conf')).toBe(
      '# Written by c2v-guest from the OVF properties c2v.dns and c2v.search.\n[Resolve]\nDNS=10.0.2.3 2001:db8::53\nDomains=example.com corp.example.com\n',
    );
  });

  it('writes chrony’s sources, says when there is no NTP client, and removes its file when c2v.ntp is emptied', () => {
    const root = makeGuest('chrony', CONF, { 'etc/chrony/chrony.conf': 'sourcedir /etc/chrony/sources.d\n' });
    rmSync(path.join(root, 'lib/systemd/systemd-timesyncd'));
    const xml = path.join(work, 'ntp.xml');
    writeFileSync(xml, buildOvfEnvironment({ properties: [{ key: 'c2v.ntp', value: ' ntp1.example.com, 10.1.1.1 ,fd00::123 ' }] }));
    agent(root, { env: xml });
    expect(read(root, 'etc/chrony/sources.d/c2v.sources')).toBe(
      '# Written by c2v-guest from the OVF property c2v.ntp.\nserver ntp1.example.com iburst\nserver 10.1.1.1 iburst\nserver fd00::123 iburst\n',
    );
    writeFileSync(xml, buildOvfEnvironment({ properties: [{ key: 'c2v.ntp', value: '' }] }));
    agent(root, { env: xml });
    expect(existsSync(path.join(root, 'etc/chrony/sources.d/c2v.sources'))).toBe(false);
    rmSync(path.join(root, 'etc/chrony'), { recursive: true });
    writeFileSync(xml, buildOvfEnvironment({ properties: [{ key: 'c2v.ntp', value: 'ntp1.example.com' }] }));
    expect(agent(root, { env: xml }).lines).toContain('c2v.ntp: not applied: no NTP client in the image (systemd-timesyncd or chrony)');
  });

  it('replaces its block of authorized keys at every boot, and keeps the build-time key outside it', () => {
    const root = makeGuest('keys');
    const xml = path.join(work, 'keys.xml');
    agent(root, { env: path.join(FIXTURES, 'vsphere.xml') });
    writeFileSync(xml, buildOvfEnvironment({ properties: [{ key: 'c2v.ssh_keys', value: `\r\n# a comment\r\n${KEY_B} new\r\n  \n` }] }));
    agent(root, { env: xml });
    const block = (keys: string) => `# c2v deploy-time keys (OVF property c2v.ssh_keys): rewritten at every boot\n${keys}\n# end of c2v deploy-time keys\n`;
    expect(read(root, 'root/.ssh/authorized_keys')).toBe(`${BUILD_KEY}\n${block(`${KEY_B} new`)}`);
    writeFileSync(xml, buildOvfEnvironment({ properties: [{ key: 'c2v.ssh_keys', value: '' }] }));
    agent(root, { env: xml });
    expect(read(root, 'root/.ssh/authorized_keys')).toBe(`${BUILD_KEY}\n`);
    expect(mode(root, 'root/.ssh/authorized_keys')).toBe('600');
  });

  it('without an environment: asks open-vm-tools and the CD-ROM, then restores DHCP and the image’s app settings', () => {
    const root = makeGuest('no-env', CONF, { 'usr/bin/vmware-rpctool': '', 'dev/sr0': '', 'etc/ssh/ssh_host_ed25519_key': 'key' });
    agent(root, { env: path.join(FIXTURES, 'vsphere.xml') });
    expect(read(root, 'etc/network/interfaces')).toBe(STATIC_INTERFACES);
    const r = agent(root);
    expect(r.status).toBe(0);
    expect(r.lines).toEqual([
      'dry run: would run: /usr/bin/vmware-rpctool info-get guestinfo.ovfEnv',
      'guestinfo: asked open-vm-tools (vmware-rpctool) for guestinfo.ovfEnv: none (not on VMware, or no properties)',
      `dry run: would run: mount -t iso9660 -o ro /dev/sr0 ${root}/run/c2v/cdrom`,
      `dry run: would run: umount ${root}/run/c2v/cdrom`,
      'iso: no ovf-env.xml on /dev/sr0',
      "no OVF environment: keeping the image's hostname and DHCP",
    ]);
    expect(read(root, 'etc/network/interfaces')).toBe(DHCP_INTERFACES);
    expect(existsSync(path.join(root, 'run/c2v/app.env'))).toBe(false);
    expect(read(root, 'etc/hostname')).toBe('web-01\n');
    expect(read(root, 'root/.ssh/authorized_keys')).toContain(KEY_A);
  });

  it('says when open-vm-tools is missing, and refuses a prefix without a dry run', () => {
    const root = makeGuest('no-tools');
    expect(agent(root).lines).toContain('guestinfo: open-vm-tools is not installed (no vmware-rpctool or vmtoolsd), so guestinfo.ovfEnv was not read');
    const r = agent(root, { vars: { C2V_DRY_RUN: '0' } });
    expect(r.status).toBe(2);
    expect(r.lines).toEqual(['C2V_ROOT and C2V_DRY_RUN=1 go together (host tests only)']);
  });
});

describe('guest.conf and the service files', () => {
  it('guest.conf gives the agent the names, owner and network it was rendered with', () => {
    const file = path.join(work, 'guest.conf');
    writeFileSync(file, renderTemplate(templates.guestConf, { appProperties: ['A', '_b2'], appBooleans: ['_b2'], appOwner: "o'b:g r", network: 'networkmanager' }));
    const r = spawnSync('sh', ['-c', '. "$1" && printf "%s|%s|%s" "$(echo $C2V_APP_PROPERTIES)" "$C2V_APP_OWNER" "$C2V_NETWORK"', 'sh', file], { encoding: 'utf8' });
    expect(r.stdout).toBe("A _b2|o'b:g r|networkmanager");
  });

  it('the systemd unit runs early, grow-root first and allowed to fail, before the network, SSH and the app', () => {
    const unit = renderTemplate(templates.guestUnit, {});
    const lines = unit.split('\n');
    for (const l of ['DefaultDependencies=no', 'Type=oneshot', 'RemainAfterExit=yes', 'Conflicts=shutdown.target', 'WantedBy=sysinit.target', 'Wants=network-pre.target']) expect(lines).toContain(l);
    const values = (key: string) => lines.filter((l) => l.startsWith(`${key}=`)).flatMap((l) => l.slice(key.length + 1).split(' '));
    expect(values('After')).toEqual(expect.arrayContaining(['local-fs.target', 'systemd-remount-fs.service']));
    expect(values('Before')).toEqual(expect.arrayContaining(['network-pre.target', 'ssh.service', 'sshd.service', 'c2v-app.service', 'systemd-user-sessions.service', 'shutdown.target']));
    expect(values('ExecStart')).toEqual(['-/usr/local/lib/c2v/grow-root', '/usr/local/lib/c2v/c2v-guest']);
  });

  it('the OpenRC script needs nothing (Debian has no localmount), orders itself after the root is writable, and runs both programs', () => {
    const script = renderTemplate(templates.guestOpenrc, {});
    expect(script.startsWith('#!/sbin/openrc-run\n')).toBe(true);
    expect(script.match(/^[ \t]*need .*$/gm)).toBeNull();
    expect(script).toMatch(/^\tafter localmount checkroot mountall\b/m);
    expect(script).toMatch(/^\tbefore .*\bnet networking sshd ssh c2v-app\b/m);
    expect(script.indexOf('/usr/local/lib/c2v/grow-root')).toBeLessThan(script.indexOf('/usr/local/lib/c2v/c2v-guest'));
  });
});
