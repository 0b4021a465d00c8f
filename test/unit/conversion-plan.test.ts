import { describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { convertSchema } from '../../src/config/schema.js';
import { C2vError } from '../../src/errors.js';
import { hostnameOf, planConversion, withLayout, type ConversionRequest } from '../../src/plan/conversion.js';
import { refitLayout } from '../../src/plan/disk-size.js';
import { autoRootBytes } from '../../src/plan/rootfs.js';
import type { ImageInfo } from '../../src/plan/image.js';

const bookworm = { ID: 'debian', VERSION_ID: '12', PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)' };

function image(over: Partial<ImageInfo> = {}): ImageInfo {
  return {
    id: 'sha256:' + 'a'.repeat(64),
    ref: 'app:1.4',
    architecture: 'amd64',
    os: 'linux',
    sizeBytes: 600 * 2 ** 20,
    created: '2024-05-01T12:00:00Z',
    config: { entrypoint: [], cmd: ['/sbin/init'], env: [], workingDir: '', user: '', exposedPorts: ['8080/tcp'], labels: {} },
    ...over,
  };
}

const templates = await loadTemplates();

function request(over: Partial<ConversionRequest> = {}, flags: Record<string, unknown> = {}): ConversionRequest {
  return {
    templates,
    name: 'app',
    output: '/out/app.ova',
    options: convertSchema.parse({ input: 'app:1.4', ...flags }),
    image: image(),
    osRelease: bookworm,
    probe: { osRelease: bookworm, hasKernel: true, init: 'systemd' },
    ...over,
  };
}

/** The layout gives the root what `auto` asks for, plus what the 1 MiB alignment of the disk's end leaves over. */
function expectRootNear(actual: number, wanted: number) {
  expect(actual).toBeGreaterThanOrEqual(wanted);
  expect(actual - wanted).toBeLessThan(2 ** 20);
}

describe('the conversion plan', () => {
  it('for a VM image: no appliance step, and the whole disk planned up front', () => {
    const plan = planConversion(request());
    expect(plan.appliance).toBeUndefined();
    const disk = plan.disk!;
    expect(disk.image.id).toBe(image().id);
    expect(disk.layout.partitions.map((p) => p.role)).toEqual(['bios-boot', 'esp', 'root']);
    expectRootNear(disk.layout.partitions[2].sizeBytes, autoRootBytes(600 * 2 ** 20));
    expect(disk.boot).toEqual({ bios: true, efi: true, kernelCmdline: '' });
    expect(disk.ovf.firmware).toBe('efi');
    expect(disk.ovf.annotation).toContain('Exposed ports: 8080/tcp.');
    expect(disk.vmdk.capacityBytes).toBe(disk.layout.diskBytes);
    expect(disk.layout.diskGuid).toBe(disk.identity.diskGuid.toUpperCase());
    expect(plan.output).toEqual({ format: 'ova', path: '/out/app.ova', ovfName: 'app.ovf', mfName: 'app.mf', diskName: 'app-disk1.vmdk', manifestDigest: 'sha256' });
  });

  it('is the same for the same request, and identities follow the image and the options', () => {
    expect(planConversion(request())).toEqual(planConversion(request()));
    const a = planConversion(request()).disk!.identity;
    expect(planConversion(request({}, { boot: 'bios' })).disk!.identity.rootFsUuid).not.toBe(a.rootFsUuid);
    expect(planConversion(request({ image: image({ id: 'sha256:' + 'b'.repeat(64) }) })).disk!.identity.rootFsUuid).not.toBe(a.rootFsUuid);
    // What does not touch the disk's content does not change its identities.
    expect(planConversion(request({}, { cpus: 4 })).disk!.identity).toEqual(a);
  });

  it('dates the disk from SOURCE_DATE_EPOCH, else from the image, and refuses a malformed epoch', () => {
    expect(planConversion(request()).disk!.epoch).toBe(Date.parse('2024-05-01T12:00:00Z') / 1000);
    expect(planConversion(request({ sourceDateEpoch: '1700000000' })).disk!.epoch).toBe(1700000000);
    expect(() => planConversion(request({ sourceDateEpoch: 'yesterday' }))).toThrow(C2vError);
  });

  it('for an app image: the appliance step first, the disk only once the appliance image exists', () => {
    const app = image({ config: { ...image().config, cmd: ['python3', 'app.py'] } });
    const req = request({ image: app, probe: { osRelease: bookworm, hasKernel: false, init: 'none' } });
    const before = planConversion(req);
    expect(before.appliance).toMatchObject({ family: 'debian', installKernel: true, init: 'systemd', appArgv: ['python3', 'app.py'] });
    expect(before.disk).toBeUndefined();
    const vmImage = image({ id: 'sha256:' + 'c'.repeat(64), ref: 'c2v-appliance/app:latest', sizeBytes: 900 * 2 ** 20 });
    // The packages step's record and init decide the guest files and the kernel command line.
    const vmProbe = { osRelease: bookworm, hasKernel: true, init: 'systemd' as const, hasSshd: false, packages: ['kernel', 'init systemd', 'network ifupdown', 'vmtools'] };
    const after = planConversion({ ...req, vmImage, vmProbe });
    expect(after.disk!.guest.additions.map((a) => a.path)).toContain('/etc/systemd/system/c2v-app.service');
    expect(after.disk!.image.id).toBe(vmImage.id);
    expectRootNear(after.disk!.layout.partitions[2].sizeBytes, autoRootBytes(900 * 2 ** 20));
    expect(after.disk!.boot.kernelCmdline).toBe('net.ifnames=0');
    // The annotation names the image the user gave, not c2v's derived one.
    expect(after.disk!.ovf.annotation).toContain('from app:1.4');
  });

  it("deploy-time properties: the agent's files for the guest's init, the OVF's properties, host keys left out", () => {
    const app = image({ config: { ...image().config, cmd: ['python3', 'app.py'], env: ['GREETING=hi'], user: 'app', labels: { 'c2v.property.MOTTO': 'string=calm', 'org.opencontainers.image.title': 'My app', 'org.opencontainers.image.version': '1.4' } } });
    const probe = { osRelease: bookworm, hasKernel: true, init: 'systemd' as const, hasSshd: true, packages: ['kernel', 'init systemd', 'network ifupdown', 'vmtools'] };
    const disk = planConversion(request({ image: app, probe }, { property: ['GREETING', 'TOKEN:password', 'DEBUG:bool'] })).disk!;
    const paths = disk.guest.additions.map((a) => a.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/usr/local/lib/c2v/c2v-guest',
        '/usr/local/lib/c2v/ovf-env.awk',
        '/usr/local/lib/c2v/grow-root',
        '/etc/c2v/guest.conf',
        '/etc/systemd/system/c2v-guest.service',
        '/etc/systemd/system/sysinit.target.wants/c2v-guest.service',
        '/etc/systemd/journald.conf.d/c2v-serial.conf',
      ]),
    );
    const conf = disk.guest.additions.find((a) => a.path === '/etc/c2v/guest.conf') as { content: string };
    expect(conf.content).toContain(`C2V_APP_OWNER='app'`);
    expect(conf.content).toContain(`C2V_NETWORK='ifupdown'`);
    expect(conf.content).toMatch(/C2V_APP_BOOLEANS="\$C2V_APP_BOOLEANS "'DEBUG'/);
    const wrapper = disk.guest.additions.find((a) => a.path === '/usr/local/lib/c2v/app-run') as { content: string };
    expect(wrapper.content).toContain(`if [ -r '/run/c2v/app.env' ]; then . '/run/c2v/app.env'; fi`);
    expect(new RegExp(disk.guest.leaveOut!).test('etc/ssh/ssh_host_ed25519_key')).toBe(true);
    expect(disk.ovf.properties.map((p) => p.key)).toEqual([
      'c2v.hostname', 'c2v.ipv4', 'c2v.gateway', 'c2v.dns', 'c2v.search', 'c2v.ntp', 'c2v.ssh_keys', 'c2v.root_password', 'app.MOTTO', 'app.GREETING', 'app.TOKEN', 'app.DEBUG',
    ]);
    expect(disk.ovf.product).toEqual({ product: 'My app', vendor: undefined, version: '1.4', productUrl: undefined });
    // OpenRC: the script in the boot runlevel, no systemd files.
    const openrc = planConversion(request({ image: app, probe: { ...probe, init: 'openrc' } }, { property: ['GREETING'] })).disk!;
    expect(openrc.guest.additions.map((a) => a.path)).toEqual(expect.arrayContaining(['/etc/init.d/c2v-guest', '/etc/runlevels/sysinit/c2v-guest']));
    expect(openrc.guest.additions.some((a) => a.path.startsWith('/etc/systemd/'))).toBe(false);
  });

  it('the product the wizard shows: flags over the OCI labels; the description and licenses in the annotation; the EULA', () => {
    const labels = { 'org.opencontainers.image.title': 'Label title', 'org.opencontainers.image.vendor': 'ACME', 'org.opencontainers.image.description': 'Serves greetings.', 'org.opencontainers.image.licenses': 'MIT' };
    const labelled = image({ config: { ...image().config, labels } });
    const fromLabels = planConversion(request({ image: labelled })).disk!.ovf;
    expect(fromLabels.product).toEqual({ product: 'Label title', vendor: 'ACME', version: undefined, productUrl: undefined });
    expect(fromLabels.annotation.split('\n')[0]).toBe('Serves greetings.');
    expect(fromLabels.annotation).toContain('Licenses: MIT.');
    const flagged = planConversion(request({ image: labelled, eula: 'Terms.' }, { product: 'Flag', vendor: 'Us', productVersion: '2.0', productUrl: 'https://example.com' })).disk!.ovf;
    expect(flagged.product).toEqual({ product: 'Flag', vendor: 'Us', version: '2.0', productUrl: 'https://example.com' });
    expect(flagged.eula).toBe('Terms.');
    // Without labels or flags: the VM's name.
    expect(planConversion(request()).disk!.ovf.product.product).toBe('app');
  });

  it('--cloud-init: cloud-init in the packages step and its OVF properties instead of the agent; --property refused with it', () => {
    const app = image({ config: { ...image().config, cmd: ['python3', 'app.py'] } });
    const probe = { osRelease: bookworm, hasKernel: true, init: 'systemd' as const, hasSshd: false, hasCloudInit: false };
    const plan = planConversion(request({ image: app, probe }, { cloudInit: true }));
    expect(plan.appliance).toMatchObject({ cloudInit: true, installKernel: false, buildArgs: { C2V_CLOUD_INIT: '1' } });
    const disk = planConversion(request({ image: app, probe, vmImage: image({ id: 'sha256:' + 'd'.repeat(64) }), vmProbe: { ...probe, hasCloudInit: true } }, { cloudInit: true })).disk!;
    expect(disk.ovf.properties.map((p) => p.key)).toEqual(['instance-id', 'hostname', 'public-keys', 'user-data', 'password', 'seedfrom']);
    expect(disk.guest.additions.some((a) => a.path.includes('c2v-guest'))).toBe(false);
    expect(() => planConversion(request({ image: app, probe: { ...probe, hasCloudInit: true } }, { cloudInit: true, property: ['A'] }))).toThrow(/--cloud-init/);
  });

  it('refuses --property where nothing would read it: no app service, no init the agent runs under', () => {
    const app = image({ config: { ...image().config, cmd: ['python3', 'app.py'] } });
    expect(() => planConversion(request({ image: app }, { property: ['A'], appService: false }))).toThrow(/--property values are handed to the app service/);
    expect(() => planConversion(request({ image: image() }, { property: ['A'] }))).toThrow(/there is none/); // a VM image: its command is an init
    const other = { osRelease: bookworm, hasKernel: true, init: 'other' as const };
    expect(() => planConversion(request({ image: app, probe: other, vmImage: image(), vmProbe: other }, { property: ['A'] }))).toThrow(/systemd or OpenRC/);
  });

  it('refuses, in one line, what cannot be done: a disk too small, a distribution without a template', () => {
    expect(() => planConversion(request({}, { diskSize: '100M' }))).toThrow(/--disk-size 100.0 MiB is too small for this image.*use at least/);
    const unknown = { ID: 'plan9' };
    const e = (() => {
      try {
        planConversion(request({ osRelease: unknown, probe: { osRelease: unknown, hasKernel: false, init: 'none' } }));
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(C2vError);
    expect((e as C2vError).code).toBe('input');
  });

  it('re-laid after measuring, the disk keeps its identities and the VMDK follows the new size', () => {
    const disk = planConversion(request()).disk!;
    const refit = refitLayout({ entries: 400_000, blocks: 400_000 }, 'auto', disk.identity, disk.layout);
    expect(refit.layout.diskBytes).toBeGreaterThan(disk.layout.diskBytes);
    const after = withLayout(disk, refit.layout);
    expect(after.vmdk.capacityBytes).toBe(refit.layout.diskBytes);
    expect(after.identity).toEqual(disk.identity);
    expect(after.layout.diskGuid).toBe(disk.layout.diskGuid);
  });

  it('writes a SHA1 manifest for ESXi 5.5 and 6.0 (vmx-10, vmx-11), SHA256 from 6.5 on, or what --manifest-digest says', () => {
    expect(planConversion(request({}, { hwVersion: 10 })).output.manifestDigest).toBe('sha1');
    expect(planConversion(request({}, { hwVersion: 11 })).output.manifestDigest).toBe('sha1');
    expect(planConversion(request({}, { hwVersion: 13 })).output.manifestDigest).toBe('sha256');
    expect(planConversion(request()).output.manifestDigest).toBe('sha256');
    expect(planConversion(request({}, { hwVersion: 11, manifestDigest: 'sha512' })).output.manifestDigest).toBe('sha512');
  });

  it('refuses a VM the oldest host of its hardware version cannot run', () => {
    expect(() => planConversion(request({}, { cpus: 129 }))).toThrow('--cpus 129 is more than vmx-14 (ESXi 6.7) allows (128): lower --cpus or raise --hw-version');
    expect(planConversion(request({}, { cpus: 129, hwVersion: 15 })).disk!.ovf.cpus).toBe(129);
    expect(() => planConversion(request({}, { cpus: 65, hwVersion: 10 }))).toThrow('--cpus 65 is more than vmx-10 (ESXi 5.5) allows (64)');
    expect(() => planConversion(request({}, { memory: 1011 * 1024 + 1, hwVersion: 10 }))).toThrow(/--memory 1035265 MiB is more than vmx-10 \(ESXi 5\.5\) allows \(1011 GB\)/);
  });

  it('--secure-boot: the signed chain of Debian or Ubuntu, Secure Boot on in the OVF; refused where it cannot be', () => {
    // A VM image without the signed binaries gets them from the packages step; with them, no build.
    const building = planConversion(request({}, { secureBoot: true }));
    expect(building.appliance).toMatchObject({ secureBoot: true, installKernel: false, buildArgs: { C2V_SECURE_BOOT: '1' } });
    expect(building.disk).toBeUndefined();
    const signed = { osRelease: bookworm, hasKernel: true, init: 'systemd' as const, hasSignedBoot: true };
    const disk = planConversion(request({ probe: signed }, { secureBoot: true })).disk!;
    expect(disk.boot.signed).toMatchObject({ configDirs: ['debian', 'BOOT'], packages: 'shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed' });
    expect(disk.ovf.secureBoot).toBe(true);
    const ubuntu = { ID: 'ubuntu', VERSION_ID: '24.04', PRETTY_NAME: 'Ubuntu 24.04 LTS' };
    expect(planConversion(request({ osRelease: ubuntu, probe: { osRelease: ubuntu, hasKernel: true, init: 'systemd', hasSignedBoot: true } }, { secureBoot: true })).disk!.boot.signed?.configDirs).toEqual(['ubuntu', 'BOOT']);
    const alpine = { ID: 'alpine', VERSION_ID: '3.20.3', PRETTY_NAME: 'Alpine Linux v3.20' };
    expect(() => planConversion(request({ osRelease: alpine, probe: { osRelease: alpine, hasKernel: true, init: 'openrc' } }, { secureBoot: true }))).toThrow(
      /--secure-boot needs the distribution's Microsoft-signed shim .* Alpine Linux v3\.20 has none c2v knows/,
    );
    expect(() => planConversion(request({}, { secureBoot: true, boot: 'bios' }))).toThrow('--secure-boot is an EFI feature, and --boot bios installs no EFI boot code: use --boot efi (or hybrid)');
    expect(() => planConversion(request({}, { secureBoot: true, hwVersion: 11 }))).toThrow('--secure-boot needs --hw-version 13 (ESXi 6.5) or later; vmx-11 has no Secure Boot');
    expect(planConversion(request()).disk!.ovf.secureBoot).toBe(false);
  });

  it('--format netboot: busybox from the packages step, the boot files planned, refused before any build where it cannot boot', () => {
    const nb = { format: 'netboot', rootUrl: 'http://boot.lan/app/root.squashfs' };
    const out = { output: '/out/app-netboot' };
    // An image that boots but has no busybox gets it (and only it) from the packages step; then the folder is planned.
    const building = planConversion(request(out, nb));
    expect(building.appliance).toMatchObject({ netboot: true, installKernel: false, installInit: false, buildArgs: { C2V_NETBOOT: '1' } });
    expect(building.output.netboot).toBeUndefined();
    const withBusybox = { osRelease: bookworm, hasKernel: true, init: 'systemd' as const, hasBusybox: true, packages: ['network ifupdown'] };
    const plan = planConversion(request({ ...out, probe: withBusybox }, nb));
    expect(plan.appliance).toBeUndefined();
    expect(plan.output.netboot).toEqual({ folderName: 'app-netboot', cmdline: 'boot=c2v ip=dhcp rw console=ttyS0,115200 console=tty0 net.ifnames=0', rootUrl: 'http://boot.lan/app/root.squashfs' });
    expect(planConversion(request({}, {})).output.netboot).toBeUndefined();
    // Refusals, each before a build.
    const lacking = { ...withBusybox, netbootLacks: [{ version: '6.1.0-9-amd64', lacks: ['squashfs'] }] };
    expect(() => planConversion(request({ probe: lacking }, nb))).toThrow(/--format netboot mounts the root as squashfs under overlay, and the image's kernel 6\.1\.0-9-amd64 has no squashfs support/);
    const alpine = { ID: 'alpine', VERSION_ID: '3.20.3', PRETTY_NAME: 'Alpine Linux v3.20' };
    expect(() => planConversion(request({ osRelease: alpine, probe: { osRelease: alpine, hasKernel: true, init: 'openrc' } }, nb))).toThrow(
      /--format netboot appends its boot step to an initramfs-tools initramfs \(Debian, Ubuntu\), and Alpine Linux v3\.20 boots with another/,
    );
    expect(() => planConversion(request({}, { rootUrl: 'http://x/root.squashfs' }))).toThrow(/--root-url says where a network boot fetches its root image from, and --format ova has none/);
    expect(() => planConversion(request({}, { format: 'netboot', secureBoot: true }))).toThrow(/--format netboot boots through iPXE, which c2v does not sign/);
    expect(() => convertSchema.parse({ input: 'x', format: 'netboot', rootUrl: 'https://boot.lan/root.squashfs' })).toThrow(/--root-url must be an http:\/\/ URL/);
  });

  it('--sign: a .cert member after the manifest, for the OVA and the OVF folder only', () => {
    expect(planConversion(request({}, { sign: 'k.pem', cert: 'c.pem' })).output.certName).toBe('app.cert');
    expect(planConversion(request({}, { sign: 'k.pem', cert: 'c.pem', format: 'ovf' })).output.certName).toBe('app.cert');
    expect(() => planConversion(request({}, { sign: 'k.pem', cert: 'c.pem', format: 'raw' }))).toThrow(/--sign signs an OVF package's manifest, and --format raw has none/);
  });

  it('makes a hostname of the VM name', () => {
    expect(hostnameOf('My_App.v2')).toBe('my-app-v2');
    expect(hostnameOf('---')).toBe('appliance');
    expect(hostnameOf('x'.repeat(80))).toHaveLength(63);
  });
});
