/**
 * What an image's /etc/os-release says, and which distribution that makes it. The one place that reads
 * os-release(5); each consumer (the packages step, OVF guest id, ext4 features) asks its own question of
 * the `Distro` answered here rather than re-reading ID and ID_LIKE its own way.
 */

/** The fields of os-release(5), by name; a key the file lacks is absent. */
export type OsRelease = Readonly<Record<string, string>>;

/** The families c2v's packages step (templates/packages/) knows. */
export type DistroFamily = 'debian' | 'ubuntu' | 'alpine' | 'rhel';

export interface Distro {
  /** ID, trimmed and lower-cased; '' when the file has none. */
  id: string;
  /** ID_LIKE's words, lower-cased, closest relative first. */
  like: readonly string[];
  /** VERSION_ID's leading whole number (8 for "8.10", 2023 for "2023"); absent when it does not start with one. */
  major?: number;
  /** The template family, if c2v has one for this distribution or a parent it names. */
  family?: DistroFamily;
}

/** Distributions the rhel template (dnf, systemd, NetworkManager) serves. */
const RHEL_LIKE: ReadonlySet<string> = new Set(['rhel', 'fedora', 'centos', 'rocky', 'almalinux', 'ol']);

export function distroOf(os: OsRelease): Distro {
  const id = (os.ID ?? '').trim().toLowerCase();
  const like = (os.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const m = /^(\d+)/.exec((os.VERSION_ID ?? '').trim());
  return { id, like, major: m ? Number(m[1]) : undefined, family: familyOf(id, like) };
}

/** The template family of an image, or undefined when c2v has no template for it. */
export function distroFamily(os: OsRelease): DistroFamily | undefined {
  return distroOf(os).family;
}

function familyOf(id: string, like: readonly string[]): DistroFamily | undefined {
  const ids = id ? [id, ...like] : like;
  // Ubuntu derivatives name debian too (Mint: "ubuntu debian"); Ubuntu's own packages are what they install.
  if (ids[0] === 'ubuntu' || (ids[0] !== 'debian' && ids.includes('ubuntu'))) return 'ubuntu';
  if (ids.includes('debian')) return 'debian';
  if (ids.includes('alpine')) return 'alpine';
  if (ids.some((i) => RHEL_LIKE.has(i))) return 'rhel';
  return undefined;
}

/** Parses os-release(5): KEY=value lines, values optionally quoted, shell-style backslash escapes. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]] = unquote(m[2]);
  }
  return out;
}

function unquote(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '"') {
      i++;
      while (i < s.length && s[i] !== '"') {
        // Inside double quotes a backslash only escapes the characters the shell treats specially there.
        if (s[i] === '\\' && i + 1 < s.length && '$`"\\'.includes(s[i + 1])) {
          out += s[i + 1];
          i += 2;
        } else {
          out += s[i++];
        }
      }
      i++;
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      out += s.slice(i + 1, end === -1 ? s.length : end);
      i = end === -1 ? s.length : end + 1;
    } else if (c === '\\' && i + 1 < s.length) {
      out += s[i + 1];
      i += 2;
    } else if (c === ' ' || c === '\t') {
      break; // unquoted whitespace ends the value; what follows is a comment or junk
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
