import { describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { moduleLoadOrder, moduleName, netbootLacks, netbootTexts, NetbootPlanError, planNetboot, sha256Sums } from '../../src/plan/netboot.js';

// Lines as a Debian 6.1 kernel's modules.dep has them, and a trixie-like one with compressed modules.
const BOOKWORM_DEP = [
  'kernel/fs/squashfs/squashfs.ko:',
  'kernel/fs/overlayfs/overlay.ko:',
  'kernel/drivers/block/loop.ko:',
  'kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko',
  'kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko',
  'kernel/net/core/failover.ko:',
  'kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko',
  'kernel/fs/fat/fat.ko:',
].join('\n');
const XZ_DEP = ['kernel/fs/squashfs/squashfs.ko.xz: kernel/lib/zstd-helper.ko.xz', 'kernel/lib/zstd-helper.ko.xz:', 'kernel/fs/overlayfs/overlay.ko.xz:'].join('\n');

describe('the network boot plan', () => {
  it('names modules as the kernel does', () => {
    expect(moduleName('kernel/fs/squashfs/squashfs.ko')).toBe('squashfs');
    expect(moduleName('kernel/fs/squashfs/squashfs.ko.xz')).toBe('squashfs');
    expect(moduleName('kernel/drivers/net/net-failover.ko.zst')).toBe('net_failover');
  });

  it('loads each module after what it needs, numbered in that order, and leaves built-in ones out', () => {
    const order = moduleLoadOrder({ version: '6.1.0-50-amd64', dep: BOOKWORM_DEP, builtin: '' }, ['virtio_net', 'squashfs']);
    expect(order.map((m) => m.name)).toEqual(['failover', 'net_failover', 'virtio_net', 'squashfs']);
    expect(order.map((m) => m.archiveName)).toEqual(['010-failover.ko', '020-net_failover.ko', '030-virtio_net.ko', '040-squashfs.ko']);
    expect(order[2].path).toBe('kernel/drivers/net/virtio_net.ko');
    // A shared dependency is loaded once.
    expect(moduleLoadOrder({ version: 'v', dep: BOOKWORM_DEP, builtin: '' }, ['net_failover', 'virtio_net']).map((m) => m.name)).toEqual(['failover', 'net_failover', 'virtio_net']);
    // loop built in (as some kernels have it): no file for it.
    const builtin = moduleLoadOrder({ version: 'v', dep: BOOKWORM_DEP, builtin: 'kernel/drivers/block/loop.ko\n' });
    expect(builtin.map((m) => m.name)).toEqual(['squashfs', 'overlay']);
    // Compressed modules keep their file name; the archive name is plain .ko (the stage unpacks them).
    const xz = moduleLoadOrder({ version: 'v', dep: XZ_DEP, builtin: 'kernel/drivers/block/loop.ko\n' });
    expect(xz.map((m) => [m.path, m.archiveName])).toEqual([
      ['kernel/lib/zstd-helper.ko.xz', '010-zstd_helper.ko'],
      ['kernel/fs/squashfs/squashfs.ko.xz', '020-squashfs.ko'],
      ['kernel/fs/overlayfs/overlay.ko.xz', '030-overlay.ko'],
    ]);
  });

  it('says which of squashfs and overlay a kernel lacks, and refuses to order a missing module', () => {
    expect(netbootLacks({ version: 'v', dep: BOOKWORM_DEP, builtin: '' })).toEqual([]);
    expect(netbootLacks({ version: 'v', dep: 'kernel/fs/overlayfs/overlay.ko:\n', builtin: 'kernel/fs/squashfs/squashfs.ko\n' })).toEqual([]);
    expect(netbootLacks({ version: 'v', dep: 'kernel/drivers/block/loop.ko:\n', builtin: '' })).toEqual(['squashfs', 'overlay']);
    const lacking = () => moduleLoadOrder({ version: '6.1.0-9-amd64', dep: 'kernel/fs/overlayfs/overlay.ko:\n', builtin: '' });
    expect(lacking).toThrow(NetbootPlanError);
    expect(lacking).toThrow(/kernel 6\.1\.0-9-amd64 has no squashfs support \(neither built in nor a module in \/lib\/modules\/6\.1\.0-9-amd64\)/);
    expect(() => moduleLoadOrder({ version: 'v', dep: 'kernel/fs/squashfs/squashfs.ko: kernel/lib/gone.ko\n', builtin: '' }, ['squashfs'])).toThrow(/names kernel\/lib\/gone\.ko .* run depmod v/);
  });

  it('boots with the network up, the root fetched and checked, and the consoles and guest arguments of a disk', async () => {
    const plan = planNetboot({ folderName: 'app-netboot', extraCmdline: 'net.ifnames=0' });
    expect(plan.cmdline).toBe('boot=c2v ip=dhcp rw console=ttyS0,115200 console=tty0 net.ifnames=0');
    const templates = await loadTemplates();
    const sha = 'ab'.repeat(32);
    const byServer = netbootTexts(plan, { sha256: sha, bytes: 5 * 2 ** 20 }, "Debian 'bookworm'", templates);
    expect(byServer.ipxe.split('\n')[0]).toBe('#!ipxe');
    expect(byServer.ipxe).toContain('isset ${c2v-root} || set c2v-root http://${next-server}/root.squashfs\n');
    expect(byServer.ipxe).toContain(`kernel vmlinuz initrd=initrd.img ${plan.cmdline} c2v.sha256=${sha} c2v.root=\${c2v-root}\n`);
    expect(byServer.ipxe).toContain('initrd initrd.img\nboot\n');
    expect(byServer.grub).toContain('set c2v_root="http://${net_default_server}/root.squashfs"');
    expect(byServer.grub).toContain('set c2v_dir=/app-netboot;');
    expect(byServer.grub).toContain(`linux $c2v_dir/vmlinuz ${plan.cmdline} c2v.sha256=${sha} c2v.root=$c2v_root\n`);
    expect(byServer.grub).toContain("menuentry 'Debian bookworm (network boot)'");
    expect(byServer.readme).toContain('http://<boot server>/root.squashfs');
    expect(byServer.readme).toContain('(squashfs, 5 MiB)');
    const given = netbootTexts(planNetboot({ folderName: 'x', rootUrl: 'http://boot.lan/app/root.squashfs' }), { sha256: sha, bytes: 1 }, 'App', templates);
    expect(given.ipxe).toContain('set c2v-root http://boot.lan/app/root.squashfs\n');
    expect(given.grub).toContain('set c2v_root="http://boot.lan/app/root.squashfs"');
    expect(given.readme).toContain('fetched from http://boot.lan/app/root.squashfs');
  });

  it('lists the folder as sha256sum -c reads it', () => {
    expect(sha256Sums([{ name: 'vmlinuz', sha256: '0'.repeat(64) }, { name: 'initrd.img', sha256: '1'.repeat(64) }])).toBe(`${'0'.repeat(64)}  vmlinuz\n${'1'.repeat(64)}  initrd.img\n`);
  });
});
