/**
 * templates/guest/ovf-env.awk, the guest agent's OVF environment parser, under every awk the host has: mawk
 * (Debian's), busybox awk (Alpine's), gawk (RHEL's) and the one true awk. Each must give every value back byte for
 * byte, in files of their own, and write nothing for a document it cannot read.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { renderTemplate } from '../../src/plan/template.js';
import { OVF_ENV_FIXTURES as FIXTURES, QUIRKS, VSPHERE, VSPHERE_MACS } from '../helpers/ovf-env-fixtures.js';

const has = (argv: string[]) => spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' }).status === 0;
const AWKS = [['mawk'], ['busybox', 'awk'], ['gawk'], ['original-awk']].filter((a) => has([...a, 'BEGIN { exit 0 }']));

let work: string;
let awkFile: string;
beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'c2v-ovf-env-'));
  awkFile = path.join(work, 'ovf-env.awk');
  writeFileSync(awkFile, renderTemplate((await loadTemplates()).ovfEnvAwk, {}));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The files the parser wrote, by name. */
function files(dir: string): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f))]));
}

describe.each(AWKS.map((a) => [a.join(' '), a]))('ovf-env.awk under %s', (_name, awk) => {
  function parse(xml: string) {
    const dir = mkdtempSync(path.join(work, 'awk-'));
    mkdirSync(path.join(dir, 'props'));
    const r = spawnSync(awk[0], [...awk.slice(1), '-f', awkFile, xml], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, LC_ALL: 'C', C2V_PROPS: path.join(dir, 'props'), C2V_MACS: path.join(dir, 'macs') },
    });
    const props = files(path.join(dir, 'props'));
    const macs = existsSync(path.join(dir, 'macs')) ? readFileSync(path.join(dir, 'macs'), 'utf8') : undefined;
    return { status: r.status, stdout: r.stdout, props, macs };
  }
  const bytes = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Buffer.from(v, 'utf8')]));

  it('reads vSphere’s environment byte for byte: entities, character references, a value over several lines', () => {
    const r = parse(path.join(FIXTURES, 'vsphere.xml'));
    expect(r.stdout).toBe('');
    expect(r.status).toBe(0);
    expect(r.props).toEqual(bytes(VSPHERE));
    expect(r.macs).toBe(VSPHERE_MACS);
  });

  it('reads another writer’s shape the same way, and skips a sibling’s properties, a bad key and a bad MAC', () => {
    const r = parse(path.join(FIXTURES, 'quirks.xml'));
    expect(r.status).toBe(0);
    expect(r.props).toEqual(bytes(QUIRKS));
    expect(r.macs).toBe('00:50:56:ab:cd:ef\n');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      `ignored a property whose key is not letters, digits, '.', '_' and '-': "../../x"`,
      'ignored an adapter whose MAC address is not xx:xx:xx:xx:xx:xx: "not-a-mac"',
    ]);
  });

  it('writes nothing for a document that is not a well-formed environment', () => {
    for (const [name, text] of [
      ['truncated', '<Environment><PropertySection><Property oe:key="a" oe:value="b'],
      ['no-environment', '<Envelope><Property key="a" value="b"/></Envelope>'],
      ['unquoted', '<Environment><Property key=a value="b"/></Environment>'],
      ['empty', ''],
    ]) {
      const file = path.join(work, `${name}.xml`);
      writeFileSync(file, text);
      const r = parse(file);
      expect(r.status, name).toBe(2);
      expect(r.props, name).toEqual({});
      expect(r.macs, name).toBeUndefined();
      expect(r.stdout, name).toMatch(/^not a well-formed OVF environment \(.*\): ignored\n$/);
    }
  });
});

if (AWKS.length === 0) it.skip('ovf-env.awk: skipped, no awk on this host (apt-get install mawk busybox gawk)', () => {});
