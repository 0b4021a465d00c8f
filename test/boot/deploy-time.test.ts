import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootUntil, type BootResult, type Firmware } from '../../src/adapters/qemu.js';
import { makeIso } from '../../src/adapters/iso.js';
import { BOOTED, freePort } from '../../src/commands/verify.js';
import { buildOvfEnvironment } from '../../src/formats/ovf-env.js';
import { readOvfHardware } from '../../src/plan/ovf-read.js';
import { PROJECT_ROOT, requireDockerEngine } from '../helpers/env.js';
import { runC2v, strayContainers } from '../helpers/run-cli.js';

/**
 * An app image converted with deploy-time properties, its disk grown as an admin would in vSphere, booted twice
 * with an OVF environment on a CD-ROM (the `iso` transport) holding other values each time: first under BIOS with
 * a static address, then under EFI back on DHCP. SSH and HTTP from the host check what the guest made of them.
 */
const FIXTURE = path.join(PROJECT_ROOT, 'test/fixtures/http-app');
const IMAGE = 'c2v-test/http-app:bookworm';
const MAC = '52:54:00:c2:00:01';
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });

// Values that would do harm if they reached a shell or a config file unquoted.
const HOSTILE_GREETING = `it's "quoted" $(touch /tmp/pwned) \`id\` \\ ../../etc/passwd`;
const TOKEN_ONE = "s3cr3t'one";
const TOKEN_TWO = 'two\nlines $HOME';
const ROOT_PASSWORD = 'c2v-deploy-pw-41';

interface Deployment {
  firmware: Firmware;
  bus: 'pvscsi' | 'ahci';
  hostname: string;
  /** Empty: DHCP, where QEMU's user network hands out 10.0.2.15. */
  ipv4: string;
  greeting: string;
  token: string;
  key: string;
}

describe('deploy-time settings: OVF properties, a static network, a root that grows', () => {
  let dir: string;
  let ova: string;
  let ovf: string;
  let disk: string;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    requireDockerEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-deploy-'));
    execFileSync('docker', ['build', '-q', '--build-arg', 'BASE=debian:bookworm', '-t', IMAGE, FIXTURE], { stdio: ['ignore', 'ignore', 'inherit'] });
    ova = path.join(dir, 'app.ova');
    const conv = await runC2v(
      ['convert', IMAGE, '-o', ova, '--name', 'deployapp', '--ssh', '--property', 'GREETING', '--property', 'API_TOKEN:password', '--property', 'PORT:int=8080', '--property-help', 'GREETING=What the app says', '--json'],
      { cwd: PROJECT_ROOT },
    );
    if (conv.exitCode !== 0) throw new Error(`c2v convert failed (${conv.exitCode}): ${conv.stderr}`);
    const x = path.join(dir, 'x');
    sh('mkdir', ['-p', x]);
    sh('tar', ['-xf', ova, '-C', x]);
    ovf = readFileSync(path.join(x, 'deployapp.ovf'), 'utf8');
    // What an admin does in vSphere when the appliance needs more room: a bigger disk, nothing else.
    disk = path.join(dir, 'disk.qcow2');
    sh('qemu-img', ['convert', '-f', 'vmdk', '-O', 'qcow2', path.join(x, 'deployapp-disk1.vmdk'), disk]);
    sh('qemu-img', ['resize', disk, '+2G']);
    rmSync(x, { recursive: true, force: true });
    for (const k of ['one', 'two']) {
      sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `deploy-${k}`, '-f', path.join(dir, k)]);
      keys[k] = readFileSync(path.join(dir, `${k}.pub`), 'utf8').trim();
    }
  }, 1_800_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the OVF offers the standard and the app properties, with both transports and a CD-ROM drive', () => {
    const props = readOvfHardware(ovf).properties;
    const byKey = Object.fromEntries(props.map((p) => [p.key, p]));
    expect(Object.keys(byKey)).toEqual(
      expect.arrayContaining(['c2v.hostname', 'c2v.ipv4', 'c2v.gateway', 'c2v.dns', 'c2v.search', 'c2v.ntp', 'c2v.ssh_keys', 'c2v.root_password', 'app.GREETING', 'app.API_TOKEN', 'app.PORT', 'app.MOTTO']),
    );
    expect(byKey['app.GREETING'].value).toBe('hello-from-c2v'); // the image's ENV, as the wizard's default
    expect(byKey['app.API_TOKEN'].password).toBe(true);
    expect(byKey['app.PORT']).toMatchObject({ type: 'int', value: '8080' });
    expect(byKey['app.MOTTO']).toMatchObject({ value: 'keep it simple', label: 'Motto' }); // from the image's labels
    expect(byKey['c2v.root_password'].password).toBe(true);
    expect(ovf).toContain('ovf:transport="com.vmware.guestInfo iso"');
    expect(ovf).toMatch(/<rasd:ResourceType>15<\/rasd:ResourceType>/);
  });

  async function deploy(d: Deployment): Promise<{ boot: BootResult; ssh: (cmd: string) => string; http: (p: string) => Promise<string> }> {
    const props = [
      { key: 'c2v.hostname', value: d.hostname },
      { key: 'c2v.ipv4', value: d.ipv4 },
      { key: 'c2v.gateway', value: d.ipv4 ? '10.0.2.2' : '' },
      { key: 'c2v.dns', value: d.ipv4 ? '10.0.2.3, 10.0.2.3' : '' },
      { key: 'c2v.search', value: d.ipv4 ? 'deploy.test' : '' },
      { key: 'c2v.ssh_keys', value: d.key },
      { key: 'c2v.root_password', value: ROOT_PASSWORD },
      { key: 'app.GREETING', value: d.greeting },
      { key: 'app.API_TOKEN', value: d.token },
    ];
    const envDir = path.join(dir, `env-${d.hostname}`);
    sh('mkdir', ['-p', envDir]);
    writeFileSync(path.join(envDir, 'ovf-env.xml'), buildOvfEnvironment({ properties: props, adapters: [{ mac: MAC, network: 'VM Network' }] }));
    const iso = path.join(dir, `${d.hostname}.iso`);
    await makeIso(envDir, iso);
    const guest = d.ipv4 ? d.ipv4.split('/')[0] : '10.0.2.15';
    const sshPort = await freePort();
    const httpPort = await freePort();
    const t0 = Date.now();
    const boot = await bootUntil({
      disk,
      format: 'qcow2',
      snapshot: false, // the second boot starts from what the first one left: the grown root, the old settings
      firmware: d.firmware,
      bus: d.bus,
      nic: 'vmxnet3',
      mac: MAC,
      cdrom: iso,
      forwards: [
        { host: sshPort, guest: 22, guestAddress: guest },
        { host: httpPort, guest: 8080, guestAddress: guest },
      ],
      marker: BOOTED,
      timeoutMs: 600_000,
    });
    process.stderr.write(`deploy-time ${d.firmware} boot: ${boot.seconds.toFixed(1)} s\n`);
    const keyFile = path.join(dir, d.key === keys.one ? 'one' : 'two');
    const ssh = (cmd: string) =>
      sh('ssh', ['-q', '-i', keyFile, '-p', String(sshPort), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=20', 'root@127.0.0.1', cmd]);
    const http = async (p: string) => (await fetch(`http://127.0.0.1:${httpPort}${p}`, { signal: AbortSignal.timeout(10_000) })).text();
    // sshd and the app come up after the boot's marker: give them the rest of the boot's budget.
    const deadline = t0 + 600_000;
    for (;;) {
      try {
        ssh('true');
        await http('/');
        break;
      } catch (e) {
        if (Date.now() > deadline) {
          await boot.stop();
          throw new Error(`the guest did not answer SSH and HTTP: ${(e as Error).message}\n${boot.serial.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
    return { boot, ssh, http };
  }

  it('BIOS boot: static address, host name, key, password hash, the app sees its values, the root grew', async () => {
    const d: Deployment = { firmware: 'bios', bus: 'pvscsi', hostname: 'deploy-one', ipv4: '10.0.2.20/24', greeting: HOSTILE_GREETING, token: TOKEN_ONE, key: keys.one };
    const { boot, ssh, http } = await deploy(d);
    try {
      expect(boot.serial).toContain('asked open-vm-tools'); // the guestinfo transport was tried first
      expect(boot.serial).toMatch(/c2v-grow-root: grew \/dev\/sda3/);
      expect(ssh('hostname').trim()).toBe('deploy-one');
      // QEMU's DHCP would have given 10.0.2.15: .20 can only come from the static configuration.
      expect(ssh('ip -4 -o addr show dev eth0')).toMatch(/inet 10\.0\.2\.20\/24 /);
      expect(ssh('ip route show default')).toMatch(/default via 10\.0\.2\.2 dev eth0/);
      const resolv = ssh('cat /etc/resolv.conf');
      expect(resolv).toMatch(/^nameserver 10\.0\.2\.3$/m);
      expect(resolv).toMatch(/^search deploy\.test$/m);
      // 2 GiB more disk: the root file system grew with it, while mounted.
      const rootBytes = Number(ssh('df -B1 --output=size / | tail -n 1').trim());
      expect(rootBytes).toBeGreaterThan(2 * 2 ** 30);
      // The password as a crypt hash, and its clear text nowhere on the disk.
      expect(ssh("awk -F: '$1==\"root\"{print $2}' /etc/shadow").trim()).toMatch(/^\$[0-9a-z]+\$/);
      expect(ssh(`grep -rlF ${ROOT_PASSWORD} /etc /var /root /usr/local /srv /tmp 2>/dev/null || true`).trim()).toBe('');
      // Host keys made in this VM, not shipped in the OVA.
      expect(ssh('ls /etc/ssh/ssh_host_ed25519_key').trim()).toBe('/etc/ssh/ssh_host_ed25519_key');
      // The app's values, byte for byte, the hostile one included, and nothing executed.
      expect(await http('/')).toBe(`${HOSTILE_GREETING} from /srv as uid 990 on deploy-one\n`); // the image's WORKDIR and USER
      expect(await http('/env/GREETING')).toBe(HOSTILE_GREETING);
      expect(await http('/env/API_TOKEN')).toBe(TOKEN_ONE);
      expect(await http('/env/PORT')).toBe('8080');
      expect(await http('/env/MOTTO')).toBe('keep it simple');
      expect(ssh('ls /tmp/pwned 2>&1 || true')).toMatch(/No such file/);
    } finally {
      await boot.stop();
    }
  }, 900_000);

  it('EFI boot with other values: they are applied again, and an empty address means DHCP again', async () => {
    const d: Deployment = { firmware: 'efi', bus: 'ahci', hostname: 'deploy-two', ipv4: '', greeting: 'second deployment', token: TOKEN_TWO, key: keys.two };
    const { boot, ssh, http } = await deploy(d);
    try {
      expect(ssh('hostname').trim()).toBe('deploy-two');
      expect(ssh('ip -4 -o addr show dev eth0')).toMatch(/inet 10\.0\.2\.15\/24 /);
      // The first deployment's key was replaced, not added to.
      expect(ssh('cat /root/.ssh/authorized_keys')).not.toContain('deploy-one');
      expect(await http('/env/GREETING')).toBe('second deployment');
      expect(await http('/env/API_TOKEN')).toBe(TOKEN_TWO);
      expect(Number(ssh('df -B1 --output=size / | tail -n 1').trim())).toBeGreaterThan(2 * 2 ** 30);
    } finally {
      await boot.stop();
    }
  }, 900_000);

  it('left no container behind', async () => {
    expect(await strayContainers()).toEqual([]);
  });
});
