/**
 * Package the appliance: an OVA (one tar) or an OVF folder (plain files side by side).
 *
 * The caller decides the member order; vSphere wants the .ovf first and the .mf next, then the files
 * in References order, which writeOva checks for the .ovf. Disk members are streamed from their
 * files: a VMDK can be many GiB.
 */

import { createReadStream, createWriteStream } from 'node:fs';
import { constants as fsConstants, copyFile, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import createDebug from 'debug';
import { C2vError } from '../errors.js';
import { encodeTarHeader, tarPadding, TAR_END } from '../formats/tar.js';

const debug = createDebug('c2v:ova');

export interface PackageMember {
  /** Name inside the OVA / file name in the OVF folder; flat. */
  name: string;
  /** Exact byte count; checked against the source, since the OVF's References already state it. */
  size: number;
  /** The bytes themselves, or the path of a file holding them. */
  source: Buffer | string;
}

function sizeMismatch(member: PackageMember, actual: number): C2vError {
  return new C2vError('internal', `${member.name}: expected ${member.size} bytes but ${typeof member.source === 'string' ? member.source : 'the buffer'} has ${actual}`);
}

/** Everything that can be checked before the first byte is written. */
async function checkMembers(members: readonly PackageMember[]): Promise<void> {
  const seen = new Set<string>();
  for (const m of members) {
    if (seen.has(m.name)) throw new C2vError('internal', `package member ${m.name} is listed twice`);
    seen.add(m.name);
    if (typeof m.source === 'string') {
      const st = await stat(m.source);
      if (!st.isFile()) throw new C2vError('internal', `package member ${m.name}: ${m.source} is not a regular file`);
      if (st.size !== m.size) throw sizeMismatch(m, st.size);
    } else if (m.source.length !== m.size) {
      throw sizeMismatch(m, m.source.length);
    }
  }
}

async function* tarStream(members: readonly PackageMember[], mtime: number): AsyncGenerator<Buffer> {
  for (const m of members) {
    debug('member %s (%d bytes)', m.name, m.size);
    yield encodeTarHeader({ name: m.name, size: m.size, mtime });
    if (typeof m.source === 'string') {
      let written = 0;
      for await (const chunk of createReadStream(m.source, { highWaterMark: 1 << 20 })) {
        const buf = chunk as Buffer;
        written += buf.length;
        // A file that grew after the stat would shift every later member: stop rather than corrupt.
        if (written > m.size) throw sizeMismatch(m, written);
        yield buf;
      }
      if (written !== m.size) throw sizeMismatch(m, written);
    } else {
      yield m.source;
    }
    yield tarPadding(m.size);
  }
  yield TAR_END;
}

/**
 * Write `members` as an OVA at `outPath`. The archive is built under a temporary name next to it and
 * renamed into place, so a failed or interrupted run leaves no truncated OVA behind.
 */
export async function writeOva(outPath: string, members: readonly PackageMember[], opts: { mtime?: number } = {}): Promise<void> {
  if (members.length === 0 || !members[0].name.endsWith('.ovf')) {
    throw new C2vError('internal', `the first OVA member must be the .ovf descriptor, got ${members[0]?.name ?? 'nothing'}`);
  }
  // Header encoding validates names and sizes; do it for all members before creating any file.
  for (const m of members) encodeTarHeader({ name: m.name, size: m.size, mtime: opts.mtime ?? 0 });
  await checkMembers(members);

  const partial = `${outPath}.partial`;
  debug('writing %s', outPath);
  try {
    await pipeline(tarStream(members, opts.mtime ?? 0), createWriteStream(partial));
    await rename(partial, outPath);
  } catch (e) {
    await rm(partial, { force: true });
    throw e;
  }
}

async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    // Different filesystems: rename cannot cross them.
    await copyFile(from, to);
    await rm(from);
  }
}

/**
 * Write `members` as plain files in `dir` (`--format ovf`). File members are copied, or moved when
 * `move` is set (the workspace copy of a multi-GiB disk is not needed afterwards). On failure the
 * files written here are removed and moved ones are put back.
 */
export async function writeOvfFolder(dir: string, members: readonly PackageMember[], opts: { move?: boolean } = {}): Promise<void> {
  // The OVA's name rules, so that both output formats of one plan accept the same members.
  for (const m of members) encodeTarHeader({ name: m.name, size: m.size });
  await checkMembers(members);
  await mkdir(dir, { recursive: true });

  const created: string[] = [];
  const moved: [from: string, to: string][] = [];
  try {
    for (const m of members) {
      const target = path.join(dir, m.name);
      debug('writing %s', target);
      if (typeof m.source !== 'string') {
        await writeFile(target, m.source);
        created.push(target);
      } else if (path.resolve(m.source) === path.resolve(target)) {
        // Already in place (the disk was written straight into the output folder).
      } else if (opts.move) {
        await moveFile(m.source, target);
        moved.push([m.source, target]);
      } else {
        // Reflink where the filesystem can (btrfs, XFS): instant and no extra space.
        await copyFile(m.source, target, fsConstants.COPYFILE_FICLONE);
        created.push(target);
      }
    }
  } catch (e) {
    for (const file of created) await rm(file, { force: true });
    for (const [from, to] of moved.reverse()) await moveFile(to, from).catch(() => undefined);
    throw e;
  }
}
