/**
 * The CD-ROM of vSphere's `iso` transport as c2v makes it: read back with isoinfo (genisoimage's reader), and
 * the environment document on it parsed by libxml2, a real XML parser, so that what the guest's agent reads is
 * exactly what was given.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isoCommand, isoTool, makeIso } from '../../src/adapters/iso.js';
import { buildOvfEnvironment, OVF_ENV_FILE, OVF_ENV_VOLUME } from '../../src/formats/ovf-env.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-ovf-env-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The file at `name` in the ISO's root, through its Rock Ridge names. */
function extract(iso: string, name: string): Buffer {
  return execFileSync('isoinfo', ['-i', iso, '-R', '-x', `/${name}`], { maxBuffer: 64 * 2 ** 20 });
}

function volumeId(iso: string): string | undefined {
  return /^Volume id: (.*)$/m.exec(execFileSync('isoinfo', ['-i', iso, '-d'], { encoding: 'utf8' }))?.[1];
}

function rootNames(iso: string, flag: '-R' | '-J'): string[] {
  const listing = execFileSync('isoinfo', ['-i', iso, flag, '-f'], { encoding: 'utf8' });
  return listing.split('\n').filter(Boolean).sort();
}

/** One attribute of the nth Property, as libxml2 reads it (namespaces matched by local name). */
function propertyAttr(file: string, n: number, attr: string): string {
  const expr = `string(//*[local-name()="PropertySection"]/*[local-name()="Property"][${n}]/@*[local-name()="${attr}"])`;
  const r = spawnSync('xmllint', ['--nonet', '--xpath', expr, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`xmllint: ${r.stderr}`);
  // xmllint ends a string result with one newline of its own.
  return r.stdout.replace(/\n$/, '');
}

describe('the OVF environment CD-ROM', () => {
  const properties = [
    { key: 'c2v.hostname', value: 'web-01' },
    { key: 'c2v.root_password', value: `p"a'ss<w>&rd` },
    { key: 'app.MOTD', value: 'line 1\nline 2\r\n\tindented  é 中 😀\n' },
    { key: 'app.EMPTY', value: '' },
  ];
  const xml = buildOvfEnvironment({ properties, adapters: [{ mac: '52:54:00:12:34:56', network: 'VM Network' }], platform: { kind: 'QEMU', version: '1', vendor: 'c2v' } });

  it('is labelled "OVF ENV" and holds ovf-env.xml at its root, byte for byte, under Rock Ridge and Joliet names', async () => {
    const iso = path.join(tmp, 'env.iso');
    await makeIso([{ name: OVF_ENV_FILE, content: xml }], iso);
    expect(volumeId(iso)).toBe(OVF_ENV_VOLUME);
    expect(extract(iso, 'ovf-env.xml').equals(Buffer.from(xml, 'utf8'))).toBe(true);
    expect(rootNames(iso, '-R')).toEqual(['/ovf-env.xml']);
    expect(rootNames(iso, '-J')).toEqual(['/ovf-env.xml']);
    expect(execFileSync('isoinfo', ['-i', iso, '-R', '-l'], { encoding: 'utf8' })).toMatch(/-r--r--r--\s+1\s+0\s+0\s+\d+ .* ovf-env\.xml/);
  });

  it('carries a document that libxml2 parses back to the exact values', () => {
    const file = path.join(tmp, 'ovf-env.xml');
    writeFileSync(file, xml);
    const lint = spawnSync('xmllint', ['--noout', '--nonet', file], { encoding: 'utf8' });
    expect(lint.stderr).toBe('');
    properties.forEach((p, i) => {
      expect(propertyAttr(file, i + 1, 'key')).toBe(p.key);
      expect(propertyAttr(file, i + 1, 'value')).toBe(p.value);
    });
  });

  it("takes a folder's files, binary ones too, and another label", async () => {
    const dir = path.join(tmp, 'folder');
    mkdirSync(dir);
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) & 0xff));
    writeFileSync(path.join(dir, 'data.bin'), bytes);
    writeFileSync(path.join(dir, 'user-data'), '#cloud-config\n');
    const iso = path.join(tmp, 'folder.iso');
    await makeIso(dir, iso, 'cidata');
    expect(volumeId(iso)).toBe('cidata');
    expect(extract(iso, 'data.bin').equals(bytes)).toBe(true);
    expect(extract(iso, 'user-data').toString()).toBe('#cloud-config\n');
  });

  it('refuses names that are not plain file names and labels ISO 9660 cannot hold', async () => {
    await expect(makeIso([{ name: '../x', content: '' }], path.join(tmp, 'bad.iso'))).rejects.toThrow('an ISO root file needs a plain name, got "../x"');
    await expect(makeIso([], path.join(tmp, 'bad.iso'), 'x'.repeat(33))).rejects.toThrow(/volume label must be 1-32 characters/);
  });
});

describe('the ISO mastering tool', () => {
  it('is genisoimage, else xorriso as mkisofs, else a missing host tool named with its Debian package', async () => {
    const only = (names: string[]) => {
      const dir = mkdtempSync(path.join(tmp, 'path-'));
      for (const n of names) {
        writeFileSync(path.join(dir, n), '#!/bin/sh\n');
        chmodSync(path.join(dir, n), 0o755);
      }
      return dir;
    };
    expect(await isoTool(only(['genisoimage', 'xorriso']))).toBe('genisoimage');
    expect(await isoTool(only(['xorriso']))).toBe('xorriso');
    const missing = await isoTool(only([])).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'tool', exitCode: 6 });
    expect((missing as Error).message).toBe('genisoimage is not installed: install the Debian package genisoimage (or xorriso) (or run scripts/install-host-deps)');
    expect(isoCommand('xorriso', '/d', '/o.iso', 'OVF ENV')).toEqual({
      file: 'xorriso',
      args: ['-as', 'mkisofs', '-quiet', '-input-charset', 'utf-8', '-r', '-J', '-V', 'OVF ENV', '-o', '/o.iso', '/d'],
    });
  });
});
