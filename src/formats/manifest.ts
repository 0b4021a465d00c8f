/**
 * The OVF manifest (.mf). vSphere and ovftool accept exactly `SHA256(<name>)= <hex>`: the spellings
 * `sha256sum --tag` (`SHA256 (x) = `) and OpenSSL 3 (`SHA2-256(x)= `) produce are rejected, so the
 * line is built here rather than borrowed from a tool.
 */

export interface ManifestEntry {
  name: string;
  sha256: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/i;

export function formatManifest(entries: readonly ManifestEntry[]): string {
  const problems: string[] = [];
  const seen = new Set<string>();
  entries.forEach(({ name, sha256 }, i) => {
    // The name sits between parentheses on a single line, so these would make the line ambiguous.
    if (name === '' || /[\n\r/]/.test(name) || name.includes(')=')) {
      problems.push(`entry ${i}: ${JSON.stringify(name)} is not a plain file name`);
    }
    if (seen.has(name)) problems.push(`entry ${i}: ${JSON.stringify(name)} is listed twice`);
    seen.add(name);
    if (!SHA256_HEX.test(sha256)) problems.push(`entry ${i} (${name}): ${JSON.stringify(sha256)} is not a SHA-256 in hex`);
  });
  if (problems.length > 0) throw new RangeError(`invalid manifest: ${problems.join('; ')}`);
  return entries.map(({ name, sha256 }) => `SHA256(${name})= ${sha256.toLowerCase()}\n`).join('');
}
