import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildOvf, escapeXml, STREAM_OPTIMIZED_FORMAT, type OvfSpec } from '../../src/plan/ovf.js';
import { guestOsFor } from '../../src/plan/os-type.js';
import { appOvfProperties, standardProperties } from '../../src/plan/properties.js';
import { HARDWARE_VERSIONS } from '../../src/plan/vsphere-hardware.js';
import { NO_SCHEMA_REASON, OVF_SCHEMA_PRESENT, validateOvfFile } from '../helpers/ovf-schema.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-ovf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
function writeTmp(xml: string): string {
  const file = path.join(tmp, `t${counter++}.ovf`);
  writeFileSync(file, xml);
  return file;
}

function xmllint(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('xmllint', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The schema's verdict; without the schema (see helpers/ovf-schema.ts) a pass, said once on stderr. */
function validate(xml: string): { ok: boolean; stderr: string } {
  return validateOvfFile(writeTmp(xml)) ?? { ok: true, stderr: '' };
}

/** Evaluate an XPath on the document; namespaces are matched by local-name() to keep expressions short. */
function xpath(xml: string, expr: string): string {
  const r = xmllint(['--nonet', '--xpath', expr, writeTmp(xml)]);
  if (r.status !== 0) throw new Error(`xpath ${expr} failed: ${r.stderr}`);
  // xmllint ends a string result with one newline of its own.
  return r.stdout.replace(/\n$/, '');
}

const el = (name: string): string => `*[local-name()='${name}']`;
const at = (name: string): string => `@*[local-name()='${name}']`;
const item = (resourceType: number): string => `//${el('Item')}[${el('ResourceType')}='${resourceType}']`;

const base: OvfSpec = {
  name: 'web<&"app>',
  disk: { fileName: 'web-disk1.vmdk', fileBytes: 123_456_789, capacityBytes: 8 * 2 ** 30, populatedBytes: 1_234_567_890 },
  cpus: 2,
  memoryMiB: 2048,
  firmware: 'bios',
  os: { cimId: 96, vmwOsType: 'debian11_64Guest', description: 'Debian GNU/Linux 12 (bookworm)' },
  vmxVersion: 14,
  annotation: 'built from <nginx:1.27> & "friends"\nsecond line',
};

describe('buildOvf', () => {
  it('produces a BIOS descriptor that the OVF 1.1.1 schema accepts, with the requested values', () => {
    const xml = buildOvf(base);
    const v = validate(xml);
    expect(v.ok, v.stderr).toBe(true);

    expect(xpath(xml, `string(//${el('References')}/${el('File')}/${at('size')})`)).toBe('123456789');
    expect(xpath(xml, `string(//${el('References')}/${el('File')}/${at('href')})`)).toBe('web-disk1.vmdk');
    expect(xpath(xml, `string(//${el('Disk')}/${at('capacity')})`)).toBe('8');
    expect(xpath(xml, `string(//${el('Disk')}/${at('capacityAllocationUnits')})`)).toBe('byte * 2^30');
    expect(xpath(xml, `string(//${el('Disk')}/${at('format')})`)).toBe(STREAM_OPTIMIZED_FORMAT);
    expect(STREAM_OPTIMIZED_FORMAT).toBe('http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized');
    expect(xpath(xml, `string(//${el('Disk')}/${at('populatedSize')})`)).toBe('1234567890');
    expect(xpath(xml, `string(//${el('Disk')}/${at('fileRef')})`)).toBe(xpath(xml, `string(//${el('File')}/${at('id')})`));

    expect(xpath(xml, `string(//${el('OperatingSystemSection')}/${at('osType')})`)).toBe('debian11_64Guest');
    expect(xpath(xml, `string(//${el('OperatingSystemSection')}/${at('id')})`)).toBe('96');
    expect(xpath(xml, `string(//${el('VirtualSystemType')})`)).toBe('vmx-14');

    expect(xpath(xml, `string(${item(3)}/${el('VirtualQuantity')})`)).toBe('2');
    expect(xpath(xml, `string(${item(4)}/${el('VirtualQuantity')})`)).toBe('2048');
    expect(xpath(xml, `string(${item(4)}/${el('AllocationUnits')})`)).toBe('byte * 2^20');
    expect(xpath(xml, `string(${item(6)}/${el('ResourceSubType')})`)).toBe('VirtualSCSI');
    // The disk hangs off the SCSI controller and points at the DiskSection's disk.
    expect(xpath(xml, `string(${item(17)}/${el('Parent')})`)).toBe(xpath(xml, `string(${item(6)}/${el('InstanceID')})`));
    expect(xpath(xml, `string(${item(17)}/${el('AddressOnParent')})`)).toBe('0');
    expect(xpath(xml, `string(${item(17)}/${el('HostResource')})`)).toBe(`ovf:/disk/${xpath(xml, `string(//${el('Disk')}/${at('diskId')})`)}`);

    expect(xpath(xml, `string(${item(10)}/${el('ResourceSubType')})`)).toBe('VmxNet3');
    expect(xpath(xml, `string(${item(10)}/${el('AutomaticAllocation')})`)).toBe('true');
    expect(xpath(xml, `string(${item(10)}/${el('Connection')})`)).toBe('VM Network');
    expect(xpath(xml, `string(//${el('NetworkSection')}/${el('Network')}/${at('name')})`)).toBe('VM Network');

    expect(xpath(xml, `string(//${el('Config')}[${at('key')}='firmware']/${at('value')})`)).toBe('bios');
    expect(xpath(xml, `count(//${el('Config')}[${at('key')}='bootOptions.efiSecureBootEnabled'])`)).toBe('0');
    expect(xpath(xml, `count(//${el('ProductSection')})`)).toBe('0');
    expect(xpath(xml, `count(//${el('VirtualHardwareSection')}/${at('transport')})`)).toBe('0');
    // A CD-ROM drive on IDE, as vSphere gives BIOS guests: optional, so a host without one still imports.
    expect(xpath(xml, `string(${item(15)}/${el('Parent')})`)).toBe(xpath(xml, `string(${item(5)}/${el('InstanceID')})`));
    expect(xpath(xml, `string(${item(15)}/${at('required')})`)).toBe('false');
    expect(xpath(xml, `count(${item(20)})`)).toBe('0');
    // What every VM vSphere exports has: a video card, the VMCI device, two vCPUs on one socket.
    expect(xpath(xml, `count(${item(24)})`)).toBe('1');
    expect(xpath(xml, `string(${item(1)}/${el('ResourceSubType')})`)).toBe('vmware.vmci');
    expect(xpath(xml, `string(${item(3)}/${el('CoresPerSocket')})`)).toBe('2');
    expect(xpath(xml, `count(${item(21)})`)).toBe('0');
    // Power operations through VMware Tools, and the clock from the host.
    const config = (key: string) => xpath(xml, `string(//${el('VirtualHardwareSection')}/${el('Config')}[${at('key')}='${key}']/${at('value')})`);
    expect([config('powerOpInfo.powerOffType'), config('powerOpInfo.resetType'), config('tools.syncTimeWithHost')]).toEqual(['soft', 'soft', 'true']);
  });

  it('adds a serial port with --serial, not connected at power on, and one vCPU has no CoresPerSocket', () => {
    const xml = buildOvf({ ...base, cpus: 1, serial: true });
    const v = validate(xml);
    expect(v.ok, v.stderr).toBe(true);
    expect(xpath(xml, `string(${item(21)}/${el('ResourceSubType')})`)).toBe('vmware.serialport.device');
    expect(xpath(xml, `string(${item(21)}/${el('AutomaticAllocation')})`)).toBe('false');
    expect(xpath(xml, `count(${item(3)}/${el('CoresPerSocket')})`)).toBe('0');
  });

  it('declares deploy-time properties by category, with both transports, and a SATA CD-ROM for EFI', () => {
    const properties = [
      ...standardProperties({ network: true, sshd: true }),
      ...appOvfProperties([
        { name: 'GREETING', type: 'string', default: 'it\'s <"hi"> & bye\nline two', label: 'Greeting', description: 'What the app says' },
        { name: 'TOKEN', type: 'password', label: 'TOKEN' },
        { name: 'PORT', type: 'int', default: '8080', label: 'PORT' },
        { name: 'DEBUG', type: 'bool', label: 'DEBUG' },
      ]),
    ];
    const xml = buildOvf({ ...base, firmware: 'efi', properties, product: { product: 'app', version: '1.4' } });
    const v = validate(xml);
    expect(v.ok, v.stderr).toBe(true);
    expect(xpath(xml, `string(//${el('VirtualHardwareSection')}/${at('transport')})`)).toBe('com.vmware.guestInfo iso');
    expect(xpath(xml, `string(${item(20)}/${el('ResourceSubType')})`)).toBe('vmware.sata.ahci');
    expect(xpath(xml, `string(${item(15)}/${el('Parent')})`)).toBe(xpath(xml, `string(${item(20)}/${el('InstanceID')})`));
    const prop = (key: string, what: string) => xpath(xml, `string(//${el('Property')}[${at('key')}='${key}']/${what})`);
    expect(prop('app.GREETING', at('value'))).toBe('it\'s <"hi"> & bye\nline two');
    expect(prop('app.GREETING', el('Description'))).toBe('What the app says');
    expect(prop('app.TOKEN', at('password'))).toBe('true');
    expect(prop('app.PORT', at('type'))).toBe('int');
    expect(prop('app.DEBUG', at('type'))).toBe('boolean');
    expect(prop('app.DEBUG', at('value'))).toBe('false');
    expect(prop('c2v.root_password', at('password'))).toBe('true');
    expect(prop('c2v.hostname', at('userConfigurable'))).toBe('true');
    // Each category once, before its properties.
    expect(xpath(xml, `count(//${el('Category')})`)).toBe('3');
    expect(xpath(xml, `string(//${el('Property')}[${at('key')}='app.GREETING']/preceding-sibling::${el('Category')}[1])`)).toBe('Application');
    expect(xpath(xml, `string(//${el('Property')}[${at('key')}='c2v.ssh_keys']/preceding-sibling::${el('Category')}[1])`)).toBe('Access');
    expect(xpath(xml, `string(//${el('ProductSection')}/${el('Version')})`)).toBe('1.4');
  });

  it('escapes <, &, " in the name and annotation so they round-trip', () => {
    const xml = buildOvf(base);
    expect(xml).not.toContain('web<&"app>');
    expect(xml).toContain('web&lt;&amp;&quot;app&gt;');
    expect(xpath(xml, `string(//${el('VirtualSystem')}/${at('id')})`)).toBe('web<&"app>');
    expect(xpath(xml, `string(//${el('VirtualSystem')}/${el('Name')})`)).toBe('web<&"app>');
    expect(xpath(xml, `string(//${el('VirtualSystemIdentifier')})`)).toBe('web<&"app>');
    expect(xpath(xml, `string(//${el('Annotation')})`)).toBe(base.annotation);
  });

  it('produces an EFI descriptor with secure boot off, custom hardware and a product section', () => {
    const xml = buildOvf({
      ...base,
      name: 'efi-vm',
      firmware: 'efi',
      vmxVersion: 19,
      scsiController: 'lsilogicsas',
      nic: 'E1000e',
      networkName: 'dmz & lab',
      disk: { fileName: 'efi.vmdk', fileBytes: 5000, capacityBytes: 3 * 2 ** 30 + 512 },
      annotation: undefined,
      product: { product: 'Web <app>', vendor: 'ACME & Co', version: '1.2.3' },
      eula: 'Use it <as is> & "happily".\nSecond paragraph.\n',
    });
    const v = validate(xml);
    expect(v.ok, v.stderr).toBe(true);

    expect(xpath(xml, `string(//${el('Config')}[${at('key')}='firmware']/${at('value')})`)).toBe('efi');
    expect(xpath(xml, `string(//${el('Config')}[${at('key')}='bootOptions.efiSecureBootEnabled']/${at('value')})`)).toBe('false');
    expect(xpath(xml, `string(//${el('VirtualSystemType')})`)).toBe('vmx-19');
    expect(xpath(xml, `string(${item(6)}/${el('ResourceSubType')})`)).toBe('lsilogicsas');
    expect(xpath(xml, `string(${item(10)}/${el('ResourceSubType')})`)).toBe('E1000e');
    expect(xpath(xml, `string(${item(10)}/${el('Connection')})`)).toBe('dmz & lab');
    expect(xpath(xml, `string(//${el('Network')}/${at('name')})`)).toBe('dmz & lab');
    // Not a whole number of GiB: plain bytes.
    expect(xpath(xml, `string(//${el('Disk')}/${at('capacity')})`)).toBe(String(3 * 2 ** 30 + 512));
    expect(xpath(xml, `string(//${el('Disk')}/${at('capacityAllocationUnits')})`)).toBe('byte');
    expect(xpath(xml, `count(//${el('Disk')}/${at('populatedSize')})`)).toBe('0');
    expect(xpath(xml, `count(//${el('AnnotationSection')})`)).toBe('0');
    expect(xpath(xml, `string(//${el('ProductSection')}/${el('Product')})`)).toBe('Web <app>');
    expect(xpath(xml, `string(//${el('ProductSection')}/${el('Vendor')})`)).toBe('ACME & Co');
    expect(xpath(xml, `string(//${el('ProductSection')}/${el('Version')})`)).toBe('1.2.3');
    expect(xpath(xml, `string(//${el('EulaSection')}/${el('License')})`)).toBe('Use it <as is> & "happily".\nSecond paragraph.\n');
  });

  it('writes the rasd children of every Item in schema (alphabetical) order', () => {
    const xml = buildOvf({ ...base, firmware: 'efi' });
    const items = [...xml.matchAll(/<Item\b[^>]*>([\s\S]*?)<\/Item>/g)].map((m) => [...m[1].matchAll(/<rasd:(\w+)>/g)].map((n) => n[1]));
    expect(items).toHaveLength(9);
    for (const names of items) expect(names).toEqual([...names].sort());
  });

  it('for every hardware version c2v accepts: a valid OVF naming that version and a guest type its oldest ESXi knows', () => {
    const debian12 = { ID: 'debian', VERSION_ID: '12', PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)' };
    const seen: Record<number, string> = {};
    for (const hw of HARDWARE_VERSIONS) {
      const os = guestOsFor(debian12, { vmxVersion: hw.vmx });
      const xml = buildOvf({ ...base, vmxVersion: hw.vmx, os, cpus: hw.maxCpus, memoryMiB: hw.maxMemoryGB * 1024 });
      const v = validate(xml);
      expect(v.ok, `vmx-${hw.vmx}: ${v.stderr}`).toBe(true);
      expect(xpath(xml, `string(//${el('VirtualSystemType')})`)).toBe(`vmx-${String(hw.vmx).padStart(2, '0')}`);
      expect(xpath(xml, `string(${item(3)}/${el('VirtualQuantity')})`)).toBe(String(hw.maxCpus));
      seen[hw.vmx] = xpath(xml, `string(//${el('OperatingSystemSection')}/${at('osType')})`);
    }
    // debian12_64Guest needs API 8.0.0.1, the oldest host of vmx-20.
    expect(seen).toEqual({
      10: 'debian8_64Guest',
      11: 'debian9_64Guest',
      13: 'debian10_64Guest',
      14: 'debian10_64Guest',
      15: 'debian10_64Guest',
      17: 'debian11_64Guest',
      18: 'debian11_64Guest',
      19: 'debian11_64Guest',
      20: 'debian12_64Guest',
      21: 'debian12_64Guest',
      22: 'debian12_64Guest',
    });
  });

  it('is deterministic', () => {
    expect(buildOvf(base)).toBe(buildOvf({ ...base }));
  });

  it.skipIf(!OVF_SCHEMA_PRESENT)(`the schema check rejects rasd children out of order (so a pass above means something)${OVF_SCHEMA_PRESENT ? '' : `: skipped, ${NO_SCHEMA_REASON}`}`, () => {
    const broken = buildOvf(base).replace(
      /(<rasd:InstanceID>1<\/rasd:InstanceID>\n)(\s*<rasd:ResourceType>3<\/rasd:ResourceType>\n)/,
      '$2$1',
    );
    expect(broken).not.toBe(buildOvf(base));
    expect(validate(broken).ok).toBe(false);
  });

  it('rejects values vSphere would misread', () => {
    expect(() => buildOvf({ ...base, disk: { ...base.disk, fileName: 'dir/disk.vmdk' } })).toThrow(/plain file name/);
    expect(() => buildOvf({ ...base, disk: { ...base.disk, capacityBytes: 1000 } })).toThrow(/sectors/);
    expect(() => buildOvf({ ...base, cpus: 0 })).toThrow(/CPU/);
    expect(() => buildOvf({ ...base, memoryMiB: 1.5 })).toThrow(/memory/);
  });

  it('replaces characters XML 1.0 cannot carry', () => {
    expect(escapeXml('a\u0001b\tc')).toBe('a\uFFFDb\tc');
    const xml = buildOvf({ ...base, annotation: 'bell\u0007' });
    expect(validate(xml).ok).toBe(true);
  });
});
