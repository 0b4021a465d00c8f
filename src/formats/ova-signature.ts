/**
 * The .cert member of a signed OVF package, in the form VMware's OVF Tool writes and vSphere reads: one line
 * `SHA256(<name>.mf)= <signature in hex>` (the manifest's own algorithm label), then the signing certificate and
 * any intermediates as PEM. The signature is PKCS#1 v1.5 over the manifest's bytes, what `openssl dgst -sha256
 * -sign` gives, so anyone can check it with openssl alone.
 *
 * Only RSA: its signature length is fixed by the key, so the member's size is known before the manifest is,
 * which the streaming OVA needs (its .cert comes before the disk). vSphere's own tools sign with RSA too.
 */
import { sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { digestLabel, type ManifestDigest } from './manifest.js';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM file, each block normalised to LF line ends; other blocks (keys, text) dropped. */
export function pemCertificates(text: string): string[] {
  return (text.match(PEM_BLOCK) ?? []).map((block) => `${block.replace(/\r\n/g, '\n')}\n`);
}

export interface OvaSigner {
  /** The PEM certificates the .cert carries: the signer's first, then intermediates. */
  certificates: readonly string[];
  key: KeyObject;
}

/** The signature's length in bytes: an RSA signature is as long as the modulus. */
export function signatureBytes(signer: OvaSigner): number {
  const bits = signer.key.asymmetricKeyDetails?.modulusLength;
  if (signer.key.asymmetricKeyType !== 'rsa' || !bits) throw new RangeError('OVA signatures are RSA only');
  return Math.ceil(bits / 8);
}

function certLine(mfName: string, digest: ManifestDigest, signatureHex: string): string {
  if (/[\n\r)]/.test(mfName)) throw new RangeError(`${JSON.stringify(mfName)} is not a plain file name`);
  return `${digestLabel(digest)}(${mfName})= ${signatureHex}\n`;
}

/** The .cert's length before the manifest exists: the hex digits are fixed by the key. */
export function certFileLength(signer: OvaSigner, mfName: string, digest: ManifestDigest): number {
  const line = certLine(mfName, digest, '0'.repeat(2 * signatureBytes(signer)));
  return Buffer.byteLength(line + signer.certificates.join(''), 'utf8');
}

/** The .cert member for this manifest. */
export function signManifest(signer: OvaSigner, mfName: string, digest: ManifestDigest, manifest: Buffer): Buffer {
  const signature = sign(digest, manifest, signer.key);
  return Buffer.from(certLine(mfName, digest, signature.toString('hex')) + signer.certificates.join(''), 'utf8');
}

export interface CertFile {
  digest: ManifestDigest;
  mfName: string;
  signature: Buffer;
  certificates: string[];
}

const LABELS: Record<string, ManifestDigest> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

/** Reads a .cert member; undefined when its first line is not a signature line. */
export function parseCertFile(text: string): CertFile | undefined {
  const m = /^(SHA1|SHA256|SHA512)\(([^\n)]+)\)= ([0-9a-fA-F]+)\r?\n/.exec(text);
  if (!m || m[3].length % 2 !== 0) return undefined;
  return { digest: LABELS[m[1]], mfName: m[2], signature: Buffer.from(m[3], 'hex'), certificates: pemCertificates(text) };
}

export interface SignatureCheck {
  valid: boolean;
  /** The signing certificate's subject, as vSphere names the publisher. */
  subject?: string;
  problem?: string;
}

/** Whether the .cert's signature covers these manifest bytes, by the public key of its first certificate. */
export function checkSignature(certText: string, mfName: string, manifest: Buffer): SignatureCheck {
  const cert = parseCertFile(certText);
  if (!cert) return { valid: false, problem: 'the .cert does not start with a signature line' };
  if (cert.mfName !== mfName) return { valid: false, problem: `the .cert signs ${cert.mfName}, not ${mfName}` };
  if (cert.certificates.length === 0) return { valid: false, problem: 'the .cert holds no certificate' };
  let signer: X509Certificate;
  try {
    signer = new X509Certificate(cert.certificates[0]);
  } catch {
    return { valid: false, problem: 'its first certificate cannot be read' };
  }
  const valid = verify(cert.digest, manifest, signer.publicKey, cert.signature);
  return { valid, subject: signer.subject.replace(/\n/g, ', '), problem: valid ? undefined : 'the signature does not match the manifest' };
}
