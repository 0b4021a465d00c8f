import { beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { chooseKernel, compareVersions, fstab, grubConfig, grubEarlyConfig } from '../../src/plan/boot-config.js';
import type { Templates } from '../../src/plan/template.js';

const UUID = '0b6c1f55-3c39-4a8e-9d8c-2f0e1c7a9b11';

let templates: Templates;
beforeAll(async () => {
  templates = await loadTemplates();
});

describe('chooseKernel', () => {
  it('follows the distro /vmlinuz symlink when it names a present kernel', () => {
    const k = chooseKernel(
      ['boot/vmlinuz-6.1.0-25-amd64', 'boot/vmlinuz-6.1.0-18-amd64'],
      ['boot/initrd.img-6.1.0-25-amd64', 'boot/initrd.img-6.1.0-18-amd64'],
      { vmlinuz: 'boot/vmlinuz-6.1.0-18-amd64' },
    );
    expect(k).toEqual({ kernel: 'boot/vmlinuz-6.1.0-18-amd64', initrd: 'boot/initrd.img-6.1.0-18-amd64', version: '6.1.0-18-amd64' });
  });

  it('resolves relative links inside /boot', () => {
    const k = chooseKernel(['boot/vmlinuz-6.12.9-amd64'], ['boot/initrd.img-6.12.9-amd64'], { 'boot/vmlinuz': 'vmlinuz-6.12.9-amd64' });
    expect(k?.kernel).toBe('boot/vmlinuz-6.12.9-amd64');
  });

  it('otherwise picks the highest version, numerically', () => {
    const k = chooseKernel(['boot/vmlinuz-6.1.0-9-amd64', 'boot/vmlinuz-6.1.0-18-amd64', 'boot/vmlinuz-5.10.0-30-amd64'], []);
    expect(k?.kernel).toBe('boot/vmlinuz-6.1.0-18-amd64');
    expect(k?.initrd).toBeUndefined();
    expect(compareVersions('6.10.1', '6.9.12')).toBeGreaterThan(0);
  });

  it('finds RHEL and Alpine initrd names', () => {
    expect(chooseKernel(['boot/vmlinuz-5.14.0-427.el9.x86_64'], ['boot/initramfs-5.14.0-427.el9.x86_64.img'])?.initrd).toBe(
      'boot/initramfs-5.14.0-427.el9.x86_64.img',
    );
    expect(chooseKernel(['boot/vmlinuz-virt'], ['boot/initramfs-virt'])).toEqual({ kernel: 'boot/vmlinuz-virt', initrd: 'boot/initramfs-virt', version: 'virt' });
  });

  it('returns undefined without a kernel', () => {
    expect(chooseKernel([], ['boot/initrd.img-6.1.0-18-amd64'])).toBeUndefined();
  });
});

describe('grub configuration', () => {
  const kernel = { kernel: 'boot/vmlinuz-6.1.0-18-amd64', initrd: 'boot/initrd.img-6.1.0-18-amd64' };

  it("boots the kernel by root UUID with the consoles on ttyS0 and tty0 (tty0 last, so it is /dev/console: vSphere's console)", () => {
    const cfg = grubConfig({ title: "Debian's appliance", rootFsUuid: UUID, kernel }, templates);
    expect(cfg).toContain(`search --no-floppy --fs-uuid --set=root ${UUID}`);
    expect(cfg).toContain(`  linux /boot/vmlinuz-6.1.0-18-amd64 root=UUID=${UUID} ro console=ttyS0,115200 console=tty0\n`);
    expect(cfg).toContain('  initrd /boot/initrd.img-6.1.0-18-amd64\n');
    expect(cfg).toContain("menuentry 'Debians appliance' {");
    expect(cfg).toMatch(/^serial --unit=0 --speed=115200$/m);
  });

  it('has no initrd line when the image has none', () => {
    expect(grubConfig({ title: 't', rootFsUuid: UUID, kernel: { kernel: 'boot/vmlinuz-x' } }, templates)).not.toContain('initrd');
  });

  it('has an early config that finds the root by UUID and loads its grub.cfg', () => {
    expect(grubEarlyConfig(UUID, templates).split('\n')).toEqual([
      `search --no-floppy --fs-uuid --set=root ${UUID}`,
      'set prefix=($root)/boot/grub',
      'configfile ($root)/boot/grub/grub.cfg',
      '',
    ]);
  });

  it('writes fstab entries by UUID, the ESP optional at boot', () => {
    const text = fstab({ rootFsUuid: UUID, espUuid: 'ABCD-1234' }, templates);
    expect(text).toContain(`UUID=${UUID} / ext4 errors=remount-ro 0 1\n`);
    expect(text).toContain('UUID=ABCD-1234 /boot/efi vfat umask=0077,nofail 0 2\n');
  });
});
