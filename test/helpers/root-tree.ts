import { createHash } from 'node:crypto';
import { readTar, textOf } from '../../src/formats/tar/index.js';

/**
 * A root file system's tar as a comparable tree: each path's type, mode, owner, size, link target, content hash
 * and security xattrs. A hard link is described by the file it shares an inode with, so that two tars that
 * chose different paths to carry the data (docker export, a flattener) describe the same tree alike. Times are
 * left out: the engine touches directories it mounts over.
 */
export interface TreeEntry {
  type: string;
  mode: string;
  owner: string;
  size: number;
  link: string;
  sha256: string;
  xattrs: string;
  /** Every path sharing this file's inode (itself included), sorted. */
  inode: string;
}

/** What `docker export` of a never-started container adds over the image's own tree. */
export const ENGINE_PATHS = /^(\.dockerenv|etc\/(hostname|hosts|resolv\.conf|mtab)|dev(\/.*)?|proc|sys)$/;

export async function rootTree(tar: AsyncIterable<Buffer>, skip: RegExp = ENGINE_PATHS): Promise<Map<string, TreeEntry>> {
  const tree = new Map<string, TreeEntry>();
  const links: [string, string][] = [];
  for await (const e of readTar(tar, { endMarkerOptional: true })) {
    const name = textOf(e.header.name).replace(/^\.?\/+/, '').replace(/\/+$/, '');
    if (name === '' || name === '.' || skip.test(name)) {
      for await (const _ of e.body) void _;
      continue;
    }
    const hash = createHash('sha256');
    for await (const chunk of e.body) hash.update(chunk);
    const xattrs = e.pax
      .filter((r) => r.key.startsWith('SCHILY.xattr.security.'))
      .map((r) => `${r.key.slice('SCHILY.xattr.'.length)}=${Buffer.from(r.value, 'latin1').toString('hex')}`)
      .sort()
      .join(',');
    const h = e.header;
    if (e.kind === 'hardlink') {
      links.push([name, textOf(h.linkname).replace(/^\.?\/+/, '')]);
      continue;
    }
    tree.set(name, {
      type: e.kind,
      mode: (h.mode & 0o7777).toString(8),
      owner: `${h.uid}:${h.gid}`,
      size: e.kind === 'file' ? h.size : 0,
      link: e.kind === 'symlink' ? textOf(h.linkname) : '',
      sha256: e.kind === 'file' ? hash.digest('hex') : '',
      xattrs,
      inode: name,
    });
  }
  const groups = new Map<string, string[]>();
  for (const [name, target] of links) {
    const file = tree.get(target);
    if (!file) throw new Error(`hard link ${name} points to ${target}, which the tar does not hold before it`);
    tree.set(name, { ...file });
    groups.set(target, [...(groups.get(target) ?? [target]), name]);
  }
  for (const members of groups.values()) {
    const inode = [...members].sort().join(' ');
    for (const m of members) tree.set(m, { ...tree.get(m)!, inode });
  }
  return tree;
}

/** The differences between two trees, one line each, for a readable assertion. */
export function treeDiff(expected: Map<string, TreeEntry>, actual: Map<string, TreeEntry>, limit = 20): string[] {
  const out: string[] = [];
  for (const [name, want] of expected) {
    const got = actual.get(name);
    if (!got) out.push(`missing ${name}`);
    else if (JSON.stringify(got) !== JSON.stringify(want)) out.push(`differs ${name}: want ${JSON.stringify(want)} got ${JSON.stringify(got)}`);
  }
  for (const name of actual.keys()) if (!expected.has(name)) out.push(`extra ${name}`);
  return out.slice(0, limit);
}
