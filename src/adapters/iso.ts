import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import { findOnPath, run } from './exec.js';

export type IsoTool = 'genisoimage' | 'xorriso';

/** ISO 9660 keeps 32 characters of volume identifier. */
const MAX_VOLUME_LABEL = 32;

/**
 * The mastering command line. Rock Ridge (`-r`: every file world-readable, owned by root) and Joliet keep the
 * names as given (`ovf-env.xml`, not ISO 9660's `OVF_ENV.XML`) for Linux and Windows guests alike.
 */
export function isoCommand(tool: IsoTool, dir: string, out: string, volumeLabel: string): { file: string; args: string[] } {
  const mkisofs = ['-quiet', '-input-charset', 'utf-8', '-r', '-J', '-V', volumeLabel, '-o', out, dir];
  return tool === 'genisoimage' ? { file: 'genisoimage', args: mkisofs } : { file: 'xorriso', args: ['-as', 'mkisofs', ...mkisofs] };
}

/** genisoimage, else xorriso's mkisofs emulation; neither is a missing host tool named with its package. */
export async function isoTool(pathVar = process.env.PATH ?? ''): Promise<IsoTool> {
  if (await findOnPath('genisoimage', pathVar)) return 'genisoimage';
  if (await findOnPath('xorriso', pathVar)) return 'xorriso';
  throw new C2vError('tool', 'genisoimage is not installed: install the Debian package genisoimage (or xorriso) (or run scripts/install-host-deps)');
}

/**
 * Writes an ISO 9660 image holding, at its root, the files of `source`: a folder's contents, or the files given.
 * The default label is the one vSphere gives its OVF environment CD.
 */
export async function makeIso(source: string | readonly { name: string; content: string | Buffer }[], out: string, volumeLabel = 'OVF ENV'): Promise<void> {
  if (volumeLabel.length === 0 || volumeLabel.length > MAX_VOLUME_LABEL) {
    throw new C2vError('internal', `an ISO volume label must be 1-${MAX_VOLUME_LABEL} characters, got "${volumeLabel}"`);
  }
  const tool = await isoTool();
  if (typeof source === 'string') {
    const { file, args } = isoCommand(tool, source, out, volumeLabel);
    await run(file, args);
    return;
  }
  const staging = await mkdtemp(path.join(path.dirname(path.resolve(out)), '.c2v-iso-'));
  try {
    for (const f of source) {
      if (f.name !== path.basename(f.name) || f.name === '.' || f.name === '..' || f.name === '') {
        throw new C2vError('internal', `an ISO root file needs a plain name, got "${f.name}"`);
      }
      await writeFile(path.join(staging, f.name), f.content);
    }
    const { file, args } = isoCommand(tool, staging, out, volumeLabel);
    await run(file, args);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
