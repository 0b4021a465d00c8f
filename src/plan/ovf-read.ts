/**
 * The few facts `c2v verify` needs from an OVF descriptor: which disk file, which controller, NIC and
 * firmware. A tolerant reader for the descriptors c2v writes and the common shapes others write.
 */
export interface OvfHardware {
  diskFile?: string;
  scsiSubType?: string;
  sata: boolean;
  nicSubType?: string;
  firmware: 'bios' | 'efi';
  memoryMiB?: number;
}

function items(xml: string): string[] {
  return [...xml.matchAll(/<(?:ovf:)?Item\b[^>]*>([\s\S]*?)<\/(?:ovf:)?Item>/g)].map((m) => m[1]);
}

function field(item: string, name: string): string | undefined {
  return new RegExp(`<rasd:${name}>([^<]*)</rasd:${name}>`).exec(item)?.[1]?.trim();
}

export function readOvfHardware(xml: string): OvfHardware {
  const hw: OvfHardware = { sata: false, firmware: 'bios' };
  hw.diskFile = /<(?:ovf:)?File\b[^>]*\bovf:href="([^"]+)"/.exec(xml)?.[1];
  for (const item of items(xml)) {
    const type = field(item, 'ResourceType');
    if (type === '6') hw.scsiSubType = field(item, 'ResourceSubType');
    if (type === '20') hw.sata = true;
    if (type === '10') hw.nicSubType = field(item, 'ResourceSubType');
    if (type === '4') {
      const q = Number(field(item, 'VirtualQuantity'));
      if (Number.isFinite(q)) hw.memoryMiB = q;
    }
  }
  if (/vmw:key="firmware"\s+vmw:value="efi"|vmw:value="efi"\s+vmw:key="firmware"|vmw:key="firmware"[^>]*vmw:value="efi"/.test(xml)) hw.firmware = 'efi';
  return hw;
}
