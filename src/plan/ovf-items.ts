/**
 * The virtual hardware Items of c2v's OVF, each written as vSphere's own exports write it (VMware's hardware
 * templates and vCenter exports; see README, "What the OVF declares"). Pure.
 */
import { escapeXml, xmlAttr } from '../formats/xml.js';

// The order CIM_ResourceAllocationSettingData's xs:sequence requires (alphabetical, but taken from the
// schema rather than from a sort, so a property name that sorts differently cannot slip through).
const RASD_ORDER = [
  'Address',
  'AddressOnParent',
  'AllocationUnits',
  'AutomaticAllocation',
  'AutomaticDeallocation',
  'Caption',
  'Connection',
  'ConsumerVisibility',
  'Description',
  'ElementName',
  'HostResource',
  'InstanceID',
  'Limit',
  'MappingBehavior',
  'OtherResourceType',
  'Parent',
  'PoolID',
  'Reservation',
  'ResourceSubType',
  'ResourceType',
  'VirtualQuantity',
  'VirtualQuantityUnits',
  'Weight',
] as const;
type RasdProperty = (typeof RASD_ORDER)[number];

export type Rasd = Partial<Record<RasdProperty, string | number | boolean>> & {
  ElementName: string;
  InstanceID: number;
  /** ovf:required="false": a host that lacks the device may still import the VM without it. */
  optional?: true;
  /** VMware's own settings of the device, after the rasd elements (the schema's xs:any of another namespace). */
  config?: readonly (readonly [key: string, value: string])[];
  coresPerSocket?: number;
};

export function item(props: Rasd, indent: string): string {
  const lines = RASD_ORDER.filter((key) => props[key] !== undefined).map(
    (key) => `${indent}  <rasd:${key}>${escapeXml(props[key] as string | number | boolean)}</rasd:${key}>`,
  );
  if (props.coresPerSocket !== undefined) lines.push(`${indent}  <vmw:CoresPerSocket ovf:required="false">${props.coresPerSocket}</vmw:CoresPerSocket>`);
  for (const [key, value] of props.config ?? []) lines.push(vmwConfig(key, value, `${indent}  `));
  return [`${indent}<Item${props.optional ? ' ovf:required="false"' : ''}>`, ...lines, `${indent}</Item>`].join('\n');
}

export function vmwConfig(key: string, value: string, indent: string): string {
  return `${indent}<vmw:Config ovf:required="false" vmw:key="${xmlAttr(key)}" vmw:value="${xmlAttr(value)}"/>`;
}

/** Instance ids of the devices after the five fixed ones (CPU, memory, SCSI, disk, NIC). */
const ID = { cdromController: 6, cdrom: 7, video: 8, vmci: 9, serial: 10 } as const;

/**
 * A CD-ROM drive, as vSphere exports one: on IDE for BIOS guests, on SATA (AHCI) for EFI ones. The `iso`
 * transport needs it, and an admin can attach an ISO without editing the VM.
 */
export function cdromItems(firmware: 'bios' | 'efi'): Rasd[] {
  const controller: Rasd =
    firmware === 'efi'
      ? { Address: 0, Description: 'SATA Controller', ElementName: 'SATA Controller 0', InstanceID: ID.cdromController, ResourceSubType: 'vmware.sata.ahci', ResourceType: 20 }
      : { Address: 0, Description: 'IDE Controller', ElementName: 'IDE Controller 0', InstanceID: ID.cdromController, ResourceType: 5 };
  const drive: Rasd = {
    AddressOnParent: 0,
    AutomaticAllocation: false,
    ElementName: 'CD/DVD drive 1',
    InstanceID: ID.cdrom,
    Parent: ID.cdromController,
    ResourceSubType: 'vmware.cdrom.remotepassthrough',
    ResourceType: 15,
    optional: true,
    config: [['backing.exclusive', 'false']],
  };
  return [controller, drive];
}

/** The video card and the VMCI device every VM vSphere creates has; written so that the import keeps them as they are. */
export function standardDeviceItems(): Rasd[] {
  return [
    {
      AutomaticAllocation: false,
      ElementName: 'Video card',
      InstanceID: ID.video,
      ResourceType: 24,
      optional: true,
      config: [
        ['enable3DSupport', 'false'],
        ['useAutoDetect', 'false'],
        ['videoRamSizeInKB', '4096'],
      ],
    },
    {
      AutomaticAllocation: false,
      ElementName: 'VMCI device',
      InstanceID: ID.vmci,
      ResourceSubType: 'vmware.vmci',
      ResourceType: 1,
      optional: true,
      config: [['allowUnrestrictedCommunication', 'false']],
    },
  ];
}

/**
 * A serial port backed by a host device and not connected at power on: the operator picks its backing (a
 * network serial port, a file) in vSphere, where it is known; the guest already has a console and getty there.
 */
export function serialPortItem(): Rasd {
  return {
    AutomaticAllocation: false,
    ElementName: 'Serial port 1',
    InstanceID: ID.serial,
    ResourceSubType: 'vmware.serialport.device',
    ResourceType: 21,
    optional: true,
    config: [['yieldOnPoll', 'true']],
  };
}

/**
 * VM settings vSphere exports: power operations through VMware Tools ("Shut Down Guest", "Restart Guest" rather
 * than a cut of power), Tools' scripts around power changes, and the guest's clock set from the host (many
 * appliances have no NTP client; the c2v.ntp property adds one's servers where there is).
 */
export const VM_CONFIG: readonly (readonly [string, string])[] = [
  ['powerOpInfo.powerOffType', 'soft'],
  ['powerOpInfo.resetType', 'soft'],
  ['powerOpInfo.suspendType', 'hard'],
  ['powerOpInfo.standbyAction', 'checkpoint'],
  ['tools.afterPowerOn', 'true'],
  ['tools.afterResume', 'true'],
  ['tools.beforeGuestShutdown', 'true'],
  ['tools.beforeGuestStandby', 'true'],
  ['tools.syncTimeWithHost', 'true'],
  ['tools.toolsUpgradePolicy', 'manual'],
];

/** One socket of all the vCPUs, up to 64 cores a socket (the most every ESXi c2v targets allows). */
export function coresPerSocket(cpus: number): number | undefined {
  if (cpus <= 1) return undefined;
  for (let cores = Math.min(cpus, 64); cores > 1; cores--) if (cpus % cores === 0) return cores;
  return 1;
}
