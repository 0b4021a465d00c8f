/**
 * The few facts `c2v verify` needs from an OVF descriptor: which disk file, which controller, NIC and
 * firmware, and the deploy-time properties it declares. A tolerant reader for the descriptors c2v writes and
 * the common shapes others write.
 */
export interface DeclaredProperty {
  /** The key the OVF environment uses: `[class.]key[.instance]`, as the ProductSection qualifies it. */
  key: string;
  type: string;
  /** The default (`ovf:value`); empty when absent. */
  value: string;
  password: boolean;
  label?: string;
}

export interface OvfHardware {
  diskFile?: string;
  scsiSubType?: string;
  sata: boolean;
  nicSubType?: string;
  /** The network the NIC connects to. */
  network?: string;
  firmware: 'bios' | 'efi';
  /** bootOptions.efiSecureBootEnabled=true: the firmware enforces Secure Boot. */
  secureBoot: boolean;
  memoryMiB?: number;
  properties: DeclaredProperty[];
}

function items(xml: string): string[] {
  return [...xml.matchAll(/<(?:ovf:)?Item\b[^>]*>([\s\S]*?)<\/(?:ovf:)?Item>/g)].map((m) => m[1]);
}

function field(item: string, name: string): string | undefined {
  return new RegExp(`<rasd:${name}>([^<]*)</rasd:${name}>`).exec(item)?.[1]?.trim();
}

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML's five named entities and numeric character references; anything else is left as written. */
export function unescapeXml(text: string): string {
  return text.replace(/&(?:#x([0-9a-fA-F]+)|#(\d+)|(amp|lt|gt|quot|apos));/g, (whole, hex: string, dec: string, name: string) => {
    if (name) return NAMED_ENTITIES[name];
    const code = parseInt(hex ?? dec, hex ? 16 : 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

// Quoted values may hold a raw '>' (XML allows it in attributes), so a start tag ends at the first unquoted one.
const START_TAG_BODY = String.raw`((?:[^>"']|"[^"]*"|'[^']*')*?)`;

/** A start tag's attributes by local name, values unescaped; `ovf:` (or no prefix) wins over other prefixes. */
function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/(?:([\w.-]+):)?([\w.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    const own = m[1] === undefined || m[1] === 'ovf';
    if (!own && out.has(m[2])) continue;
    // XML attribute normalisation: literal line ends and tabs read as spaces; only character references keep them.
    out.set(m[2], unescapeXml((m[3] ?? m[4]).replace(/\r\n?|[\n\t]/g, ' ')));
  }
  return out;
}

function textOf(element: string | undefined): string | undefined {
  if (element === undefined) return undefined;
  const cdata = /^\s*<!\[CDATA\[([\s\S]*?)\]\]>\s*$/.exec(element);
  return cdata ? cdata[1] : unescapeXml(element).trim();
}

/** Every Property of every ProductSection, in document order. */
export function readOvfProperties(xml: string): DeclaredProperty[] {
  const out: DeclaredProperty[] = [];
  const sections = new RegExp(String.raw`<(?:[\w.-]+:)?ProductSection\b${START_TAG_BODY}>([\s\S]*?)</(?:[\w.-]+:)?ProductSection>`, 'g');
  const property = new RegExp(String.raw`<(?:[\w.-]+:)?Property\b${START_TAG_BODY}(/?)>`, 'g');
  for (const section of xml.matchAll(sections)) {
    const sectionAttrs = attributes(section[1]);
    const cls = sectionAttrs.get('class');
    const instance = sectionAttrs.get('instance');
    const body = section[2];
    for (const p of body.matchAll(property)) {
      const a = attributes(p[1]);
      const key = a.get('key');
      if (!key) continue;
      let label: string | undefined;
      if (p[2] !== '/') {
        const rest = body.slice(p.index + p[0].length);
        const end = rest.search(/<\/(?:[\w.-]+:)?Property\s*>/);
        const inner = end < 0 ? '' : rest.slice(0, end);
        label = textOf(/<(?:[\w.-]+:)?Label\b[^>]*>([\s\S]*?)<\/(?:[\w.-]+:)?Label>/.exec(inner)?.[1]) || undefined;
      }
      out.push({
        key: [cls, key, instance].filter((s) => s !== undefined && s !== '').join('.'),
        type: a.get('type') || 'string',
        value: a.get('value') ?? '',
        password: a.get('password') === 'true',
        ...(label !== undefined ? { label } : {}),
      });
    }
  }
  return out;
}

/** The value of a `vmw:Config` entry, its attributes in either order. */
function vmwConfigValue(xml: string, key: string): string | undefined {
  for (const m of xml.matchAll(/<vmw:Config\b([^>]*)\/?>/g)) {
    const attrs = m[1];
    if (/\bvmw:key="([^"]*)"/.exec(attrs)?.[1] === key) return /\bvmw:value="([^"]*)"/.exec(attrs)?.[1];
  }
  return undefined;
}

export function readOvfHardware(xml: string): OvfHardware {
  const hw: OvfHardware = { sata: false, firmware: 'bios', secureBoot: false, properties: readOvfProperties(xml) };
  hw.diskFile = /<(?:ovf:)?File\b[^>]*\bovf:href="([^"]+)"/.exec(xml)?.[1];
  const all = items(xml).map((item) => ({
    type: field(item, 'ResourceType'),
    id: field(item, 'InstanceID'),
    parent: field(item, 'Parent'),
    subType: field(item, 'ResourceSubType'),
    quantity: field(item, 'VirtualQuantity'),
    connection: field(item, 'Connection'),
  }));
  for (const item of all) {
    if (item.type === '10') {
      hw.nicSubType = item.subType;
      hw.network = item.connection === undefined ? undefined : unescapeXml(item.connection);
    }
    if (item.type === '4') {
      const q = Number(item.quantity);
      if (Number.isFinite(q)) hw.memoryMiB = q;
    }
  }
  // The disk's own controller: a descriptor may also carry a SATA or IDE controller for its CD-ROM drive.
  const disk = all.find((i) => i.type === '17');
  const controller = disk?.parent !== undefined ? all.find((i) => i.id === disk.parent) : undefined;
  if (controller) {
    if (controller.type === '6') hw.scsiSubType = controller.subType;
    hw.sata = controller.type === '20';
  } else {
    for (const item of all) {
      if (item.type === '6') hw.scsiSubType = item.subType;
      if (item.type === '20') hw.sata = true;
    }
  }
  if (vmwConfigValue(xml, 'firmware') === 'efi') hw.firmware = 'efi';
  hw.secureBoot = hw.firmware === 'efi' && vmwConfigValue(xml, 'bootOptions.efiSecureBootEnabled') === 'true';
  return hw;
}
