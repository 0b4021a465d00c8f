import { describe, expect, it } from 'vitest';
import { buildOvfEnvironment, environmentFor } from '../../src/formats/ovf-env.js';
import type { DeclaredProperty } from '../../src/plan/ovf-read.js';

/**
 * A strict reader of what an XML parser would make of the environment's Property elements: an attribute value
 * may hold no raw '<', '&' or '"' beyond well-formed references, and no raw tab or line end, which a parser
 * would turn into a space (so a value holding one would not come back as written).
 */
function parseEnvironment(xml: string): { key: string; value: string }[] {
  const ATTR = /^(?:[^<&"\t\n\r]|&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)*$/;
  const decode = (v: string) => {
    expect(v).toMatch(ATTR);
    return v.replace(/&(?:#x([0-9a-fA-F]+)|#(\d+)|(\w+));/g, (_m, hex: string, dec: string, name: string) =>
      name ? ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[name] : String.fromCodePoint(parseInt(hex ?? dec, hex ? 16 : 10)),
    );
  };
  const section = /<PropertySection>([\s\S]*?)<\/PropertySection>/.exec(xml)?.[1] ?? '';
  return [...section.matchAll(/<Property oe:key="([^"]*)" oe:value="([^"]*)"\/>/g)].map((m) => ({ key: decode(m[1]), value: decode(m[2]) }));
}

const declared: DeclaredProperty[] = [
  { key: 'c2v.hostname', type: 'string', value: '', password: false, label: 'Host name' },
  { key: 'c2v.root_password', type: 'string', value: '', password: true },
  { key: 'app.PORT', type: 'int', value: '8080', password: false },
  { key: 'app.DEBUG', type: 'boolean', value: 'false', password: false },
  { key: 'app.RATIO', type: 'real', value: '0.5', password: false },
  { key: 'app.WORKERS', type: 'uint8', value: '2', password: false },
];

describe('the OVF environment document', () => {
  it("is vSphere's shape: platform, properties, then the NICs from unit 7", () => {
    const xml = buildOvfEnvironment({
      properties: [{ key: 'c2v.hostname', value: 'web-01' }],
      adapters: [{ mac: '52:54:00:12:34:56', network: 'VM Network' }, { mac: '52:54:00:12:34:57', network: 'Backend' }],
      platform: { kind: 'QEMU', version: 'c2v verify', vendor: 'c2v' },
    });
    expect(xml).toBe(`<?xml version="1.0" encoding="UTF-8"?>
<Environment
     xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:ve="http://www.vmware.com/schema/ovfenv"
     oe:id="">
   <PlatformSection>
      <Kind>QEMU</Kind>
      <Version>c2v verify</Version>
      <Vendor>c2v</Vendor>
      <Locale>en</Locale>
   </PlatformSection>
   <PropertySection>
         <Property oe:key="c2v.hostname" oe:value="web-01"/>
   </PropertySection>
   <ve:EthernetAdapterSection>
      <ve:Adapter ve:mac="52:54:00:12:34:56" ve:network="VM Network" ve:unitNumber="7"/>
      <ve:Adapter ve:mac="52:54:00:12:34:57" ve:network="Backend" ve:unitNumber="8"/>
   </ve:EthernetAdapterSection>
</Environment>
`);
  });

  it('leaves out the platform and adapter sections when not given, and keeps an empty property section', () => {
    const xml = buildOvfEnvironment({ properties: [] });
    expect(xml).not.toMatch(/PlatformSection|EthernetAdapterSection/);
    expect(xml).toContain('   <PropertySection>\n   </PropertySection>\n</Environment>\n');
  });

  it('gives back every value exactly: quotes, markup characters, tabs and line ends, non-ASCII', () => {
    const values = ['', 'plain', `it's "quoted"`, '<b>&amp;</b> & more', 'line 1\nline 2\r\nend\t(tab)', '  spaced  ', 'é 中 😀', 'x\n'];
    const properties = values.map((value, i) => ({ key: `app.V${i}`, value }));
    const xml = buildOvfEnvironment({ properties, adapters: [{ mac: '52:54:00:12:34:56', network: 'Net "A" & <B>' }] });
    expect(parseEnvironment(xml)).toEqual(properties);
    expect(xml).toContain('ve:network="Net &quot;A&quot; &amp; &lt;B&gt;"');
  });
});

describe('the environment for a deploy: declared properties, defaults, overrides', () => {
  it('lists every declared property in order, with the given value or else its default', () => {
    expect(environmentFor(declared, { 'app.PORT': '9090', 'c2v.hostname': 'web-01' })).toEqual([
      { key: 'c2v.hostname', value: 'web-01' },
      { key: 'c2v.root_password', value: '' },
      { key: 'app.PORT', value: '9090' },
      { key: 'app.DEBUG', value: 'false' },
      { key: 'app.RATIO', value: '0.5' },
      { key: 'app.WORKERS', value: '2' },
    ]);
    expect(environmentFor(declared, {}).map((p) => p.value)).toEqual(['', '', '8080', 'false', '0.5', '2']);
  });

  it('refuses a key the OVF does not declare, naming it and the declared ones, as a usage error', () => {
    const err = (() => {
      try {
        environmentFor(declared, { 'app.PROT': '1' });
      } catch (e) {
        return e as { code: string; message: string; exitCode: number };
      }
    })();
    expect(err).toMatchObject({ code: 'usage', exitCode: 2 });
    expect(err?.message).toBe(
      '--property app.PROT: the OVA declares no such property (it declares c2v.hostname, c2v.root_password, app.PORT, app.DEBUG, app.RATIO, app.WORKERS)',
    );
    const many = Array.from({ length: 12 }, (_, i) => ({ key: `k${i}`, type: 'string', value: '', password: false }));
    expect(() => environmentFor(many, { x: '' })).toThrow(/\(it declares k0, k1, k2, k3, k4, k5, k6, k7 and 4 more\)$/);
    expect(() => environmentFor([], { x: '' })).toThrow('--property x: the OVA declares no such property (it declares no properties)');
  });

  it('wants an integer for int properties, true or false for booleans, a number for reals, in one line', () => {
    expect(() => environmentFor(declared, { 'app.PORT': '80a' })).toThrow('--property app.PORT must be an integer, like 8080 (its type is int; got "80a")');
    expect(() => environmentFor(declared, { 'app.PORT': '' })).toThrow(/must be an integer/);
    expect(() => environmentFor(declared, { 'app.DEBUG': 'yes' })).toThrow('--property app.DEBUG must be true or false (its type is boolean; got "yes")');
    expect(() => environmentFor(declared, { 'app.DEBUG': 'True' })).toThrow(/must be true or false/);
    expect(() => environmentFor(declared, { 'app.RATIO': 'half' })).toThrow('--property app.RATIO must be a number (its type is real; got "half")');
    expect(() => environmentFor(declared, { 'app.WORKERS': '-1' })).toThrow('--property app.WORKERS must be a whole number, 0 or more (its type is uint8; got "-1")');
    const long = `1\n${'x'.repeat(100)}`;
    expect(() => environmentFor(declared, { 'app.PORT': long })).toThrow(/^--property app\.PORT must be an integer, like 8080 \(its type is int; got "1\\nx+…"\)$/);
    expect(environmentFor(declared, { 'app.PORT': '-1', 'app.DEBUG': 'true', 'app.RATIO': '1e3' }).map((p) => p.value).slice(2, 5)).toEqual(['-1', 'true', '1e3']);
  });
});
