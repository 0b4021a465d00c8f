import { writeFileSync } from 'node:fs';
import { ovaBytes } from './ova-writer.js';

/** An OVF with the hardware verify reads and a ProductSection in the shape c2v writes (attribute order varied). */
export const PROPERTIES_OVF = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="app-disk1.vmdk" ovf:id="file1" ovf:size="1"/></References>
  <VirtualSystem ovf:id="app">
    <ProductSection>
      <Info>Information about the installed software</Info>
      <Product>app</Product>
      <Category>Network</Category>
      <Property ovf:key="c2v.hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="">
        <Label>Host name</Label>
        <Description>The guest's host name</Description>
      </Property>
      <Property ovf:key="c2v.root_password" ovf:password="true" ovf:type="string" ovf:userConfigurable="true"><Label>Root password</Label></Property>
      <Category>Application</Category>
      <Property ovf:type="int" ovf:key="app.PORT" ovf:userConfigurable="true" ovf:value="8080"><Label>PORT</Label></Property>
      <Property ovf:key="app.DEBUG" ovf:type="boolean" ovf:userConfigurable="true" ovf:value="false"/>
    </ProductSection>
    <VirtualHardwareSection ovf:transport="com.vmware.guestInfo iso">
      <Item><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>512</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Connection>Lab &amp; Test</rasd:Connection><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;

export function writeOva(file: string, disk: Buffer, ovf = PROPERTIES_OVF): string {
  writeFileSync(file, ovaBytes([{ name: 'app.ovf', data: Buffer.from(ovf) }, { name: 'app-disk1.vmdk', data: disk }]));
  return file;
}
