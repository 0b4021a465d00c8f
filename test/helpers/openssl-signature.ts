/**
 * A signed OVF package checked the way its README tells users to, with openssl alone (none of c2v's code): the
 * .cert's signature against the certificate's public key over the .mf, then every file against the .mf.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function openssl(args: string[], input?: Buffer): { ok: boolean; out: string } {
  const r = spawnSync('openssl', args, { input, encoding: 'buffer' });
  return { ok: r.status === 0, out: `${r.stdout.toString()}${r.stderr.toString()}`.trim() };
}

/** Problems found (empty when the package checks out). `dir` holds the .ovf, .mf, .cert and the files listed. */
export function opensslCheckPackage(dir: string, mfName: string, certName: string): string[] {
  const problems: string[] = [];
  const work = mkdtempSync(path.join(os.tmpdir(), 'c2v-sigcheck-'));
  try {
    const cert = readFileSync(path.join(dir, certName), 'utf8');
    const m = /^(SHA1|SHA256|SHA512)\(([^)]+)\)= ([0-9a-f]+)\n/.exec(cert);
    if (!m) return [`${certName} does not start with a signature line`];
    if (m[2] !== mfName) problems.push(`${certName} signs ${m[2]}, not ${mfName}`);
    const algorithm = `-${m[1].toLowerCase()}`;
    writeFileSync(path.join(work, 'sig.bin'), Buffer.from(m[3], 'hex'));
    // openssl's PEM reader skips the signature line before the first certificate.
    const pub = openssl(['x509', '-in', path.join(dir, certName), '-pubkey', '-noout']);
    if (!pub.ok) return [...problems, `openssl x509: ${pub.out}`];
    writeFileSync(path.join(work, 'pub.pem'), pub.out);
    const verified = openssl(['dgst', algorithm, '-verify', path.join(work, 'pub.pem'), '-signature', path.join(work, 'sig.bin'), path.join(dir, mfName)]);
    if (!verified.ok || verified.out !== 'Verified OK') problems.push(`openssl dgst -verify: ${verified.out}`);
    for (const line of readFileSync(path.join(dir, mfName), 'utf8').trimEnd().split('\n')) {
      const e = /^(SHA1|SHA256|SHA512)\(([^)]+)\)= ([0-9a-f]+)$/.exec(line);
      if (!e) {
        problems.push(`manifest line ${JSON.stringify(line)}`);
        continue;
      }
      const digest = openssl(['dgst', `-${e[1].toLowerCase()}`, '-r', path.join(dir, e[2])]);
      if (!digest.ok || digest.out.split(' ')[0] !== e[3]) problems.push(`${e[2]} does not match the manifest`);
    }
    return problems;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface TestSigningKeys {
  dir: string;
  /** A root CA, an intermediate it signed, and a leaf the intermediate signed (the signing certificate). */
  caCert: string;
  leafKey: string;
  /** The leaf, then the intermediate: what --cert is given. */
  chain: string;
  /** A self-signed certificate and its key. */
  selfKey: string;
  selfCert: string;
}

function run(args: string[]): void {
  const r = openssl(args);
  if (!r.ok) throw new Error(`openssl ${args.join(' ')}: ${r.out}`);
}

/** Keys and certificates made by openssl for the tests, as a CA would issue them. */
export function makeSigningKeys(dir: string): TestSigningKeys {
  mkdirSync(dir, { recursive: true });
  const f = (name: string) => path.join(dir, name);
  const key = (name: string) => run(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', f(name)]);
  for (const name of ['ca.key', 'int.key', 'leaf.key', 'self.key']) key(name);
  run(['req', '-x509', '-new', '-key', f('ca.key'), '-subj', '/CN=Test Root CA', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-out', f('ca.pem')]);
  const ext = (name: string, text: string) => writeFileSync(f(name), text);
  ext('int.ext', 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\n');
  ext('leaf.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n');
  run(['req', '-new', '-key', f('int.key'), '-subj', '/CN=Test Intermediate CA', '-out', f('int.csr')]);
  run(['x509', '-req', '-in', f('int.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '30', '-extfile', f('int.ext'), '-out', f('int.pem')]);
  run(['req', '-new', '-key', f('leaf.key'), '-subj', '/O=Example Appliances/CN=Example Appliances Release', '-out', f('leaf.csr')]);
  run(['x509', '-req', '-in', f('leaf.csr'), '-CA', f('int.pem'), '-CAkey', f('int.key'), '-CAcreateserial', '-days', '30', '-extfile', f('leaf.ext'), '-out', f('leaf.pem')]);
  writeFileSync(f('chain.pem'), readFileSync(f('leaf.pem'), 'utf8') + readFileSync(f('int.pem'), 'utf8'));
  run(['req', '-x509', '-new', '-key', f('self.key'), '-subj', '/CN=Self Signed', '-days', '30', '-out', f('self.pem')]);
  return { dir, caCert: f('ca.pem'), leafKey: f('leaf.key'), chain: f('chain.pem'), selfKey: f('self.key'), selfCert: f('self.pem') };
}
