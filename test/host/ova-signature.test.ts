import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOvf } from '../../src/plan/ovf.js';
import { StreamingOva } from '../../src/stages/package-ova.js';
import { readSigner } from '../../src/stages/flag-files.js';
import { checkSignature, parseCertFile, type OvaSigner } from '../../src/formats/ova-signature.js';
import { makeSigningKeys, opensslCheckPackage, type TestSigningKeys } from '../helpers/openssl-signature.js';

/**
 * --sign: the .cert member between the .mf and the disk, in the form OVF Tool writes, checked by openssl alone;
 * a changed byte in any member fails the check.
 */
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2v-ova-sign-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ovfFor = (fileBytes: number): string =>
  buildOvf({
    name: 'app',
    disk: { fileName: 'app-disk1.vmdk', fileBytes, capacityBytes: 2 ** 30, populatedBytes: 2 ** 20 },
    cpus: 1,
    memoryMiB: 1024,
    firmware: 'efi',
    os: { cimId: 96, vmwOsType: 'debian11_64Guest', description: 'Debian' },
    vmxVersion: 14,
    annotation: 'signed',
  });

async function signedOva(out: string, signer: OvaSigner, digest: 'sha1' | 'sha256' | 'sha512', disk: Buffer): Promise<void> {
  const ova = await StreamingOva.create(out, { ovfName: 'app.ovf', mfName: 'app.mf', diskName: 'app-disk1.vmdk', ovf: ovfFor, digest, signature: { certName: 'app.cert', signer } });
  await ova.writeDisk(async (sink) => {
    for (let off = 0; off < disk.length; off += 100_003) await sink(disk.subarray(off, off + 100_003));
    return {};
  });
  await ova.finish();
}

function extract(ova: string, name: string): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  execFileSync('tar', ['-xf', ova, '-C', dir]);
  return dir;
}

describe('signed OVAs (--sign, --cert)', () => {
  let keys: TestSigningKeys;
  let signer: OvaSigner;
  const disk = randomBytes(2 ** 20 + 321);

  beforeAll(async () => {
    keys = makeSigningKeys(path.join(tmp, 'keys'));
    signer = (await readSigner(keys.leafKey, keys.chain))!;
  }, 60_000);

  for (const digest of ['sha1', 'sha256', 'sha512'] as const) {
    it(`puts the .cert after the ${digest} .mf, and openssl verifies its signature and the manifest`, async () => {
      const out = path.join(tmp, `${digest}.ova`);
      await signedOva(out, signer, digest, disk);
      expect(execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).trim().split('\n')).toEqual(['app.ovf', 'app.mf', 'app.cert', 'app-disk1.vmdk']);
      const dir = extract(out, `x-${digest}`);
      expect(opensslCheckPackage(dir, 'app.mf', 'app.cert')).toEqual([]);
      const cert = readFileSync(path.join(dir, 'app.cert'), 'utf8');
      const label = digest.toUpperCase();
      // One signature line (256 bytes of a 2048-bit key in hex), then the leaf and the intermediate.
      expect(cert).toMatch(new RegExp(`^${label}\\(app\\.mf\\)= [0-9a-f]{512}\\n-----BEGIN CERTIFICATE-----\\n`));
      expect(cert.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
      expect(readFileSync(path.join(dir, 'app-disk1.vmdk')).equals(disk)).toBe(true);
    });
  }

  it('carries the chain, so the signing certificate verifies up to the root CA an importer trusts', () => {
    const dir = path.join(tmp, 'x-sha256');
    const blocks = parseCertFile(readFileSync(path.join(dir, 'app.cert'), 'utf8'))!.certificates;
    writeFileSync(path.join(tmp, 'leaf-from-cert.pem'), blocks[0]);
    writeFileSync(path.join(tmp, 'int-from-cert.pem'), blocks[1]);
    const r = spawnSync('openssl', ['verify', '-CAfile', keys.caCert, '-untrusted', path.join(tmp, 'int-from-cert.pem'), path.join(tmp, 'leaf-from-cert.pem')], { encoding: 'utf8' });
    expect(r.stdout.trim(), r.stderr).toMatch(/: OK$/);
    expect(checkSignature(readFileSync(path.join(dir, 'app.cert'), 'utf8'), 'app.mf', readFileSync(path.join(dir, 'app.mf')))).toEqual({
      valid: true,
      subject: 'O=Example Appliances, CN=Example Appliances Release',
      problem: undefined,
    });
  });

  // Each member gets one changed byte: the disk and the OVF fail the manifest, the manifest and the signature fail
  // the signature. Our own reader must agree with openssl where the signature is concerned.
  for (const [member, at] of [
    ['app.ovf', 100],
    ['app.mf', 20],
    ['app.cert', 30],
    ['app-disk1.vmdk', 2 ** 19],
  ] as const) {
    it(`fails the check when one byte of ${member} changes`, () => {
      const dir = path.join(tmp, `tampered-${member}`);
      cpSync(path.join(tmp, 'x-sha256'), dir, { recursive: true });
      const file = path.join(dir, member);
      const bytes = readFileSync(file);
      // A hex digit stays a hex digit, so the .cert still parses and only its signature is wrong.
      bytes[at] = bytes[at] === 0x61 ? 0x62 : member === 'app.cert' ? 0x61 : bytes[at] ^ 0x01;
      writeFileSync(file, bytes);
      const problems = opensslCheckPackage(dir, 'app.mf', 'app.cert');
      expect(problems.length).toBeGreaterThan(0);
      const ours = checkSignature(readFileSync(path.join(dir, 'app.cert'), 'utf8'), 'app.mf', readFileSync(path.join(dir, 'app.mf')));
      if (member === 'app.mf' || member === 'app.cert') {
        expect(problems.join('\n')).toMatch(/Verification failure|dgst -verify/);
        expect(ours.valid).toBe(false);
      } else {
        expect(problems).toEqual([`${member} does not match the manifest`]);
        expect(ours.valid).toBe(true);
      }
    });
  }

  it('refuses keys and certificates it cannot sign with, each in one line naming the flag', async () => {
    const f = (name: string) => path.join(tmp, name);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f('ec.key'));
    openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', f('small.key'));
    openssl('pkey', '-in', keys.leafKey, '-aes256', '-passout', 'pass:secret', '-out', f('encrypted.key'));
    writeFileSync(f('empty.pem'), 'not a certificate\n');
    const refusal = async (key: string | undefined, cert: string | undefined, now?: Date) => {
      const e = (await readSigner(key, cert, now).then(() => undefined, (err: Error) => err)) as (Error & { kind?: string }) | undefined;
      expect(e, `${key} ${cert}`).toBeDefined();
      expect(e!.message).not.toContain('\n');
      return e!.message;
    };
    expect(await refusal(keys.leafKey, undefined)).toMatch(/^--sign needs --cert/);
    expect(await refusal(undefined, keys.chain)).toMatch(/^--cert needs --sign/);
    expect(await refusal(keys.selfKey, keys.chain)).toMatch(/is not the certificate of --sign/);
    expect(await refusal(f('ec.key'), keys.chain)).toMatch(/is a ec key: .*RSA/);
    expect(await refusal(f('small.key'), keys.chain)).toMatch(/1024-bit RSA key: use at least 2048/);
    expect(await refusal(f('encrypted.key'), keys.chain)).toMatch(/is encrypted: give an unencrypted copy/);
    expect(await refusal(keys.leafKey, f('empty.pem'))).toMatch(/holds no PEM certificate/);
    expect(await refusal(keys.leafKey, f('missing.pem'))).toMatch(/^--cert .*missing\.pem cannot be read \(ENOENT\)/);
    expect(await refusal(keys.leafKey, keys.chain, new Date(Date.now() + 400 * 86_400_000))).toMatch(/is valid only from .* renew the certificate/);
    expect(readdirSync(tmp).some((n) => n.endsWith('.partial'))).toBe(false);
  });
});
