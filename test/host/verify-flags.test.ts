import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { C2V_BIN } from '../helpers/env.js';
import { PROPERTIES_OVF, writeOva } from '../helpers/verify-ova.js';
import { makeSigningKeys } from '../helpers/openssl-signature.js';
import { StreamingOva } from '../../src/stages/package-ova.js';
import { readSigner } from '../../src/stages/flag-files.js';

/**
 * `c2v verify`'s environment and disk flags, refused before anything is unpacked or booted. The CLI runs with a
 * PATH that holds node alone: a check that came after a boot would fail for want of QEMU (exit 6), not with its
 * own message and exit 2.
 */
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-verify-flags-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const ova = writeOva(path.join(tmp, 'app.ova'), Buffer.alloc(1024));
const bin = path.join(tmp, 'bin');
mkdirSync(bin);
symlinkSync(process.execPath, path.join(bin, 'node'));

async function verify(args: string[], file = ova): Promise<{ exitCode: number; stderr: string }> {
  const r = await execa(process.execPath, [C2V_BIN, 'verify', file, ...args], { reject: false, env: { PATH: bin }, extendEnv: false, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? -1, stderr: String(r.stderr).trim() };
}

const usage = async (args: string[]): Promise<string> => {
  const r = await verify(args);
  expect(r.exitCode, r.stderr).toBe(2);
  return r.stderr;
};

describe('c2v verify: the OVF environment and disk flags', () => {
  it('refuses --property without KEY=, a key given twice, and --ovf-env with --property, in one line each', async () => {
    expect(await usage(['--property', 'PORT'])).toContain('--property must be KEY=VALUE, like app.PORT=8080 (got "PORT")');
    expect(await usage(['--property', '=1'])).toContain('--property must be KEY=VALUE, like app.PORT=8080 (got "=1")');
    expect(await usage(['--property', 'app.PORT=1', '--property', 'app.PORT=2'])).toContain('--property app.PORT is given twice: give each property once');
    expect(await usage(['--ovf-env', 'env.xml', '--property', 'app.PORT=1'])).toContain("--ovf-env and --property do not go together: give the whole environment as a file, or values for the OVA's properties");
    expect(await usage(['--ovf-env', 'a.xml', '--ovf-env', 'b.xml'])).toContain('--ovf-env must name one file');
  });

  it('refuses a --grow-disk that is not a size', async () => {
    expect(await usage(['--grow-disk', 'lots'])).toContain('--grow-disk must be a size like 2G or 512M');
    expect(await usage(['--grow-disk', '0'])).toContain('--grow-disk must be a size like 2G or 512M');
    expect(await usage(['--grow-disk', '1000'])).toContain('--grow-disk must be a whole number of 512-byte sectors, like 2G or 512M');
  });

  it('refuses a property the OVA does not declare, or a value of the wrong type, before any boot', async () => {
    expect(await usage(['--firmware', 'bios', '--property', 'app.PROT=9090'])).toContain(
      '--property app.PROT: the OVA declares no such property (it declares c2v.hostname, c2v.root_password, app.PORT, app.DEBUG)',
    );
    expect(await usage(['--property', 'app.PORT=http'])).toContain('--property app.PORT must be an integer, like 8080 (its type is int; got "http")');
    expect(await usage(['--property', 'app.DEBUG=1'])).toContain('--property app.DEBUG must be true or false (its type is boolean; got "1")');
  });

  it('names an --ovf-env file it cannot read (exit 3)', async () => {
    const r = await verify(['--ovf-env', path.join(tmp, 'missing.xml')]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain(`--ovf-env ${path.join(tmp, 'missing.xml')} cannot be read (ENOENT): name an OVF environment document (ovf-env.xml)`);
  });
});

describe('c2v verify: the package is checked against its manifest and signature before any boot', () => {
  /** A signed OVA as c2v streams it: .ovf, .mf, .cert, then the disk. */
  async function signedOva(name: string): Promise<string> {
    const keys = makeSigningKeys(path.join(tmp, `keys-${name}`));
    const signer = (await readSigner(keys.leafKey, keys.chain))!;
    const file = path.join(tmp, `${name}.ova`);
    const out = await StreamingOva.create(file, {
      ovfName: 'app.ovf',
      mfName: 'app.mf',
      diskName: 'app-disk1.vmdk',
      digest: 'sha256',
      ovf: () => PROPERTIES_OVF,
      signature: { certName: 'app.cert', signer },
    });
    await out.writeDisk(async (sink) => {
      await sink(Buffer.alloc(4096, 7));
      return {};
    });
    await out.finish();
    return file;
  }

  /** One byte of `file` changed where `marker` first occurs (plus `offset`). */
  function tamper(file: string, marker: string | Buffer, offset: number): void {
    const bytes = readFileSync(file);
    const at = bytes.indexOf(marker) + offset;
    expect(at).toBeGreaterThanOrEqual(offset);
    bytes[at] ^= 0x01;
    writeFileSync(file, bytes);
  }

  it('passes an intact signed OVA on to the boot (which fails here for want of QEMU, exit 6)', async () => {
    const r = await verify(['--firmware', 'bios'], await signedOva('intact'));
    expect(r.exitCode, r.stderr).toBe(6);
    expect(r.stderr).not.toMatch(/manifest|\.cert/);
  });

  it('refuses, with exit 3 and before any boot, a disk, descriptor or signature changed by one byte', async () => {
    const disk = await signedOva('disk');
    tamper(disk, Buffer.alloc(64, 7), 10);
    expect(await verify([], disk)).toMatchObject({ exitCode: 3, stderr: expect.stringContaining('app-disk1.vmdk does not match its SHA256 in app.mf: the package was changed or damaged after it was made') });
    const descriptor = await signedOva('descriptor');
    tamper(descriptor, '<OperatingSystemSection', 2);
    expect(await verify([], descriptor)).toMatchObject({ exitCode: 3, stderr: expect.stringContaining('app.ovf does not match its SHA256 in app.mf') });
    const cert = await signedOva('cert');
    // A digit of the signature's hex; a manifest rewritten to match changed files would fail the same way.
    tamper(cert, 'SHA256(app.mf)= ', 40);
    expect(await verify([], cert)).toMatchObject({ exitCode: 3, stderr: expect.stringContaining('app.cert does not check out: the signature does not match the manifest') });
  });
});
