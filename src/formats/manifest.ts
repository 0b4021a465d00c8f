/**
 * The OVF manifest (.mf). vSphere and ovftool accept exactly `SHA256(<name>)= <hex>` (likewise SHA1 and SHA512):
 * the spellings `sha256sum --tag` (`SHA256 (x) = `) and OpenSSL 3 (`SHA2-256(x)= `) produce are rejected, so the
 * line is built here rather than borrowed from a tool. Which algorithm is the plan's choice: the clients of
 * ESXi 5.5/6.0 refuse anything but SHA1, newer ones take all three.
 */

export const MANIFEST_DIGESTS = ['sha1', 'sha256', 'sha512'] as const;

/** Also the algorithm's name for node:crypto's createHash. */
export type ManifestDigest = (typeof MANIFEST_DIGESTS)[number];

const ALGORITHMS: Record<ManifestDigest, { label: string; hexLength: number }> = {
  sha1: { label: 'SHA1', hexLength: 40 },
  sha256: { label: 'SHA256', hexLength: 64 },
  sha512: { label: 'SHA512', hexLength: 128 },
};

export interface ManifestEntry {
  name: string;
  /** The file's digest in hex, by the manifest's algorithm. */
  hex: string;
}

/** The spelling of the algorithm in .mf and .cert lines: SHA1, SHA256, SHA512. */
export function digestLabel(digest: ManifestDigest): string {
  return ALGORITHMS[digest].label;
}

export function digestHexLength(digest: ManifestDigest): number {
  return ALGORITHMS[digest].hexLength;
}

/** A placeholder of the right length, for sizing a manifest before the real digests are known. */
export function zeroDigest(digest: ManifestDigest): string {
  return '0'.repeat(digestHexLength(digest));
}

export function formatManifest(entries: readonly ManifestEntry[], digest: ManifestDigest): string {
  const { label, hexLength } = ALGORITHMS[digest];
  const hexPattern = new RegExp(`^[0-9a-f]{${hexLength}}$`, 'i');
  const problems: string[] = [];
  const seen = new Set<string>();
  entries.forEach(({ name, hex }, i) => {
    // The name sits between parentheses on a single line, so these would make the line ambiguous.
    if (name === '' || /[\n\r/]/.test(name) || name.includes(')=')) {
      problems.push(`entry ${i}: ${JSON.stringify(name)} is not a plain file name`);
    }
    if (seen.has(name)) problems.push(`entry ${i}: ${JSON.stringify(name)} is listed twice`);
    seen.add(name);
    if (!hexPattern.test(hex)) problems.push(`entry ${i} (${name}): ${JSON.stringify(hex)} is not a ${label} in hex (${hexLength} digits)`);
  });
  if (problems.length > 0) throw new RangeError(`invalid manifest: ${problems.join('; ')}`);
  return entries.map(({ name, hex }) => `${label}(${name})= ${hex.toLowerCase()}\n`).join('');
}

/** The entries of a manifest in vSphere's form; undefined when a line is not one (or algorithms are mixed). */
export function parseManifest(text: string): { digest: ManifestDigest; entries: ManifestEntry[] } | undefined {
  const entries: ManifestEntry[] = [];
  let digest: ManifestDigest | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const m = /^(SHA1|SHA256|SHA512)\((.+)\)= ?([0-9a-fA-F]+)$/.exec(line);
    if (!m) return undefined;
    const d = MANIFEST_DIGESTS.find((x) => ALGORITHMS[x].label === m[1])!;
    if ((digest && d !== digest) || m[3].length !== ALGORITHMS[d].hexLength) return undefined;
    digest = d;
    entries.push({ name: m[2], hex: m[3].toLowerCase() });
  }
  return digest && { digest, entries };
}
