import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOvf, type OvfSpec } from '../../src/plan/ovf.js';
import { appOvfProperties, standardProperties } from '../../src/plan/properties.js';
import { PROJECT_ROOT } from '../helpers/env.js';

/**
 * The OVF as VMware's own code reads it: govmomi's `ovf` package (shared/tools/govmomi's ovf-configspec) turns the
 * descriptor into the VirtualMachineConfigSpec vSphere would create, with its vApp properties and devices.
 */
const TOOLS = path.resolve(PROJECT_ROOT, '../shared/tools/govmomi');
const PRESENT = existsSync(path.join(TOOLS, 'install'));
const WHY = `govmomi's ovf-configspec is not at ${TOOLS} (it comes with ../shared beside the project)`;

interface Parsed {
  configSpec: { vAppConfig?: { product?: { info: { name?: string; version?: string } }[]; property?: { info: { id: string; category?: string; type: string; defaultValue?: string; label?: string } }[] } };
  devices: { type: string; key: number; controllerKey?: number }[];
}

describe.skipIf(!PRESENT)(`govmomi reads c2v's deploy-time properties and devices${PRESENT ? '' : ` (skipped: ${WHY})`}`, () => {
  let bin: string;
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-govmomi-'));
    bin = path.join(dir, 'bin');
    execFileSync(path.join(TOOLS, 'install'), [bin], { stdio: 'ignore' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const spec = (firmware: OvfSpec['firmware']): OvfSpec => ({
    name: 'app',
    disk: { fileName: 'app-disk1.vmdk', fileBytes: 1000, capacityBytes: 2 ** 30 },
    cpus: 1,
    memoryMiB: 1024,
    firmware,
    os: { cimId: 96, vmwOsType: 'debian11_64Guest', description: 'Debian GNU/Linux 12 (bookworm)' },
    vmxVersion: 14,
    product: { product: 'app', version: '1.4' },
    properties: [
      ...standardProperties({ network: true, sshd: true }),
      ...appOvfProperties([
        { name: 'GREETING', type: 'string', default: 'hi & <bye>', label: 'Greeting' },
        { name: 'TOKEN', type: 'password', label: 'TOKEN' },
        { name: 'PORT', type: 'int', default: '8080', label: 'PORT' },
        { name: 'DEBUG', type: 'bool', label: 'DEBUG' },
      ]),
    ],
  });

  function parse(s: OvfSpec): Parsed {
    const file = path.join(dir, `${s.firmware}.ovf`);
    writeFileSync(file, buildOvf(s));
    return JSON.parse(execFileSync(path.join(bin, 'ovf-configspec'), [file], { encoding: 'utf8' })) as Parsed;
  }

  it('every property, with its category, type (passwords as password) and default, and the product', () => {
    const parsed = parse(spec('bios'));
    const props = parsed.configSpec.vAppConfig?.property?.map((p) => p.info) ?? [];
    const byId = Object.fromEntries(props.map((p) => [p.id, p]));
    expect(props.map((p) => p.id)).toEqual(['c2v.hostname', 'c2v.ipv4', 'c2v.gateway', 'c2v.dns', 'c2v.search', 'c2v.ntp', 'c2v.ssh_keys', 'c2v.root_password', 'app.GREETING', 'app.TOKEN', 'app.PORT', 'app.DEBUG']);
    expect(byId['c2v.ipv4']).toMatchObject({ category: 'Network', type: 'string', label: 'IPv4 address' });
    expect(byId['c2v.root_password']).toMatchObject({ category: 'Access', type: 'password' });
    expect(byId['app.GREETING']).toMatchObject({ category: 'Application', type: 'string', defaultValue: 'hi & <bye>', label: 'Greeting' });
    expect(byId['app.TOKEN'].type).toBe('password');
    expect(byId['app.PORT']).toMatchObject({ type: 'int', defaultValue: '8080' });
    // vSphere spells boolean values True and False, and so does govmomi; the guest agent takes either.
    expect(byId['app.DEBUG']).toMatchObject({ type: 'boolean', defaultValue: 'False' });
    expect(parsed.configSpec.vAppConfig?.product?.[0].info).toMatchObject({ name: 'app', version: '1.4' });
  });

  it("the video card, VMCI, one socket of vCPUs, and power operations through VMware Tools", () => {
    const parsed = parse({ ...spec('efi'), cpus: 4 }) as Parsed & { configSpec: Record<string, unknown> };
    expect(parsed.devices.map((d) => d.type)).toEqual(expect.arrayContaining(['VirtualMachineVideoCard', 'VirtualMachineVMCIDevice']));
    expect(parsed.configSpec).toMatchObject({
      numCPUs: 4,
      numCoresPerSocket: 4,
      powerOpInfo: { powerOffType: 'soft', resetType: 'soft' },
      tools: { syncTimeWithHost: true, beforeGuestShutdown: true, toolsUpgradePolicy: 'manual' },
      firmware: 'efi',
    });
  });

  it('Secure Boot as bootOptions.efiSecureBootEnabled: on with --secure-boot, off otherwise', () => {
    const on = parse({ ...spec('efi'), secureBoot: true }) as Parsed & { configSpec: Record<string, unknown> };
    expect(on.configSpec).toMatchObject({ firmware: 'efi', bootOptions: { efiSecureBootEnabled: true } });
    const off = parse(spec('efi')) as Parsed & { configSpec: { bootOptions?: { efiSecureBootEnabled?: boolean } } };
    expect(off.configSpec.bootOptions?.efiSecureBootEnabled).toBe(false);
  });

  it('a CD-ROM drive on IDE for BIOS and on AHCI for EFI, beside the disk on pvscsi', () => {
    for (const [firmware, controller] of [
      ['bios', 'VirtualIDEController'],
      ['efi', 'VirtualAHCIController'],
    ] as const) {
      const devices = parse(spec(firmware)).devices;
      const cdrom = devices.find((d) => d.type === 'VirtualCdrom');
      expect(cdrom, firmware).toBeDefined();
      expect(devices.find((d) => d.key === cdrom!.controllerKey)?.type, firmware).toBe(controller);
      const disk = devices.find((d) => d.type === 'VirtualDisk');
      expect(devices.find((d) => d.key === disk!.controllerKey)?.type, firmware).toBe('ParaVirtualSCSIController');
    }
  });
});
