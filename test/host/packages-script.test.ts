/**
 * templates/packages/c2v-packages.sh, the one packages step every builder runs, and the Dockerfile stage that runs
 * it. The script's decisions are checked in dry runs over fixture trees (an os-release and the files it looks for),
 * under the host's sh and under busybox ash, Alpine's shell; its doing, in a chroot whose package managers are
 * stubs that lay down the files a package would. The real installs are proven by the Docker builds and QEMU boots.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGES_CONTEXT_DIR } from '../../src/plan/appliance.js';
import { parseTemplate, renderTemplate } from '../../src/plan/template.js';
import { PROJECT_ROOT } from '../helpers/env.js';

/** What an inittab getty line runs: a getty only where the port has a UART (type 0 is none). */
const SERIAL_GETTY = '/usr/local/lib/c2v/serial-getty';

const SCRIPT = path.join(PROJECT_ROOT, 'templates', 'packages', 'c2v-packages.sh');
const STAGE = path.join(PROJECT_ROOT, 'templates', 'packages', 'Dockerfile');

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}
const shellcheck = has('shellcheck', ['--version']);
const busybox = has('busybox', ['true']);

const OS_RELEASE = {
  debian: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n',
  ubuntu: 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n',
  mint: 'NAME="Linux Mint"\nVERSION_ID="21.3"\nID=linuxmint\nID_LIKE="ubuntu debian"\nPRETTY_NAME="Linux Mint 21.3"\n',
  alpine: 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n',
  rocky: 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\nPRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n',
  ubi: 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\nPRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
  arch: 'NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n',
};

type Entry = string | { link: string };
/** Merged /usr, as current Debian, Ubuntu and RHEL-likes ship it: the links are relative, so they resolve inside a prefix. */
const MERGED_USR: Record<string, Entry> = { bin: { link: 'usr/bin' }, sbin: { link: 'usr/sbin' }, lib: { link: 'usr/lib' } };
/** Debian's systemd-sysv: an absolute link, which under a prefix points out of the tree. */
const SYSTEMD: Record<string, Entry> = { 'usr/lib/systemd/systemd': '', 'usr/sbin/init': { link: '/lib/systemd/systemd' } };
const BUSYBOX_APPLETS = (names: string[]): Record<string, Entry> => Object.fromEntries(names.map((n) => [n, { link: '/bin/busybox' }]));

const FIXTURES: Record<string, Record<string, Entry>> = {
  'debian-app': { ...MERGED_USR, 'etc/os-release': OS_RELEASE.debian, 'usr/bin/apt-get': '' },
  'debian-vm': { ...MERGED_USR, ...SYSTEMD, 'etc/os-release': OS_RELEASE.debian, 'boot/vmlinuz-6.1.0-18-amd64': '' },
  'debian-prepared': {
    ...MERGED_USR,
    ...SYSTEMD,
    'etc/os-release': OS_RELEASE.debian,
    'boot/vmlinuz-6.1.0-18-amd64': '',
    'etc/c2v/packages': 'kernel\ninit systemd\nnetwork ifupdown\nvmtools\n# kernel: linux-image-amd64 initramfs-tools\n',
  },
  'debian-vm-sshd': { ...MERGED_USR, ...SYSTEMD, 'etc/os-release': OS_RELEASE.debian, 'boot/vmlinuz-6.1.0-18-amd64': '', 'usr/sbin/sshd': '' },
  'debian-half': {
    ...MERGED_USR,
    'etc/os-release': OS_RELEASE.debian,
    'etc/initramfs-tools/modules': '# List of modules\nvmxnet3\nahci\n',
    'etc/inittab': 'id:2:initdefault:\nT0:23:respawn:/sbin/getty -L ttyS0 9600 vt100\n',
  },
  'ubuntu-app': { ...MERGED_USR, 'etc/os-release': OS_RELEASE.ubuntu },
  'mint-app': { ...MERGED_USR, 'etc/os-release': OS_RELEASE.mint },
  'alpine-app': {
    'etc/os-release': OS_RELEASE.alpine,
    'etc/inittab': '::sysinit:/sbin/openrc sysinit\ntty1::respawn:/sbin/getty 38400 tty1\n',
    'bin/busybox': '',
    'sbin/apk': '',
    ...BUSYBOX_APPLETS(['sbin/ifup', 'sbin/ifdown', 'sbin/udhcpc', 'sbin/init']),
  },
  'alpine-ifupdown-ng': {
    'etc/os-release': OS_RELEASE.alpine,
    'bin/busybox': '',
    'sbin/ifupdown': '',
    'sbin/ifup': { link: 'ifupdown' },
    ...BUSYBOX_APPLETS(['sbin/udhcpc', 'sbin/init']),
  },
  'rocky-app': { ...MERGED_USR, 'etc/os-release': OS_RELEASE.rocky, 'usr/bin/dnf': { link: 'dnf-3' }, 'usr/bin/dnf-3': '' },
  'ubi-minimal-app': { ...MERGED_USR, 'etc/os-release': OS_RELEASE.ubi, 'usr/bin/microdnf': '' },
  'arch-app': { ...MERGED_USR, 'etc/os-release': OS_RELEASE.arch },
  'arch-vm': { ...MERGED_USR, ...SYSTEMD, 'etc/os-release': OS_RELEASE.arch, 'boot/vmlinuz-linux': '' },
  'no-os-release': { ...MERGED_USR },
};

function makeTree(dir: string, files: Record<string, Entry>): void {
  mkdirSync(dir, { recursive: true });
  for (const [rel, entry] of Object.entries(files)) {
    const p = path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    if (typeof entry === 'string') writeFileSync(p, entry);
    else symlinkSync(entry.link, p);
  }
}

/** Every path under a tree with what it is, to tell that a dry run left the tree as it was. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = lstatSync(p);
      out.push(`${path.relative(dir, p)} ${st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : st.isDirectory() ? 'dir' : readFileSync(p, 'utf8')}`);
      if (st.isDirectory() && !st.isSymbolicLink()) walk(p);
    }
  };
  walk(dir);
  return out;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface DryRun extends Run {
  /** stdout's lines, without their `c2v-packages: ` prefix. */
  lines: string[];
  summary: string;
  install?: { pm: string; packages: string[] };
  /** `would write PATH: LINE`, by path. */
  writes: Record<string, string[]>;
  /** `would append to PATH: LINE`, as `PATH: LINE`. */
  appends: string[];
  /** `would install SOURCE as TARGET`, as `SOURCE -> TARGET`. */
  copies: string[];
  /** `would run: COMMAND`. */
  runs: string[];
  record: string[];
}

function parseDryRun(r: Run): DryRun {
  const raw = r.stdout.split('\n').filter(Boolean);
  for (const l of raw) expect(l, 'every line of stdout says who wrote it').toMatch(/^c2v-packages: /);
  const lines = raw.map((l) => l.slice('c2v-packages: '.length));
  const writes: Record<string, string[]> = {};
  const appends: string[] = [];
  const copies: string[] = [];
  const runs: string[] = [];
  let install: DryRun['install'];
  for (const l of lines) {
    let m: RegExpExecArray | null;
    if ((m = /^dry run: would install with (\S+): (.*)$/.exec(l))) install = { pm: m[1], packages: m[2].split(' ') };
    else if ((m = /^dry run: would write (\S+): (.*)$/.exec(l))) (writes[m[1]] ??= []).push(m[2]);
    else if ((m = /^dry run: would append to (\S+: .*)$/.exec(l))) appends.push(m[1]);
    else if ((m = /^dry run: would install (\S+) as (\S+)$/.exec(l))) copies.push(`${m[1]} -> ${m[2]}`);
    else if ((m = /^dry run: would run: (.*)$/.exec(l))) runs.push(m[1]);
    else expect(l, 'a dry run does nothing but say what it would do').not.toMatch(/^(installing|dry run)/);
  }
  const summary = lines.find((l) => /: (adding .*|nothing to add)$/.test(l)) ?? '';
  return { ...r, lines, summary, install, writes, appends, copies, runs, record: writes['/etc/c2v/packages'] ?? [] };
}

const INITRAMFS_MODULES = ['vmw_pvscsi', 'vmxnet3', 'mptspi', 'mptsas', 'ahci', 'virtio_pci', 'virtio_blk', 'virtio_scsi', 'virtio_net'];

const SHELLS: { name: string; argv: string[]; available: boolean }[] = [
  { name: 'sh', argv: ['sh'], available: true },
  { name: 'busybox sh', argv: ['busybox', 'sh'], available: busybox },
];

let work: string;
beforeAll(() => {
  work = mkdtempSync(path.join(os.tmpdir(), 'c2v-packages-'));
  for (const [name, files] of Object.entries(FIXTURES)) makeTree(path.join(work, name), files);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!shellcheck)('c2v-packages.sh passes shellcheck (needs the shellcheck binary: apt-get install shellcheck)', () => {
  it('as POSIX sh, with no check disabled but the justified ones', () => {
    const r = spawnSync('shellcheck', ['-s', 'sh', SCRIPT], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
    const disables = readFileSync(SCRIPT, 'utf8').split('\n').filter((l) => /shellcheck disable=/.test(l));
    for (const l of disables) expect(l, 'each disabled check says why').toMatch(/disable=SC\d+(,SC\d+)* # \S/);
  });
});

for (const shell of SHELLS) {
  describe.skipIf(!shell.available)(`dry runs under ${shell.name}${shell.available ? '' : ' (skipped: busybox is not installed; apt-get install busybox)'}`, () => {
    function dryRun(fixture: string, env: Record<string, string> = {}): DryRun {
      const root = path.join(work, fixture);
      const before = snapshot(root);
      const r = spawnSync(shell.argv[0], [...shell.argv.slice(1), SCRIPT], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', C2V_ROOT: root, C2V_DRY_RUN: '1', ...env },
      });
      expect(snapshot(root), 'a dry run writes nothing').toEqual(before);
      return parseDryRun({ status: r.status, stdout: r.stdout, stderr: r.stderr });
    }

    /** A failure: non-zero, and one line on stderr that says who wrote it. */
    function failure(fixture: string, env: Record<string, string> = {}): string {
      const r = dryRun(fixture, env);
      expect(r.status).not.toBe(0);
      expect(r.record).toEqual([]);
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^c2v-packages: /);
      return lines[0];
    }

    it('Debian app image: kernel, systemd, ifupdown and VMware tools, with the initramfs drivers listed first', () => {
      const r = dryRun('debian-app');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.lines).toEqual(
        expect.arrayContaining([
          'Debian GNU/Linux 12 (bookworm): family debian',
          'kernel: missing',
          'init: systemd wanted (C2V_INIT=auto), the image has none',
          'network: ifupdown missing',
          'vmtools: missing',
          'ssh: not asked for',
        ]),
      );
      expect(r.summary).toBe('debian 12: adding kernel, init systemd, network ifupdown, vmtools, grow');
      expect(r.install).toEqual({
        pm: 'apt-get',
        packages: ['linux-image-amd64', 'initramfs-tools', 'systemd', 'systemd-sysv', 'udev', 'dbus', 'ifupdown', 'isc-dhcp-client', 'iproute2', 'open-vm-tools', 'fdisk', 'e2fsprogs'],
      });
      expect(r.appends).toEqual(INITRAMFS_MODULES.map((m) => `/etc/initramfs-tools/modules: ${m}`));
      const order = (prefix: string) => r.lines.findIndex((l) => l.startsWith(prefix));
      expect(order('dry run: would append to /etc/initramfs-tools/modules')).toBeLessThan(order('dry run: would install with'));
      expect(r.copies).toEqual(['/tmp/c2v/interfaces -> /etc/network/interfaces']);
      // No serial getty of its own: systemd's generator starts one for console=ttyS0, where that port exists.
      expect(r.runs).toEqual(['systemctl enable open-vm-tools.service (or vmtoolsd.service)']);
      expect(r.record).toEqual([
        'kernel',
        'init systemd',
        'network ifupdown',
        'vmtools',
        'grow',
        '# kernel: linux-image-amd64 initramfs-tools',
        '# init systemd: systemd systemd-sysv udev dbus',
        '# network ifupdown: ifupdown isc-dhcp-client iproute2',
        '# vmtools: open-vm-tools',
        '# grow: fdisk e2fsprogs',
      ]);
    });

    it('Debian with C2V_INIT=openrc: OpenRC on sysvinit, the networking service at boot and an agetty in inittab', () => {
      const r = dryRun('debian-app', { C2V_INIT: 'openrc', C2V_SSH: '1' });
      expect(r.status).toBe(0);
      expect(r.summary).toBe('debian 12: adding kernel, init openrc, network ifupdown, vmtools, grow, ssh');
      expect(r.install?.packages).toEqual([
        'linux-image-amd64', 'initramfs-tools', 'openrc', 'sysvinit-core', 'udev', 'ifupdown', 'isc-dhcp-client', 'iproute2', 'open-vm-tools', 'fdisk', 'e2fsprogs', 'openssh-server',
      ]);
      expect(r.appends).toContain(`/etc/inittab: T0:2345:respawn:${SERIAL_GETTY} /sbin/agetty -L 115200 ttyS0 vt100`);
      // sysvinit keeps 127 characters of a command (struct _child_'s process[128]); a longer one is cut short.
      for (const l of r.appends.filter((x) => x.startsWith('/etc/inittab: '))) expect(l.split(':').slice(4).join(':').length).toBeLessThanOrEqual(127);
      expect(r.writes[SERIAL_GETTY]?.join('\n')).toMatch(/sys\/class\/tty\/ttyS0\/type[\s\S]*exec "\$@"/);
      expect(r.runs).toEqual(['rc-update add networking boot', 'rc-update add open-vm-tools default', 'rc-update add sshd (or ssh) default']);
      expect(r.record.slice(0, 6)).toEqual(['kernel', 'init openrc', 'network ifupdown', 'vmtools', 'grow', 'ssh']);
    });

    it('C2V_CLOUD_INIT=1: cloud-init with its datasources, and an interfaces file that leaves the NICs to it', () => {
      const r = dryRun('debian-app', { C2V_CLOUD_INIT: '1' });
      expect(r.status).toBe(0);
      expect(r.summary).toBe('debian 12: adding kernel, init systemd, network ifupdown, vmtools, grow, cloud-init');
      expect(r.install?.packages.slice(-2)).toEqual(['cloud-init', 'cloud-guest-utils']);
      expect(r.writes['/etc/cloud/cloud.cfg.d/90-c2v-datasources.cfg']).toContain('datasource_list: [ OVF, VMware, NoCloud, None ]');
      expect(r.writes['/etc/network/interfaces']).toContain('source /etc/network/interfaces.d/*');
      expect(r.copies).toEqual([]);
      const vm = dryRun('debian-vm', { C2V_CLOUD_INIT: '1' });
      expect(vm.summary).toBe('debian 12: adding cloud-init');
    });

    it('C2V_SECURE_BOOT=1: the signed shim and GRUB for Debian, with nothing else on an image that boots; refused for Alpine', () => {
      const vm = dryRun('debian-vm', { C2V_SECURE_BOOT: '1' });
      expect(vm.status).toBe(0);
      expect(vm.lines).toContain('secureboot: signed shim or GRUB missing');
      expect(vm.summary).toBe('debian 12: adding secureboot');
      expect(vm.install).toEqual({ pm: 'apt-get', packages: ['shim-signed', 'grub-efi-amd64-signed'] });
      expect(vm.record[0]).toBe('secureboot');
      const app = dryRun('debian-app', { C2V_SECURE_BOOT: '1' });
      expect(app.summary).toBe('debian 12: adding kernel, init systemd, network ifupdown, vmtools, grow, secureboot');
      expect(failure('alpine-app', { C2V_SECURE_BOOT: '1' })).toMatch(/^c2v-packages: C2V_SECURE_BOOT=1: Alpine Linux v3\.20 packages no Microsoft-signed shim c2v knows; c2v takes it from Debian and Ubuntu$/);
      expect(failure('debian-vm', { C2V_SECURE_BOOT: 'yes' })).toMatch(/C2V_SECURE_BOOT must be 0 or 1, not 'yes'/);
    });

    it('C2V_NETBOOT=1: busybox (whose package makes the initramfs again); refused where initramfs-tools is not', () => {
      const vm = dryRun('debian-vm', { C2V_NETBOOT: '1' });
      expect(vm.summary).toBe('debian 12: adding netboot');
      expect(vm.install).toEqual({ pm: 'apt-get', packages: ['busybox'] });
      expect(vm.record[0]).toBe('netboot');
      expect(failure('alpine-app', { C2V_NETBOOT: '1' })).toMatch(/C2V_NETBOOT=1: c2v's network boot step runs in initramfs-tools \(Debian, Ubuntu\), and Alpine Linux v3\.\d+ boots with another initramfs/);
      expect(failure('debian-vm', { C2V_NETBOOT: 'yes' })).toMatch(/C2V_NETBOOT must be 0 or 1, not 'yes'/);
    });

    it('C2V_GUEST_AGENT=1: qemu-guest-agent, left to udev under systemd and added to the default runlevel under OpenRC', () => {
      const vm = dryRun('debian-vm', { C2V_GUEST_AGENT: '1' });
      expect(vm.status).toBe(0);
      expect(vm.summary).toBe('debian 12: adding guest-agent');
      expect(vm.install).toEqual({ pm: 'apt-get', packages: ['qemu-guest-agent'] });
      expect(vm.runs).toEqual([]);
      expect(vm.record[0]).toBe('guest-agent');
      const alpine = dryRun('alpine-app', { C2V_GUEST_AGENT: '1' });
      expect(alpine.install?.packages.at(-1)).toBe('qemu-guest-agent');
      expect(alpine.runs).toContain('rc-update add qemu-guest-agent (or qemu-ga) default');
      expect(failure('debian-vm', { C2V_GUEST_AGENT: '2' })).toMatch(/C2V_GUEST_AGENT must be 0 or 1, not '2'/);
    });

    it('an image with a kernel and systemd gets nothing, and a record that says so', () => {
      const r = dryRun('debian-vm');
      expect(r.status).toBe(0);
      expect(r.lines).toEqual(expect.arrayContaining(['kernel: present', 'init: systemd present', 'network, vmtools, grow: left as they are (the image has a kernel and an init)']));
      expect(r.summary).toBe('debian 12: nothing to add');
      expect(r.install).toBeUndefined();
      expect([...r.appends, ...r.copies, ...r.runs]).toEqual([]);
      expect(Object.keys(r.writes)).toEqual(['/etc/c2v/packages']);
      expect(r.record).toEqual(['# nothing added: the image had what c2v-packages looks for']);
    });

    it('C2V_SSH=1 on an image with a kernel and systemd but no sshd adds only ssh; with sshd, nothing', () => {
      const r = dryRun('debian-vm', { C2V_SSH: '1' });
      expect(r.status).toBe(0);
      expect(r.summary).toBe('debian 12: adding ssh');
      expect(r.install).toEqual({ pm: 'apt-get', packages: ['openssh-server'] });
      expect(r.runs).toEqual(['systemctl enable ssh.service (or sshd.service)']);
      expect([...r.appends, ...r.copies]).toEqual([]);
      expect(r.record).toEqual(['ssh', '# ssh: openssh-server']);

      const present = dryRun('debian-vm-sshd', { C2V_SSH: '1' });
      expect(present.lines).toContain('ssh: sshd present');
      expect(present.install).toBeUndefined();
      expect(present.record).toEqual(['# nothing added: the image had what c2v-packages looks for']);
    });

    it('adds to the record of an earlier pass instead of replacing it: c2v still needs its "network ifupdown"', () => {
      const r = dryRun('debian-prepared', { C2V_SSH: '1' });
      expect(r.status).toBe(0);
      expect(r.summary).toBe('debian 12: adding ssh');
      expect(r.record).toEqual(['kernel', 'init systemd', 'network ifupdown', 'vmtools', 'ssh', '# kernel: linux-image-amd64 initramfs-tools', '# ssh: openssh-server']);
      expect(dryRun('debian-prepared').record).toEqual(['kernel', 'init systemd', 'network ifupdown', 'vmtools', '# kernel: linux-image-amd64 initramfs-tools']);
    });

    it('leaves what is there already: initramfs modules and a ttyS0 getty are not appended twice', () => {
      const r = dryRun('debian-half', { C2V_INIT: 'openrc' });
      expect(r.status).toBe(0);
      expect(r.appends).toEqual(INITRAMFS_MODULES.filter((m) => m !== 'vmxnet3' && m !== 'ahci').map((m) => `/etc/initramfs-tools/modules: ${m}`));
    });

    it('Ubuntu app image: the virtual kernel; a derivative naming ubuntu gets the same', () => {
      for (const [fixture, label] of [['ubuntu-app', 'ubuntu 24.04'], ['mint-app', 'linuxmint 21.3 (ubuntu family)']]) {
        const r = dryRun(fixture);
        expect(r.status).toBe(0);
        expect(r.summary).toBe(`${label}: adding kernel, init systemd, network ifupdown, vmtools, grow`);
        expect(r.install).toEqual({
          pm: 'apt-get',
          packages: ['linux-image-virtual', 'initramfs-tools', 'systemd', 'systemd-sysv', 'udev', 'dbus', 'ifupdown', 'isc-dhcp-client', 'iproute2', 'open-vm-tools', 'fdisk', 'e2fsprogs'],
        });
        expect(r.appends).toEqual(INITRAMFS_MODULES.map((m) => `/etc/initramfs-tools/modules: ${m}`));
        expect(r.copies).toEqual(['/tmp/c2v/interfaces -> /etc/network/interfaces']);
        expect(r.record.slice(0, 4)).toEqual(['kernel', 'init systemd', 'network ifupdown', 'vmtools']);
      }
      expect(failure('ubuntu-app', { C2V_INIT: 'openrc' })).toMatch(/^c2v-packages: C2V_INIT=openrc is not available for Ubuntu 24\.04\.1 LTS: /);
    });

    it("Alpine app image: OpenRC with its sysinit services, ifupdown-ng (busybox's ifup does not count), a busybox getty", () => {
      const r = dryRun('alpine-app', { C2V_SSH: '1' });
      expect(r.status).toBe(0);
      expect(r.lines).toEqual(expect.arrayContaining(['Alpine Linux v3.20: family alpine', 'init: openrc wanted (C2V_INIT=auto), the image has none', 'network: ifupdown missing']));
      expect(r.summary).toBe('alpine 3.20.3: adding kernel, init openrc, network ifupdown, vmtools, grow, ssh');
      expect(r.install).toEqual({
        pm: 'apk',
        packages: [
          'linux-virt', 'mkinitfs', 'e2fsprogs', 'openrc', 'busybox-openrc', 'busybox-mdev-openrc', 'ifupdown-ng',
          'open-vm-tools', 'open-vm-tools-openrc', 'sfdisk', 'partx', 'e2fsprogs-extra', 'openssh-server', 'openssh-server-openrc',
        ],
      });
      expect(r.writes['/etc/mkinitfs/mkinitfs.conf']).toEqual(['features="ata base ext4 scsi virtio"']);
      expect(r.lines.indexOf('dry run: would write /etc/mkinitfs/mkinitfs.conf: features="ata base ext4 scsi virtio"')).toBeLessThan(
        r.lines.findIndex((l) => l.startsWith('dry run: would install with')),
      );
      expect(r.copies).toEqual(['/tmp/c2v/interfaces -> /etc/network/interfaces']);
      expect(r.appends).toEqual([`/etc/inittab: ttyS0::respawn:${SERIAL_GETTY} /sbin/getty -L 115200 ttyS0 vt100`]);
      expect(r.runs).toEqual([
        'rc-update add networking boot',
        'rc-update add devfs sysinit',
        'rc-update add mdev sysinit',
        'rc-update add hwdrivers sysinit',
        'rc-update add open-vm-tools default',
        'rc-update add sshd (or ssh) default',
      ]);
      expect(r.record).toEqual([
        'kernel',
        'init openrc',
        'network ifupdown',
        'vmtools',
        'grow',
        'ssh',
        '# kernel: linux-virt mkinitfs e2fsprogs',
        '# init openrc: openrc busybox-openrc busybox-mdev-openrc',
        '# network ifupdown: ifupdown-ng',
        '# vmtools: open-vm-tools open-vm-tools-openrc',
        '# grow: sfdisk partx e2fsprogs-extra',
        '# ssh: openssh-server openssh-server-openrc',
      ]);
      expect(failure('alpine-app', { C2V_INIT: 'systemd' })).toMatch(/^c2v-packages: C2V_INIT=systemd is not available for Alpine Linux v3\.20: /);
    });

    it('Alpine app image that has ifupdown-ng and udhcpc keeps its networking: no package, no interfaces file', () => {
      const r = dryRun('alpine-ifupdown-ng');
      expect(r.status).toBe(0);
      expect(r.lines).toContain('network: present');
      expect(r.summary).toBe('alpine 3.20.3: adding kernel, init openrc, vmtools, grow');
      expect(r.install?.packages).not.toContain('ifupdown-ng');
      expect(r.copies).toEqual([]);
      expect(r.runs).not.toContain('rc-update add networking boot');
    });

    it('Rocky app image: dnf, NetworkManager, a dracut config before the kernel and the initramfs made again after', () => {
      const r = dryRun('rocky-app');
      expect(r.status).toBe(0);
      expect(r.lines).toContain('Rocky Linux 9.3 (Blue Onyx): family rhel');
      expect(r.summary).toBe('rocky 9.3 (rhel family): adding kernel, init systemd, network networkmanager, vmtools, grow');
      expect(r.install).toEqual({ pm: 'dnf', packages: ['kernel-core', 'dracut', 'systemd', 'NetworkManager', 'open-vm-tools', 'util-linux', 'e2fsprogs'] });
      expect(r.writes['/etc/dracut.conf.d/c2v.conf']).toEqual(['hostonly="no"', 'add_drivers+=" vmw_pvscsi vmxnet3 mptspi ahci virtio_blk virtio_scsi virtio_net "']);
      expect(r.copies).toEqual([]);
      expect(r.appends).toEqual([]);
      expect(r.runs).toEqual([
        'dracut -f /boot/initramfs-VERSION.img VERSION, for each kernel VERSION in /lib/modules',
        'systemctl enable NetworkManager.service',
          'systemctl enable open-vm-tools.service (or vmtoolsd.service)',
      ]);
      expect(r.record.slice(0, 4)).toEqual(['kernel', 'init systemd', 'network networkmanager', 'vmtools']);
      expect(r.record).toContain('# network networkmanager: NetworkManager');

      const ubi = dryRun('ubi-minimal-app');
      expect(ubi.summary).toBe('rhel 9.4: adding kernel, init systemd, network networkmanager, vmtools, grow');
      expect(ubi.install?.pm).toBe('microdnf');
    });

    it('C2V_INIT=openrc on Rocky fails with one line', () => {
      expect(failure('rocky-app', { C2V_INIT: 'openrc' })).toBe(
        'c2v-packages: C2V_INIT=openrc is not available for Rocky Linux 9.3 (Blue Onyx): OpenRC is packaged for Debian and Alpine only; use systemd or auto',
      );
    });

    it('an unknown distribution fails with one line naming it, unless it lacks nothing', () => {
      expect(failure('arch-app')).toBe(
        'c2v-packages: cannot add a kernel, an init to Arch Linux: c2v supports Debian, Ubuntu, Alpine and RHEL-likes; add them to the image yourself',
      );
      expect(failure('arch-vm', { C2V_SSH: '1' })).toMatch(/^c2v-packages: cannot add sshd to Arch Linux: c2v supports Debian, Ubuntu, Alpine and RHEL-likes;/);
      const vm = dryRun('arch-vm');
      expect(vm.status).toBe(0);
      expect(vm.lines).toContain('Arch Linux: family unknown to c2v');
      expect(vm.summary).toBe('arch: nothing to add');
      expect(vm.record).toEqual(['# nothing added: the image had what c2v-packages looks for']);
      expect(failure('no-os-release')).toMatch(/^c2v-packages: no \/etc\/os-release, .*c2v supports Debian, Ubuntu, Alpine and RHEL-likes$/);
    });

    it('refuses bad inputs with one line, and a prefix without a dry run', () => {
      expect(failure('debian-app', { C2V_INIT: 'sysv' })).toBe("c2v-packages: C2V_INIT must be auto, systemd or openrc, not 'sysv'");
      expect(failure('debian-app', { C2V_SSH: 'yes' })).toBe("c2v-packages: C2V_SSH must be 0 or 1, not 'yes'");
      expect(failure('debian-app', { C2V_DRY_RUN: '0' })).toBe('c2v-packages: C2V_ROOT is only for dry runs (C2V_DRY_RUN=1)');
    });
  });
}

/**
 * Real runs, not dry ones: the script as the build runs it, at / of a chroot under busybox ash, with stubs for the
 * package managers (laying down what each package would bring), systemctl, rc-update and dracut. What this proves
 * is the doing: files written, services enabled, the record, and that a second run adds nothing.
 */
const STUB = `#!/bin/sh
# One stub for apt-get, apk, dnf, systemctl, rc-update, dracut: logs, then does what the tests look for.
me=\${0##*/}
echo "$me $*" >> /stub/log
case $me in
  systemctl)
    [ "$1" = enable ] || exit 0
    unit=$2 template=$(echo "$2" | sed 's/@.*\\.service$/@.service/')
    for d in /lib/systemd/system /usr/lib/systemd/system; do
      if [ -e "$d/$unit" ] || [ -e "$d/$template" ]; then mkdir -p /etc/systemd/enabled && : > "/etc/systemd/enabled/$unit" && exit 0; fi
    done
    echo "Failed to enable unit: Unit file $unit does not exist." >&2
    exit 1 ;;
  rc-update)
    mkdir -p "/etc/runlevels/$3" && ln -s "/etc/init.d/$2" "/etc/runlevels/$3/$2" ;;
  dracut)
    : > "$2" ;;
  install)
    cp "$3" "$4" && chmod "$2" "$4" ;;
  *)
    [ -e /usr/sbin/policy-rc.d ] && echo "policy-rc.d: $(cat /usr/sbin/policy-rc.d | tail -n 1)" >> /stub/log
    for p in "$@"; do
      grep "^$p " /stub/manifest | while read -r _ file target; do
        mkdir -p "\${file%/*}"
        if [ -n "$target" ]; then ln -sf "$target" "$file"; else : > "$file"; fi
      done
    done ;;
esac
`;

const MANIFESTS: Record<string, string> = {
  alpine: `linux-virt /boot/vmlinuz-virt
openrc /sbin/openrc
openrc /etc/init.d/networking
busybox-openrc /etc/init.d/devfs
busybox-openrc /etc/init.d/hwdrivers
busybox-mdev-openrc /etc/init.d/mdev
ifupdown-ng /sbin/ifupdown
ifupdown-ng /sbin/ifup ifupdown
open-vm-tools /usr/bin/vmtoolsd
open-vm-tools-openrc /etc/init.d/open-vm-tools
sfdisk /sbin/sfdisk
partx /usr/bin/partx
e2fsprogs-extra /usr/sbin/resize2fs
openssh-server /usr/sbin/sshd
openssh-server-openrc /etc/init.d/sshd
`,
  debian: `linux-image-amd64 /boot/vmlinuz-6.1.0-18-amd64
systemd /lib/systemd/systemd
systemd /lib/systemd/system/serial-getty@.service
systemd /usr/bin/systemctl /stub/stub
systemd-sysv /sbin/init /lib/systemd/systemd
ifupdown /sbin/ifup
isc-dhcp-client /sbin/dhclient
open-vm-tools /usr/bin/vmtoolsd
open-vm-tools /lib/systemd/system/open-vm-tools.service
fdisk /sbin/sfdisk
e2fsprogs /sbin/resize2fs
openssh-server /usr/sbin/sshd
openssh-server /lib/systemd/system/ssh.service
`,
  rocky: `kernel-core /lib/modules/5.14.0-362.8.1.el9_3.x86_64/vmlinuz
systemd /usr/lib/systemd/systemd
systemd /usr/lib/systemd/system/serial-getty@.service
systemd /usr/bin/systemctl /stub/stub
systemd /sbin/init /usr/lib/systemd/systemd
NetworkManager /usr/sbin/NetworkManager
NetworkManager /usr/lib/systemd/system/NetworkManager.service
open-vm-tools /usr/bin/vmtoolsd
open-vm-tools /usr/lib/systemd/system/vmtoolsd.service
util-linux /usr/sbin/sfdisk
util-linux /usr/bin/partx
e2fsprogs /usr/sbin/resize2fs
openssh-server /usr/sbin/sshd
openssh-server /usr/lib/systemd/system/sshd.service
`,
};

/** busybox and the libraries it loads, to copy into each chroot; or why no chroot can be had here. */
function chrootSupport(): { why?: string; files: string[] } {
  if (!busybox) return { why: 'busybox is not installed (apt-get install busybox)', files: [] };
  if (!has('unshare', ['-rm', 'true'])) return { why: 'unshare -rm (a user and mount namespace) is not allowed here', files: [] };
  const bin = execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim();
  const ldd = spawnSync('ldd', [bin], { encoding: 'utf8' });
  const libs = ldd.status === 0 ? [...ldd.stdout.matchAll(/(\/\S+)/g)].map((m) => m[1]) : [];
  return { files: [bin, ...libs] };
}
const chroot = chrootSupport();

describe.skipIf(chroot.why !== undefined)(`real runs in a chroot with stub package managers, under busybox ash${chroot.why ? ` (skipped: ${chroot.why})` : ''}`, () => {
  const APPLETS = ['sh', 'sed', 'tail', 'tr', 'grep', 'mkdir', 'chmod', 'cp', 'rm', 'readlink', 'cat', 'ln'];

  function makeChroot(name: string, osRelease: string, manifest: string, extra: Record<string, Entry> = {}): string {
    const root = path.join(work, `chroot-${name}`);
    makeTree(root, { 'etc/os-release': osRelease, 'stub/manifest': manifest, 'stub/stub': STUB, 'tmp/c2v/interfaces': 'auto lo\niface lo inet loopback\n', 'dev/null': '', ...extra });
    copyFileSync(SCRIPT, path.join(root, 'tmp/c2v/c2v-packages.sh'));
    const [bin, ...libs] = chroot.files;
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    copyFileSync(bin, path.join(root, 'bin/busybox'));
    chmodSync(path.join(root, 'bin/busybox'), 0o755);
    for (const lib of libs) {
      mkdirSync(path.join(root, path.dirname(lib)), { recursive: true });
      copyFileSync(lib, path.join(root, lib));
    }
    for (const a of APPLETS) if (!existsSync(path.join(root, 'bin', a))) symlinkSync('busybox', path.join(root, 'bin', a));
    chmodSync(path.join(root, 'stub/stub'), 0o755);
    for (const tool of ['usr/bin/apt-get', 'sbin/apk', 'usr/bin/dnf', 'sbin/rc-update', 'usr/bin/dracut', 'usr/bin/install']) {
      mkdirSync(path.dirname(path.join(root, tool)), { recursive: true });
      symlinkSync('/stub/stub', path.join(root, tool));
    }
    return root;
  }

  function realRun(root: string, env: Record<string, string> = {}): Run {
    // The script's own PATH finds the stubs; /dev/null is the one device it needs.
    const inner = `mount --bind /dev/null "$1/dev/null" && exec chroot "$1" /bin/sh /tmp/c2v/c2v-packages.sh`;
    const r = spawnSync('unshare', ['-rm', 'sh', '-c', inner, 'sh', root], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  const read = (root: string, p: string) => readFileSync(path.join(root, p), 'utf8');
  const log = (root: string) => read(root, 'stub/log').split('\n').filter(Boolean);

  it('Alpine: installs, sets up OpenRC and records; a second run adds nothing and leaves set-up and record as they were', () => {
    const root = makeChroot('alpine', OS_RELEASE.alpine, MANIFESTS.alpine, {
      'etc/inittab': '::sysinit:/sbin/openrc sysinit\n',
      'sbin/ifup': { link: '/bin/busybox' },
      'sbin/udhcpc': { link: '/bin/busybox' },
    });
    const r = realRun(root, { C2V_SSH: '1' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('c2v-packages: alpine 3.20.3: adding kernel, init openrc, network ifupdown, vmtools, grow, ssh\n');
    expect(log(root)).toEqual([
      'apk add --no-cache linux-virt mkinitfs e2fsprogs openrc busybox-openrc busybox-mdev-openrc ifupdown-ng open-vm-tools open-vm-tools-openrc sfdisk partx e2fsprogs-extra openssh-server openssh-server-openrc',
      'rc-update add networking boot',
      'rc-update add devfs sysinit',
      'rc-update add mdev sysinit',
      'rc-update add hwdrivers sysinit',
      'rc-update add open-vm-tools default',
      'rc-update add sshd default',
    ]);
    expect(read(root, 'etc/mkinitfs/mkinitfs.conf')).toBe('features="ata base ext4 scsi virtio"\n');
    expect(read(root, 'etc/network/interfaces')).toBe('auto lo\niface lo inet loopback\n');
    expect(lstatSync(path.join(root, 'etc/network/interfaces')).mode & 0o777).toBe(0o644);
    expect(read(root, 'etc/inittab')).toBe(`::sysinit:/sbin/openrc sysinit\nttyS0::respawn:${SERIAL_GETTY} /sbin/getty -L 115200 ttyS0 vt100\n`);
    const record = read(root, 'etc/c2v/packages');
    expect(record.split('\n').slice(0, 6)).toEqual(['kernel', 'init openrc', 'network ifupdown', 'vmtools', 'grow', 'ssh']);
    expect(record.endsWith('# ssh: openssh-server openssh-server-openrc\n')).toBe(true);

    const inittab = read(root, 'etc/inittab');
    const again = realRun(root, { C2V_SSH: '1' });
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('c2v-packages: alpine 3.20.3: nothing to add\n');
    expect(log(root)).toHaveLength(7);
    expect(read(root, 'etc/inittab')).toBe(inittab);
    expect(read(root, 'etc/c2v/packages')).toBe(record);
  });

  it('Debian: apt-get with services held back by policy-rc.d while it runs, then systemd units enabled', () => {
    const root = makeChroot('debian', OS_RELEASE.debian, MANIFESTS.debian, { 'usr/sbin/.keep': '' });
    const r = realRun(root, { C2V_SSH: '1' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(log(root)).toEqual([
      'apt-get update',
      'policy-rc.d: exit 101',
      'apt-get install -y --no-install-recommends linux-image-amd64 initramfs-tools systemd systemd-sysv udev dbus ifupdown isc-dhcp-client iproute2 open-vm-tools fdisk e2fsprogs openssh-server',
      'policy-rc.d: exit 101',
      'apt-get clean',
      'policy-rc.d: exit 101',
      'systemctl enable open-vm-tools.service',
      'systemctl enable ssh.service',
    ]);
    expect(existsSync(path.join(root, 'usr/sbin/policy-rc.d'))).toBe(false);
    expect(read(root, 'etc/initramfs-tools/modules')).toBe(INITRAMFS_MODULES.join('\n') + '\n');
    expect(read(root, 'etc/network/interfaces')).toBe('auto lo\niface lo inet loopback\n');
    expect(readdirSync(path.join(root, 'etc/systemd/enabled')).sort()).toEqual(['open-vm-tools.service', 'ssh.service']);
    expect(read(root, 'etc/c2v/packages').split('\n').slice(0, 6)).toEqual(['kernel', 'init systemd', 'network ifupdown', 'vmtools', 'grow', 'ssh']);
  });

  it('Rocky: the kernel put in /boot, its initramfs made again, and the unit names RHEL uses', () => {
    const root = makeChroot('rocky', OS_RELEASE.rocky, MANIFESTS.rocky, { 'boot/.keep': '' });
    const r = realRun(root, { C2V_SSH: '1' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const v = '5.14.0-362.8.1.el9_3.x86_64';
    expect(log(root)).toEqual([
      'dnf install -y kernel-core dracut systemd NetworkManager open-vm-tools util-linux e2fsprogs openssh-server',
      'dnf clean all',
      `install -m 0755 /lib/modules/${v}/vmlinuz /boot/vmlinuz-${v}`,
      `dracut -f /boot/initramfs-${v}.img ${v}`,
      'systemctl enable NetworkManager.service',
      'systemctl enable open-vm-tools.service',
      'systemctl enable vmtoolsd.service',
      'systemctl enable ssh.service',
      'systemctl enable sshd.service',
    ]);
    expect(existsSync(path.join(root, `boot/vmlinuz-${v}`))).toBe(true);
    expect(existsSync(path.join(root, `boot/initramfs-${v}.img`))).toBe(true);
    expect(read(root, 'etc/dracut.conf.d/c2v.conf')).toBe('hostonly="no"\nadd_drivers+=" vmw_pvscsi vmxnet3 mptspi ahci virtio_blk virtio_scsi virtio_net "\n');
    expect(existsSync(path.join(root, 'etc/network/interfaces'))).toBe(false);
    expect(read(root, 'etc/c2v/packages').split('\n').slice(0, 6)).toEqual(['kernel', 'init systemd', 'network networkmanager', 'vmtools', 'grow', 'ssh']);
  });

  it('stops before touching the image when a package manager or the interfaces file is missing', () => {
    const root = makeChroot('no-apt', OS_RELEASE.debian, MANIFESTS.debian);
    rmSync(path.join(root, 'usr/bin/apt-get'));
    const r = realRun(root);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^c2v-packages: apt-get is not in the image, so nothing can be installed: add linux-image-amd64 .* yourself\n$/);
    expect(existsSync(path.join(root, 'etc/initramfs-tools'))).toBe(false);
    expect(existsSync(path.join(root, 'etc/c2v'))).toBe(false);

    const bare = makeChroot('no-interfaces', OS_RELEASE.debian, MANIFESTS.debian);
    rmSync(path.join(bare, 'tmp/c2v/interfaces'));
    const r2 = realRun(bare);
    expect(r2.stderr).toBe('c2v-packages: /tmp/c2v/interfaces is missing: the stage copies it from the build context\n');
    expect(existsSync(path.join(bare, 'stub/log'))).toBe(false);
  });
});

describe('the Dockerfile stage', () => {
  const text = () => readFileSync(STAGE, 'utf8');
  const render = (base: string, user: string) =>
    renderTemplate(parseTemplate('packages/Dockerfile', text(), { shell: false }), { base, init: 'auto', ssh: '0', cloudInit: '0', secureBoot: '0', guestAgent: '0', netboot: '0', user })
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));

  it('is a template of exactly base, init, ssh, cloudInit, secureBoot, guestAgent, netboot and user, the values c2v renders it with', () => {
    const names = [...text().matchAll(/\{\{\s*([^!#/\s][^}|]*?)\s*\}\}/g)].map((m) => m[1]);
    expect([...new Set(names)].sort()).toEqual(['base', 'cloudInit', 'guestAgent', 'init', 'netboot', 'secureBoot', 'ssh', 'user']);
  });

  it('builds on C2V_BASE, takes exactly C2V_INIT, C2V_SSH, C2V_CLOUD_INIT, C2V_SECURE_BOOT, C2V_GUEST_AGENT, C2V_NETBOOT and C2V_USER, and copies exactly the script and interfaces', () => {
    const l = render('${C2V_BASE}', '');
    expect(l.slice(0, 2)).toEqual(['ARG C2V_BASE', 'FROM ${C2V_BASE}']);
    expect(l.filter((x) => x.startsWith('ARG ')).map((x) => x.slice(4))).toEqual(['C2V_BASE', 'C2V_INIT=auto', 'C2V_SSH=0', 'C2V_CLOUD_INIT=0', 'C2V_SECURE_BOOT=0', 'C2V_GUEST_AGENT=0', 'C2V_NETBOOT=0', 'C2V_USER=']);
    expect(l.filter((x) => x.startsWith('COPY '))).toEqual([`COPY ${PACKAGES_CONTEXT_DIR}/c2v-packages.sh ${PACKAGES_CONTEXT_DIR}/interfaces /tmp/c2v/`]);
    expect(l.filter((x) => /^FROM /.test(x))).toHaveLength(1);
    expect(render('c2v-app', 'app:staff').filter((x) => /^(FROM|ARG C2V_USER)/.test(x))).toEqual(['FROM c2v-app', 'ARG C2V_USER=app:staff']);
  });

  it('installs as root, before the user arg is declared, and gives the base its own USER back last', () => {
    const l = render('${C2V_BASE}', '');
    const at = (prefix: string) => l.findIndex((x) => x.startsWith(prefix));
    expect(l[at('FROM') + 1]).toBe('USER root');
    expect(at('RUN ')).toBeGreaterThan(at('ARG C2V_NETBOOT'));
    expect(at('RUN ')).toBeLessThan(at('ARG C2V_USER'));
    expect(l[l.length - 1]).toBe('USER ${C2V_USER}');
    expect(JSON.parse(l[at('RUN ')].slice(4))).toEqual(['/bin/sh', '-c', 'sh /tmp/c2v/c2v-packages.sh && rm -rf /tmp/c2v']);
  });

  it('continues no line, so an escape directive in a Dockerfile it is appended to cannot change it', () => {
    for (const x of text().split('\n')) expect(x).not.toMatch(/[\\`]\s*$/);
  });

  it('takes the script into the build context byte for byte (as a template it has no tags)', () => {
    const script = readFileSync(SCRIPT, 'utf8');
    expect(renderTemplate(parseTemplate('packages/c2v-packages.sh', script, { shell: true }), {})).toBe(script);
  });
});
