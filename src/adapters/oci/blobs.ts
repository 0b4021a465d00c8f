/** Content addresses: the digest a blob's store name states, and the check of small blobs read whole. */
import { createHash } from 'node:crypto';
import { C2vError } from '../../errors.js';

const BLOB_PATH = /(?:^|\/)blobs\/(sha256|sha512)\/([0-9a-f]{64,128})$/;

/** `blobs/sha256/<hex>` (an OCI layout, Docker 25+ archives) -> `sha256:<hex>`; other names state none. */
export function blobDigestOf(name: string): string | undefined {
  const m = BLOB_PATH.exec(name);
  return m ? `${m[1]}:${m[2]}` : undefined;
}

/** The blob's digest: `expected` once the bytes are checked against it, else their sha256. */
export function checkedBlob(bytes: Buffer, expected: string | undefined, what: string): string {
  const algorithm = expected ? expected.slice(0, expected.indexOf(':')) : 'sha256';
  if (algorithm !== 'sha256' && algorithm !== 'sha512') throw new C2vError('input', `${what} has a ${algorithm} digest, which c2v cannot check (sha256 and sha512 only)`);
  const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
  if (expected && actual !== expected) {
    throw new C2vError('input', `${what} does not match its digest ${expected} (read ${actual.slice(0, 23)}…): the image is damaged or was changed; fetch or save it again`);
  }
  return actual;
}
