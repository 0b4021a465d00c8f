import { describe, expect, it } from 'vitest';
import { accelChoice, DEFAULT_MAC, qemuArgs, SerialWatch, type BootRequest } from '../../src/adapters/qemu.js';
import { BOOTED } from '../../src/commands/verify.js';

describe('serial console watching', () => {
  it('matches a marker line split over pieces only once its end has arrived', () => {
    const w = new SerialWatch(/C2V-EXAMPLE-READY/);
    expect(w.push('[  OK  ] Started x.\r\nC2V-EXAMPLE-READY ker')).toEqual({ partial: 'C2V-EXAMPLE-READY ker' });
    expect(w.push('nel=6.1.0 failed=0\r\nDebian GNU/Linux 12')).toEqual({ line: 'C2V-EXAMPLE-READY kernel=6.1.0 failed=0' });
  });

  it('reports a prompt without a newline as a partial match, and drops CRs and terminal escapes', () => {
    const w = new SerialWatch(BOOTED);
    expect(w.push('\x1b[0;32m  OK  \x1b[0m] Reached target basic.target\r\n')).toEqual({});
    expect(w.push('debian login: ')).toEqual({ partial: 'debian login: ' });
    expect(w.serial).toBe('  OK  ] Reached target basic.target\ndebian login: ');
  });

  it('hands every whole line to onLine and returns the first matching one', () => {
    const lines: string[] = [];
    const w = new SerialWatch(/READY/, (l) => lines.push(l));
    expect(w.push('a\nREADY 1\nREADY 2\nb')).toEqual({ line: 'READY 1' });
    expect(lines).toEqual(['a', 'READY 1', 'READY 2']);
  });
});

describe('accelerator choice (C2V_QEMU_ACCEL)', () => {
  it('is auto unless set, takes kvm and tcg, and refuses anything else with a usage error', () => {
    expect(accelChoice(undefined)).toBe('auto');
    expect(accelChoice('')).toBe('auto');
    expect(accelChoice('auto')).toBe('auto');
    expect(accelChoice('kvm')).toBe('kvm');
    expect(accelChoice('tcg')).toBe('tcg');
    expect(() => accelChoice('hvf')).toThrow(/C2V_QEMU_ACCEL must be auto, kvm or tcg \(got "hvf"\)/);
  });
});

describe('the QEMU command line', () => {
  const req: BootRequest = { disk: '/t/app-disk1.vmdk', firmware: 'bios', bus: 'pvscsi', marker: /x/, timeoutMs: 1000 };
  /** The value after each occurrence of an option. */
  const values = (args: string[], opt: string) => args.flatMap((a, i) => (a === opt ? [args[i + 1]] : []));

  it('opens the disk as a throw-away snapshot, with no CD-ROM, and names the NIC address explicitly', () => {
    const args = qemuArgs(req, undefined, 'tcg');
    expect(values(args, '-drive')).toEqual(['file=/t/app-disk1.vmdk,format=vmdk,if=none,id=disk0,snapshot=on']);
    expect(values(args, '-device')).toEqual(['pvscsi,id=scsi0', 'scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0', `vmxnet3,netdev=net0,mac=${DEFAULT_MAC}`]);
    expect(DEFAULT_MAC).toBe('52:54:00:12:34:56');
  });

  it('boots a qcow2 in place when asked not to snapshot, and takes another MAC', () => {
    const args = qemuArgs({ ...req, disk: '/t/grown.qcow2', format: 'qcow2', snapshot: false, mac: '52:54:00:aa:bb:cc', nic: 'e1000e' }, undefined, 'kvm');
    expect(values(args, '-drive')).toEqual(['file=/t/grown.qcow2,format=qcow2,if=none,id=disk0']);
    expect(values(args, '-device').at(-1)).toBe('e1000e,netdev=net0,mac=52:54:00:aa:bb:cc');
  });

  it('boots virtio disk and NIC, as KVM and Proxmox do; with SMM and the Secure Boot firmware when asked', () => {
    const args = qemuArgs({ ...req, disk: '/t/app.qcow2', format: 'qcow2', bus: 'virtio', nic: 'virtio' }, undefined, 'tcg');
    expect(values(args, '-device')).toEqual(['virtio-blk-pci,drive=disk0,bootindex=0', `virtio-net-pci,netdev=net0,mac=${DEFAULT_MAC}`]);
    const secure = qemuArgs({ ...req, firmware: 'efi', bus: 'ahci', secureBoot: true }, '/t/vars.fd', 'tcg');
    expect(values(secure, '-machine')).toEqual(['q35,smm=on']);
    expect(values(secure, '-global')).toEqual(['driver=cfi.pflash01,property=secure,value=on']);
    expect(values(secure, '-drive').slice(0, 2)).toEqual(['if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', 'if=pflash,format=raw,file=/t/vars.fd']);
    expect(() => qemuArgs({ ...req, firmware: 'bios', secureBoot: true }, undefined, 'tcg')).toThrow(/Secure Boot needs EFI firmware/);
  });

  it("puts an ISO in a read-only CD-ROM on q35's AHCI port 1, beside an AHCI disk on port 0 or any other bus", () => {
    const cd = ['file=/t/ovf-env.iso,format=raw,media=cdrom,if=none,id=cd0,readonly=on'];
    const ahci = qemuArgs({ ...req, firmware: 'efi', bus: 'ahci', cdrom: '/t/ovf-env.iso' }, '/t/vars.fd', 'tcg');
    expect(values(ahci, '-drive').slice(-1)).toEqual(cd);
    expect(values(ahci, '-device')).toEqual(['ide-hd,drive=disk0,bus=ide.0,bootindex=0', 'ide-cd,drive=cd0,bus=ide.1', `vmxnet3,netdev=net0,mac=${DEFAULT_MAC}`]);
    const pvscsi = qemuArgs({ ...req, cdrom: '/t/ovf-env.iso' }, undefined, 'tcg');
    expect(values(pvscsi, '-device')).toContain('ide-cd,drive=cd0,bus=ide.1');
  });

  it('forwards host ports to the DHCP address unless the guest has a static one', () => {
    const args = qemuArgs({ ...req, forwards: [{ host: 2222, guest: 22 }, { host: 8081, guest: 8080, guestAddress: '10.0.2.20' }] }, undefined, 'tcg');
    expect(values(args, '-netdev')).toEqual(['user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8081-10.0.2.20:8080']);
  });

  it('doubles commas in paths, which QEMU would otherwise read as option separators', () => {
    const args = qemuArgs({ ...req, disk: '/t/a,b.vmdk', cdrom: '/t/c,d.iso' }, undefined, 'tcg');
    expect(values(args, '-drive')).toEqual(['file=/t/a,,b.vmdk,format=vmdk,if=none,id=disk0,snapshot=on', 'file=/t/c,,d.iso,format=raw,media=cdrom,if=none,id=cd0,readonly=on']);
  });
});
