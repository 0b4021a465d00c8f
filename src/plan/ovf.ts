/**
 * The OVF 1.x descriptor of a single-disk VM, in the shape vSphere imports cleanly (see
 * shared/FORMATS.md, "OVF 1.x descriptor"). Pure: the same spec always gives the same text, with no
 * timestamps or generated ids, so the .mf digest of the .ovf is reproducible too.
 */

import { escapeXml, xmlAttr as attr } from '../formats/xml.js';
import type { GuestOs } from './os-type.js';
import { cdromItems, coresPerSocket, item, serialPortItem, standardDeviceItems, VM_CONFIG, vmwConfig } from './ovf-items.js';
import type { OvfProperty } from './properties.js';
import { HARDWARE_VERSIONS } from './vsphere-hardware.js';

export { escapeXml } from '../formats/xml.js';

export type ScsiController = 'lsilogic' | 'lsilogicsas' | 'VirtualSCSI';
export type NicType = 'VmxNet3' | 'E1000e';

export interface OvfSpec {
  /** VirtualSystem id and name: what vSphere proposes as the VM name. */
  name: string;
  disk: { fileName: string; fileBytes: number; capacityBytes: number; populatedBytes?: number };
  cpus: number;
  memoryMiB: number;
  firmware: 'bios' | 'efi';
  os: GuestOs;
  /** Virtual hardware version (vmx-NN); plan/vsphere-hardware.ts says what each one means. */
  vmxVersion: number;
  /** Default VirtualSCSI (pvscsi). */
  scsiController?: ScsiController;
  nic?: NicType;
  networkName?: string;
  annotation?: string;
  product?: { product?: string; version?: string; vendor?: string; productUrl?: string };
  /** Deploy-time properties; with any, the VM gets both of vSphere's transports to the guest. */
  properties?: readonly OvfProperty[];
  /** A serial port (--serial). */
  serial?: boolean;
  /** A license the deploy wizard makes the admin accept (--eula). */
  eula?: string;
  /** EFI firmware with Secure Boot on (--secure-boot): the disk boots through the distribution's signed shim. */
  secureBoot?: boolean;
}

/** guestinfo for open-vm-tools, and an ISO in the CD-ROM drive for guests (and hypervisors) without it. */
export const OVF_TRANSPORTS = 'com.vmware.guestInfo iso';

const NS = {
  ovf: 'http://schemas.dmtf.org/ovf/envelope/1',
  cim: 'http://schemas.dmtf.org/wbem/wscim/1/common',
  rasd: 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData',
  vssd: 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData',
  vmw: 'http://www.vmware.com/schema/ovf',
  xsi: 'http://www.w3.org/2001/XMLSchema-instance',
} as const;

export const STREAM_OPTIMIZED_FORMAT = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

const GiB = 2 ** 30;
const DISK_ID = 'vmdisk1';
const FILE_ID = 'file1';

function checkInt(what: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`OVF ${what} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

function validate(spec: OvfSpec, vmx: number): void {
  if (spec.name.trim() === '') throw new RangeError('OVF name must not be empty');
  const file = spec.disk.fileName;
  // The href is resolved next to the .ovf (and inside the OVA, which is flat).
  if (file === '' || file.includes('/') || file.includes('\\')) {
    throw new RangeError(`OVF disk file name ${JSON.stringify(file)} must be a plain file name`);
  }
  checkInt('disk file size', spec.disk.fileBytes, 1);
  checkInt('disk capacity', spec.disk.capacityBytes, 512);
  if (spec.disk.capacityBytes % 512 !== 0) throw new RangeError(`OVF disk capacity ${spec.disk.capacityBytes} is not a whole number of sectors`);
  if (spec.disk.populatedBytes !== undefined) checkInt('disk populated size', spec.disk.populatedBytes, 0, spec.disk.capacityBytes);
  checkInt('CPU count', spec.cpus, 1, HARDWARE_VERSIONS[HARDWARE_VERSIONS.length - 1].maxCpus);
  checkInt('memory (MiB)', spec.memoryMiB, 4);
  checkInt('virtual hardware version', vmx, 4, 99);
  // Secure Boot is an EFI setting that vSphere offers from vmx-13 (ESXi 6.5) on.
  if (spec.secureBoot && (spec.firmware !== 'efi' || vmx < 13)) throw new RangeError(`OVF Secure Boot needs EFI firmware and vmx-13 or later (got ${spec.firmware}, vmx-${vmx})`);
  checkInt('CIM OS id', spec.os.cimId, 0, 65535);
}

function capacity(bytes: number): { value: number; units: string } {
  // vSphere honours capacityAllocationUnits; a whole GiB count keeps the number readable.
  return bytes % GiB === 0 ? { value: bytes / GiB, units: 'byte * 2^30' } : { value: bytes, units: 'byte' };
}

/** Element order is fixed by ProductSection_Type: Info, Product, Vendor, Version, ..., ProductUrl, then Category and Property. */
function productSection(product: NonNullable<OvfSpec['product']>, props: readonly OvfProperty[]): string[] {
  const el = (name: string, value: string | undefined): string[] => (value !== undefined ? [`      <${name}>${escapeXml(value)}</${name}>`] : []);
  const out = [
    '    <ProductSection>',
    '      <Info>Information about the installed software</Info>',
    ...el('Product', product.product),
    ...el('Vendor', product.vendor),
    ...el('Version', product.version),
    ...el('ProductUrl', product.productUrl),
  ];
  let category: string | undefined;
  for (const p of props) {
    if (p.category !== category) {
      category = p.category;
      out.push(`      <Category>${escapeXml(category)}</Category>`);
    }
    out.push(
      `      <Property ovf:key="${attr(p.key)}"${p.password ? ' ovf:password="true"' : ''} ovf:type="${p.type}" ovf:userConfigurable="true" ovf:value="${attr(p.value)}">`,
      `        <Label>${escapeXml(p.label)}</Label>`,
      `        <Description>${escapeXml(p.description)}</Description>`,
      '      </Property>',
    );
  }
  out.push('    </ProductSection>');
  return out;
}

export function buildOvf(spec: OvfSpec): string {
  const vmx = spec.vmxVersion;
  validate(spec, vmx);
  const scsi = spec.scsiController ?? 'VirtualSCSI';
  const nic = spec.nic ?? 'VmxNet3';
  const network = spec.networkName ?? 'VM Network';
  const cap = capacity(spec.disk.capacityBytes);

  const out: string[] = [];
  const push = (...lines: string[]): void => {
    out.push(...lines);
  };

  push(
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<Envelope xmlns="${NS.ovf}" xmlns:ovf="${NS.ovf}" xmlns:cim="${NS.cim}" xmlns:rasd="${NS.rasd}" xmlns:vssd="${NS.vssd}" xmlns:vmw="${NS.vmw}" xmlns:xsi="${NS.xsi}">`,
    '  <References>',
    `    <File ovf:href="${attr(spec.disk.fileName)}" ovf:id="${FILE_ID}" ovf:size="${spec.disk.fileBytes}"/>`,
    '  </References>',
    '  <DiskSection>',
    '    <Info>Virtual disk information</Info>',
    `    <Disk ovf:capacity="${cap.value}" ovf:capacityAllocationUnits="${cap.units}" ovf:diskId="${DISK_ID}" ovf:fileRef="${FILE_ID}" ovf:format="${STREAM_OPTIMIZED_FORMAT}"` +
      (spec.disk.populatedBytes !== undefined ? ` ovf:populatedSize="${spec.disk.populatedBytes}"` : '') +
      '/>',
    '  </DiskSection>',
    '  <NetworkSection>',
    '    <Info>The list of logical networks</Info>',
    `    <Network ovf:name="${attr(network)}">`,
    `      <Description>The ${escapeXml(network)} network</Description>`,
    '    </Network>',
    '  </NetworkSection>',
    `  <VirtualSystem ovf:id="${attr(spec.name)}">`,
    '    <Info>A virtual machine</Info>',
    `    <Name>${escapeXml(spec.name)}</Name>`,
  );

  if (spec.annotation !== undefined) {
    push(
      '    <AnnotationSection>',
      '      <Info>A human-readable annotation</Info>',
      `      <Annotation>${escapeXml(spec.annotation)}</Annotation>`,
      '    </AnnotationSection>',
    );
  }

  const props = spec.properties ?? [];
  if (spec.product !== undefined || props.length) push(...productSection(spec.product ?? {}, props));
  if (spec.eula !== undefined) {
    push('    <EulaSection>', '      <Info>An end-user license agreement</Info>', `      <License>${escapeXml(spec.eula)}</License>`, '    </EulaSection>');
  }

  push(
    `    <OperatingSystemSection ovf:id="${spec.os.cimId}" vmw:osType="${attr(spec.os.vmwOsType)}">`,
    '      <Info>The kind of installed guest operating system</Info>',
    `      <Description>${escapeXml(spec.os.description)}</Description>`,
    '    </OperatingSystemSection>',
    props.length ? `    <VirtualHardwareSection ovf:transport="${OVF_TRANSPORTS}">` : '    <VirtualHardwareSection>',
    '      <Info>Virtual hardware requirements</Info>',
    '      <System>',
    // VSSD's sequence is alphabetical as well.
    '        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>',
    '        <vssd:InstanceID>0</vssd:InstanceID>',
    `        <vssd:VirtualSystemIdentifier>${escapeXml(spec.name)}</vssd:VirtualSystemIdentifier>`,
    `        <vssd:VirtualSystemType>vmx-${String(vmx).padStart(2, '0')}</vssd:VirtualSystemType>`,
    '      </System>',
  );

  const indent = '      ';
  const scsiId = 3;
  push(
    item(
      {
        AllocationUnits: 'hertz * 10^6',
        Description: 'Number of Virtual CPUs',
        ElementName: `${spec.cpus} virtual CPU(s)`,
        InstanceID: 1,
        ResourceType: 3,
        VirtualQuantity: spec.cpus,
        coresPerSocket: coresPerSocket(spec.cpus),
      },
      indent,
    ),
    item(
      {
        AllocationUnits: 'byte * 2^20',
        Description: 'Memory Size',
        ElementName: `${spec.memoryMiB}MB of memory`,
        InstanceID: 2,
        ResourceType: 4,
        VirtualQuantity: spec.memoryMiB,
      },
      indent,
    ),
    item(
      {
        Address: 0,
        Description: 'SCSI Controller',
        ElementName: 'SCSI Controller 0',
        InstanceID: scsiId,
        ResourceSubType: scsi,
        ResourceType: 6,
      },
      indent,
    ),
    item(
      {
        AddressOnParent: 0,
        ElementName: 'Hard Disk 1',
        HostResource: `ovf:/disk/${DISK_ID}`,
        InstanceID: 4,
        Parent: scsiId,
        ResourceType: 17,
      },
      indent,
    ),
    item(
      {
        AutomaticAllocation: true,
        Connection: network,
        Description: `${nic} ethernet adapter on "${network}"`,
        ElementName: 'Network adapter 1',
        InstanceID: 5,
        ResourceSubType: nic,
        ResourceType: 10,
      },
      indent,
    ),
    ...[...cdromItems(spec.firmware), ...standardDeviceItems(), ...(spec.serial ? [serialPortItem()] : [])].map((d) => item(d, indent)),
    ...VM_CONFIG.map(([key, value]) => vmwConfig(key, value, indent)),
    vmwConfig('firmware', spec.firmware, indent),
  );
  // Off unless asked: without --secure-boot the EFI image is an unsigned GRUB the firmware would refuse.
  if (spec.firmware === 'efi') push(vmwConfig('bootOptions.efiSecureBootEnabled', spec.secureBoot ? 'true' : 'false', indent));

  push('    </VirtualHardwareSection>', '  </VirtualSystem>', '</Envelope>', '');
  return out.join('\n');
}
