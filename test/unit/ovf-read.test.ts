import { describe, expect, it } from 'vitest';
import { buildOvf } from '../../src/plan/ovf.js';
import { readOvfHardware, readOvfProperties, unescapeXml } from '../../src/plan/ovf-read.js';
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
    expect(efi).toEqual({
      diskFile: 'app-disk1.vmdk',
      scsiSubType: 'VirtualSCSI',
      sata: false,
      nicSubType: 'VmxNet3',
      network: 'VM Network',
      firmware: 'efi',
      secureBoot: false,
      memoryMiB: 2048,
      properties: expect.any(Array),
    });
    // --secure-boot's OVF boots on firmware that enforces it; the setting means nothing for BIOS.
    expect(readOvfHardware(buildOvf({ ...base, firmware: 'efi', secureBoot: true })).secureBoot).toBe(true);
    expect(() => buildOvf({ ...base, firmware: 'bios', secureBoot: true })).toThrow(/Secure Boot needs EFI firmware and vmx-13/);
    expect(() => buildOvf({ ...base, firmware: 'efi', secureBoot: true, vmxVersion: 11 })).toThrow(/vmx-13 or later/);
    expect(readOvfHardware(buildOvf({ ...base, firmware: 'efi', secureBoot: true })).firmware).toBe('efi');
    expect(devicesFor(efi, 'bios')).toEqual({ bus: 'pvscsi', nic: 'vmxnet3' });
    expect(devicesFor(efi, 'efi')).toEqual({ bus: 'ahci', nic: 'vmxnet3' });
    const bios = readOvfHardware(buildOvf({ ...base, firmware: 'bios', scsiController: 'lsilogic', nic: 'E1000e' }));
    expect(bios.firmware).toBe('bios');
    expect(devicesFor(bios, 'bios')).toEqual({ bus: 'lsi', nic: 'e1000e' });
  });

  it("takes the disk's own controller, not a SATA controller that holds only a CD-ROM", () => {
    const item = (type: number, id: number, extra = '') => `<Item><rasd:InstanceID>${id}</rasd:InstanceID>${extra}<rasd:ResourceType>${type}</rasd:ResourceType></Item>`;
    const scsi = item(6, 3, '<rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>');
    const sata = item(20, 6, '<rasd:ResourceSubType>vmware.sata.ahci</rasd:ResourceSubType>');
    const cd = item(15, 7, '<rasd:Parent>6</rasd:Parent>');
    const onScsi = readOvfHardware(`<Envelope>${scsi}${sata}${item(17, 9, '<rasd:Parent>3</rasd:Parent>')}${cd}</Envelope>`);
    expect(onScsi).toMatchObject({ sata: false, scsiSubType: 'VirtualSCSI' });
    const onSata = readOvfHardware(`<Envelope>${scsi}${sata}${item(17, 9, '<rasd:Parent>6</rasd:Parent>')}</Envelope>`);
    expect(onSata.sata).toBe(true);
    expect(devicesFor(onSata, 'bios').bus).toBe('ahci');
    // No disk item to follow: any SATA controller means SATA, as before.
    expect(readOvfHardware(`<Envelope>${scsi}${sata}</Envelope>`).sata).toBe(true);
  });
});

const PRODUCT = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <VirtualSystem ovf:id="app">
    <ProductSection>
      <Info>Information about the installed software</Info>
      <Product>app</Product>
      <Category>Network</Category>
      <Property ovf:key="c2v.hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>Host name</Label>
        <Description>The guest's name; empty keeps the one it has</Description>
      </Property>
      <Property ovf:password="true" ovf:type="string" ovf:key="c2v.root_password" ovf:userConfigurable="true"><Label>Root &amp; &#x4E2D; password</Label></Property>
      <Category>Application</Category>
      <Property ovf:key="app.PORT" ovf:type="int" ovf:userConfigurable="true" ovf:value="8080">
        <Label><![CDATA[Port <tcp>]]></Label>
      </Property>
      <Property ovf:key="app.DEBUG" ovf:type="boolean" ovf:userConfigurable="true" ovf:value="false"/>
      <Property ovf:key='app.MOTD' ovf:type='string' ovf:value='a "b" &lt;c&gt; &amp;&#10;d&#x9;e > f &#233; 中'/>
      <Property ovf:key="app.WRAPPED" ovf:type="string" ovf:value="one
two"/>
    </ProductSection>
  </VirtualSystem>
</Envelope>`;

describe('reading the properties an OVF declares', () => {
  it('returns each with its type, default, password flag and label, unescaped, in document order', () => {
    expect(readOvfProperties(PRODUCT)).toEqual([
      { key: 'c2v.hostname', type: 'string', value: '', password: false, label: 'Host name' },
      { key: 'c2v.root_password', type: 'string', value: '', password: true, label: 'Root & 中 password' },
      { key: 'app.PORT', type: 'int', value: '8080', password: false, label: 'Port <tcp>' },
      { key: 'app.DEBUG', type: 'boolean', value: 'false', password: false },
      { key: 'app.MOTD', type: 'string', value: 'a "b" <c> &\nd\te > f é 中', password: false },
      // A raw line end in an attribute reads as a space, as any XML parser reads it.
      { key: 'app.WRAPPED', type: 'string', value: 'one two', password: false },
    ]);
    expect(readOvfHardware(PRODUCT).properties).toHaveLength(6);
  });

  it("reads back the properties c2v's own OVF declares, whatever their values hold", () => {
    const tricky = 'a "b" <c> & \'d\'\n\tnew line, é 中 😀';
    const declared = [
      { key: 'c2v.hostname', type: 'string', password: false, value: '', label: 'Host name', description: 'd', category: 'Network' },
      { key: 'c2v.root_password', type: 'string', password: true, value: '', label: 'Root password', description: 'd', category: 'Network' },
      { key: 'app.PORT', type: 'int', password: false, value: '8080', label: 'PORT', description: 'd', category: 'Application' },
      { key: 'app.MOTD', type: 'string', password: false, value: tricky, label: tricky, description: 'd', category: 'Application' },
    ] as const;
    expect(readOvfProperties(buildOvf({ ...base, firmware: 'efi', properties: declared }))).toEqual(
      declared.map(({ key, type, password, value, label }) => ({ key, type, password, value, label: label.trim() })),
    );
  });

  it('qualifies keys with the section class and instance, takes ovf: prefixes and none, and skips keyless ones', () => {
    const xml = `<Envelope>
      <ovf:ProductSection ovf:class="com.example" ovf:instance="1"><ovf:Property ovf:key="mode" ovf:type="string" ovf:value="a"/></ovf:ProductSection>
      <ProductSection><Property key="plain" type="uint16" value="7"/><Property ovf:type="string"/></ProductSection>
    </Envelope>`;
    expect(readOvfProperties(xml)).toEqual([
      { key: 'com.example.mode.1', type: 'string', value: 'a', password: false },
      { key: 'plain', type: 'uint16', value: '7', password: false },
    ]);
  });

  it('finds none where there is no ProductSection, and lists no PropertySection entries of an environment', () => {
    expect(readOvfProperties(buildOvf({ ...base, firmware: 'bios' }))).toEqual([]);
    expect(readOvfProperties('<Environment><PropertySection><Property oe:key="a" oe:value="b"/></PropertySection></Environment>')).toEqual([]);
  });

  it('unescapes the five named entities and decimal and hex references, leaving others as written', () => {
    expect(unescapeXml('&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x1F600;&nbsp;&amp;lt;')).toBe('<>&"\'AB😀&nbsp;&lt;');
  });
});
