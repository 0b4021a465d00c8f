import { describe, expect, it } from 'vitest';
import { buildOvf } from '../../src/plan/ovf.js';
import { readOvfHardware } from '../../src/plan/ovf-read.js';
import { devicesFor } from '../../src/commands/verify.js';

const base = {
  name: 'app',
  disk: { fileName: 'app-disk1.vmdk', fileBytes: 1000, capacityBytes: 1024 ** 3 },
  cpus: 1,
  memoryMiB: 2048,
  os: { cimId: 96, vmwOsType: 'debian10_64Guest', description: 'Debian' },
  vmxVersion: 14,
};

describe('reading back the hardware c2v declared', () => {
  it('finds disk, controller, NIC, memory and firmware, and maps them to QEMU devices', () => {
    const efi = readOvfHardware(buildOvf({ ...base, firmware: 'efi' }));
    expect(efi).toEqual({ diskFile: 'app-disk1.vmdk', scsiSubType: 'VirtualSCSI', sata: false, nicSubType: 'VmxNet3', firmware: 'efi', memoryMiB: 2048 });
    expect(devicesFor(efi, 'bios')).toEqual({ bus: 'pvscsi', nic: 'vmxnet3' });
    expect(devicesFor(efi, 'efi')).toEqual({ bus: 'ahci', nic: 'vmxnet3' });
    const bios = readOvfHardware(buildOvf({ ...base, firmware: 'bios', scsiController: 'lsilogic', nic: 'E1000e' }));
    expect(bios.firmware).toBe('bios');
    expect(devicesFor(bios, 'bios')).toEqual({ bus: 'lsi', nic: 'e1000e' });
  });
});
