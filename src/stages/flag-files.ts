/**
 * The files flags name (--eula, --ssh-key, --sign, --cert), read and judged before anything long starts, so a
 * wrong file costs a second, not a build. Each error names the flag, the file and what to give instead.
 */
import { readFile } from 'node:fs/promises';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { C2vError } from '../errors.js';
import { pemCertificates, type OvaSigner } from '../formats/ova-signature.js';

/** A file a flag names, as text; its error names the flag, the file and what to give instead. */
async function readFlagFile(flag: string, file: string, wanted: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new C2vError('input', `--${flag} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): name ${wanted}`);
  }
}

export async function readEula(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  const text = await readFlagFile('eula', file, 'a text file holding the license');
  if (!text.trim()) throw new C2vError('input', `--eula ${file} is empty: name a text file holding the license`);
  return text;
}

export async function readSshKey(file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  const text = await readFlagFile('ssh-key', file, 'a public key file such as ~/.ssh/id_ed25519.pub');
  const keys = text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  if (keys.length === 0 || !keys.every((k) => /^(ssh-|ecdsa-|sk-)\S+ \S+/.test(k.trim()))) {
    throw new C2vError('input', `--ssh-key ${file} is not an OpenSSH public key (expected lines like "ssh-ed25519 AAAA... comment"); pass the .pub file, not the private key`);
  }
  return keys.join('\n');
}

/** RSA keys shorter than this are refused by current OpenSSL policies, and by vSphere's. */
const MIN_RSA_BITS = 2048;

function loadKey(file: string, text: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (e) {
    // Node's error for an encrypted key depends on its OpenSSL (a missing passphrase, or an interrupted prompt).
    const encrypted = (e as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE' || /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text);
    if (encrypted) {
      throw new C2vError('input', `--sign ${file} is encrypted: give an unencrypted copy (openssl pkey -in ${file} -out key.pem), kept where only the signing job reads it`);
    }
    throw new C2vError('input', `--sign ${file} is not a private key in PEM form (expected "-----BEGIN PRIVATE KEY-----" or "-----BEGIN RSA PRIVATE KEY-----")`);
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa') {
    throw new C2vError('input', `--sign ${file} is a ${key.asymmetricKeyType ?? 'non-RSA'} key: OVF signatures vSphere checks are RSA; make one with openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072`);
  }
  if (bits < MIN_RSA_BITS) throw new C2vError('input', `--sign ${file} is a ${bits}-bit RSA key: use at least ${MIN_RSA_BITS} bits`);
  return key;
}

/** The key and certificate chain of --sign and --cert, checked to belong together and to be valid today. */
export async function readSigner(keyFile: string | undefined, certFile: string | undefined, now = new Date()): Promise<OvaSigner | undefined> {
  if (!keyFile && !certFile) return undefined;
  if (!keyFile || !certFile) {
    throw new C2vError('usage', `${keyFile ? '--sign' : '--cert'} needs ${keyFile ? '--cert' : '--sign'}: a signed OVA carries the key's signature and its certificate`);
  }
  const key = loadKey(keyFile, await readFlagFile('sign', keyFile, 'an RSA private key in PEM form'));
  const certificates = pemCertificates(await readFlagFile('cert', certFile, 'the PEM certificate of the --sign key'));
  if (certificates.length === 0) {
    throw new C2vError('input', `--cert ${certFile} holds no PEM certificate (expected "-----BEGIN CERTIFICATE-----")`);
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certificates[0]);
  } catch {
    throw new C2vError('input', `--cert ${certFile}: its first certificate cannot be read`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new C2vError('input', `--cert ${certFile} is not the certificate of --sign ${keyFile}: its first certificate must be the key's own, intermediates after it`);
  }
  if (new Date(leaf.validTo) < now || new Date(leaf.validFrom) > now) {
    throw new C2vError('input', `--cert ${certFile} is valid only from ${leaf.validFrom} to ${leaf.validTo}: vSphere would show the package's signature as invalid; renew the certificate`);
  }
  return { key, certificates };
}
