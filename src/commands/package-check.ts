/**
 * An OVA's own integrity claims, checked as an importer checks them before anything boots: every member the .mf
 * lists against its digest, no member left out of it, and the .cert's signature over the .mf. Whether the
 * signing certificate is trusted is the importer's to judge (vCenter's trusted roots); c2v reports its subject.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { C2vError } from '../errors.js';
import { parseManifest, type ManifestDigest } from '../formats/manifest.js';
import { checkSignature } from '../formats/ova-signature.js';

export interface PackageIntegrity {
  /** The manifest's algorithm; absent when the OVA has no manifest. */
  manifest?: ManifestDigest;
  /** How many files the manifest lists (all of them matched). */
  files?: number;
  /** The signing certificate's subject; absent when the OVA is not signed. */
  signedBy?: string;
}

async function digestOf(member: Buffer | string, algorithm: ManifestDigest): Promise<string> {
  const hash = createHash(algorithm);
  if (typeof member !== 'string') return hash.update(member).digest('hex');
  for await (const chunk of createReadStream(member)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `members`: each OVA member by name, as bytes or as the file it was unpacked to. */
export async function checkPackage(ova: string, members: ReadonlyMap<string, Buffer | string>): Promise<PackageIntegrity> {
  const names = [...members.keys()];
  const mfName = names.find((n) => n.endsWith('.mf'));
  const certName = names.find((n) => n.endsWith('.cert'));
  if (!mfName) {
    if (certName) throw new C2vError('input', `${ova} holds ${certName} but no manifest for it to sign: the package is incomplete`);
    return {};
  }
  const mfBytes = members.get(mfName) as Buffer;
  const manifest = parseManifest(mfBytes.toString('utf8'));
  if (!manifest) throw new C2vError('input', `${ova}: ${mfName} is not a manifest vSphere reads (lines like "SHA256(name)= hex")`);
  const listed = new Set(manifest.entries.map((e) => e.name));
  for (const name of names) {
    if (name !== mfName && name !== certName && !listed.has(name)) {
      throw new C2vError('input', `${ova}: ${name} is not in ${mfName}: vSphere refuses a package with files its manifest does not list`);
    }
  }
  for (const { name, hex } of manifest.entries) {
    const member = members.get(name);
    if (member === undefined) throw new C2vError('input', `${ova}: ${mfName} lists ${name}, which the package does not hold`);
    if ((await digestOf(member, manifest.digest)) !== hex) {
      throw new C2vError('input', `${ova}: ${name} does not match its ${manifest.digest.toUpperCase()} in ${mfName}: the package was changed or damaged after it was made`);
    }
  }
  const integrity: PackageIntegrity = { manifest: manifest.digest, files: manifest.entries.length };
  if (certName) {
    const signature = checkSignature((members.get(certName) as Buffer).toString('utf8'), mfName, mfBytes);
    if (!signature.valid) throw new C2vError('input', `${ova}: ${certName} does not check out: ${signature.problem}`);
    integrity.signedBy = signature.subject;
  }
  return integrity;
}
