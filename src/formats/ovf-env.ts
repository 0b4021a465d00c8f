import { C2vError } from '../errors.js';
import { escapeXml, xmlAttr as attr } from './xml.js';
import type { DeclaredProperty } from '../plan/ovf-read.js';

/**
 * The OVF environment document (ovf-env.xml) that vSphere hands a guest for its deploy-time properties, on a
 * CD-ROM (the `iso` transport) or in guestinfo.ovfEnv: DSP0243's Environment, in the shape and namespaces
 * vSphere itself writes, so the in-guest agent reads what `c2v verify` gives it exactly as it reads vSphere's.
 */
export interface OvfEnvironment {
  properties: readonly { key: string; value: string }[];
  adapters?: readonly { mac: string; network: string }[];
  platform?: { kind: string; version: string; vendor: string };
}

export const OVF_ENV_FILE = 'ovf-env.xml';
/** The volume label vSphere gives the ISO of the `iso` transport; guests look for it by this name. */
export const OVF_ENV_VOLUME = 'OVF ENV';

/** vSphere numbers a VM's PCI NICs from unit 7. */
const FIRST_NIC_UNIT = 7;

export function buildOvfEnvironment(env: OvfEnvironment): string {
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Environment',
    '     xmlns="http://schemas.dmtf.org/ovf/environment/1"',
    '     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
    '     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"',
    '     xmlns:ve="http://www.vmware.com/schema/ovfenv"',
    '     oe:id="">',
  ];
  if (env.platform) {
    const p = env.platform;
    lines.push(
      '   <PlatformSection>',
      `      <Kind>${escapeXml(p.kind)}</Kind>`,
      `      <Version>${escapeXml(p.version)}</Version>`,
      `      <Vendor>${escapeXml(p.vendor)}</Vendor>`,
      '      <Locale>en</Locale>',
      '   </PlatformSection>',
    );
  }
  lines.push('   <PropertySection>');
  for (const p of env.properties) lines.push(`         <Property oe:key="${attr(p.key)}" oe:value="${attr(p.value)}"/>`);
  lines.push('   </PropertySection>');
  if (env.adapters?.length) {
    lines.push('   <ve:EthernetAdapterSection>');
    env.adapters.forEach((a, i) =>
      lines.push(`      <ve:Adapter ve:mac="${attr(a.mac)}" ve:network="${attr(a.network)}" ve:unitNumber="${FIRST_NIC_UNIT + i}"/>`),
    );
    lines.push('   </ve:EthernetAdapterSection>');
  }
  lines.push('</Environment>', '');
  return lines.join('\n');
}

/** The usage error for an unknown key lists this many declared keys before "and N more". */
const LISTED_KEYS = 8;

function declaredList(declared: readonly DeclaredProperty[]): string {
  if (declared.length === 0) return 'it declares no properties';
  const keys = declared.slice(0, LISTED_KEYS).map((p) => p.key);
  const more = declared.length - keys.length;
  return `it declares ${keys.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

/** A value as an error message may quote it: on one line, and short. */
function quoted(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 42 ? `${text.slice(0, 40)}…"` : text;
}

/** A value vSphere's deploy wizard would refuse for the property's type, as a one-line usage error. */
function checkType(p: DeclaredProperty, value: string): void {
  const type = p.type.toLowerCase();
  const wrong = (want: string) => new C2vError('usage', `--property ${p.key} must be ${want} (its type is ${p.type}; got ${quoted(value)})`);
  if (type === 'boolean') {
    if (value !== 'true' && value !== 'false') throw wrong('true or false');
  } else if (/^(u?int|sint)(8|16|32|64)?$/.test(type)) {
    const unsigned = type.startsWith('u');
    if (!(unsigned ? /^\+?\d+$/ : /^[+-]?\d+$/).test(value)) throw wrong(unsigned ? 'a whole number, 0 or more' : 'an integer, like 8080');
  } else if (type === 'real') {
    if (value.trim() === '' || !Number.isFinite(Number(value))) throw wrong('a number');
  }
}

/**
 * What vSphere would put in the environment: every declared property, with the value the admin gave or else its
 * default. Giving a key the OVF does not declare is refused, as vSphere's deploy would never pass it on.
 */
export function environmentFor(declared: readonly DeclaredProperty[], overrides: Readonly<Record<string, string>>): { key: string; value: string }[] {
  const byKey = new Map(declared.map((p) => [p.key, p]));
  for (const [key, value] of Object.entries(overrides)) {
    const p = byKey.get(key);
    if (!p) throw new C2vError('usage', `--property ${key}: the OVA declares no such property (${declaredList(declared)})`);
    checkType(p, value);
  }
  return declared.map((p) => ({ key: p.key, value: Object.hasOwn(overrides, p.key) ? overrides[p.key] : p.value }));
}
