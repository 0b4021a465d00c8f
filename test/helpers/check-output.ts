import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { opensslCheckPackage } from './openssl-signature.js';
import { assertOvfValid } from './ovf-schema.js';

/**
 * The integrity checks every test output goes through, with tools that share no code with c2v: the OVA's member
 * order, the manifest against the files, the OVF against the DMTF schema, `qemu-img check` and a full inflation
 * of the VMDK, `sgdisk -v` on the GPT, `e2fsck -fn` on the root partition and `fsck.vfat -n` on the ESP.
 * Throws on the first failure, with the tool's output.
 */
export interface CheckedOutput {
  /** Where the package's files are: the OVA unpacked (removed by cleanup()), or the --format ovf folder. */
  dir: string;
  members: string[];
  ovf: string;
  raw: string;
  root: { offset: number; bytes: number };
  esp: { offset: number; bytes: number };
  /** debugfs on the root filesystem, output as bytes (names may not be UTF-8). */
  debugfs(request: string): Buffer;
  cleanup(): void;
}

const ROOT_TYPE = '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709';
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

function tool(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

export async function sha256File(file: string): Promise<string> {
  return hashFile(file, 'sha256');
}

export async function hashFile(file: string, algorithm: ManifestAlgorithm): Promise<string> {
  const h = createHash(algorithm);
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

export type ManifestAlgorithm = 'sha1' | 'sha256' | 'sha512';

const MANIFEST_HEX: Record<string, { algorithm: ManifestAlgorithm; digits: number }> = {
  SHA1: { algorithm: 'sha1', digits: 40 },
  SHA256: { algorithm: 'sha256', digits: 64 },
  SHA512: { algorithm: 'sha512', digits: 128 },
};

/**
 * The lines of an .mf in the one spelling vSphere accepts, `SHA256(<name>)= <hex>` (or SHA1, SHA512), each with
 * as many hex digits as its algorithm gives. Throws on any other line, and on a manifest mixing algorithms.
 */
export function parseManifest(text: string): { algorithm: ManifestAlgorithm; name: string; hex: string }[] {
  const entries = text
    .trimEnd()
    .split('\n')
    .map((line) => {
      const m = /^(SHA1|SHA256|SHA512)\(([^()/]+)\)= ([0-9a-f]+)$/.exec(line);
      if (!m || m[3].length !== MANIFEST_HEX[m[1]].digits) throw new Error(`manifest line not in vSphere's form: ${JSON.stringify(line)}`);
      return { algorithm: MANIFEST_HEX[m[1]].algorithm, name: m[2], hex: m[3] };
    });
  if (new Set(entries.map((e) => e.algorithm)).size > 1) throw new Error(`manifest mixes algorithms: ${JSON.stringify(text)}`);
  return entries;
}

export async function checkOutput(ovaPath: string): Promise<CheckedOutput> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-check-'));
  try {
    const members = tool('tar', ['-tf', ovaPath]).trim().split('\n');
    const signed = members.length === 4 && members[2].endsWith('.cert');
    if (members.length !== (signed ? 4 : 3) || !members[0].endsWith('.ovf') || !members[1].endsWith('.mf') || !members[members.length - 1].endsWith('.vmdk')) {
      throw new Error(`OVA members are not [.ovf, .mf, .vmdk], or [.ovf, .mf, .cert, .vmdk]: ${members.join(', ')}`);
    }
    tool('tar', ['-xf', ovaPath, '-C', dir]);
    if (readdirSync(dir).sort().join() !== [...members].sort().join()) throw new Error(`OVA unpacks to more than its listing: ${readdirSync(dir).join(', ')}`);
    return await checkPackage(dir, members, dir);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** The same checks on a `--format ovf` folder: exactly an .ovf, an .mf, a .vmdk and maybe a .cert. The folder is left alone. */
export async function checkOvfFolder(folder: string): Promise<CheckedOutput> {
  const names = readdirSync(folder).sort();
  const ovfName = names.find((n) => n.endsWith('.ovf'));
  const mfName = names.find((n) => n.endsWith('.mf'));
  const certName = names.find((n) => n.endsWith('.cert'));
  const vmdkName = names.find((n) => n.endsWith('.vmdk'));
  if (names.length !== (certName ? 4 : 3) || !ovfName || !mfName || !vmdkName) throw new Error(`OVF folder holds ${names.join(', ')}, not one .ovf, .mf and .vmdk (and maybe a .cert)`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'c2v-check-'));
  try {
    return await checkPackage(folder, [ovfName, mfName, ...(certName ? [certName] : []), vmdkName], work);
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

/** Manifest, OVF and VMDK checks on the files in `dir`; the inflated disk goes to `work`, which cleanup() removes. */
async function checkPackage(dir: string, members: string[], work: string): Promise<CheckedOutput> {
  const [ovfName, mfName] = members;
  const vmdkName = members[members.length - 1];
  const certName = members.find((m) => m.endsWith('.cert'));
  if (certName) {
    const problems = opensslCheckPackage(dir, mfName, certName);
    if (problems.length > 0) throw new Error(`the signature does not check out: ${problems.join('; ')}`);
  }

  const mf = readFileSync(path.join(dir, mfName), 'utf8');
  const listed = new Map(parseManifest(mf).map((e) => [e.name, e] as const));
  for (const name of [ovfName, vmdkName]) {
    const entry = listed.get(name);
    if (!entry) throw new Error(`manifest does not list ${name}`);
    const actual = await hashFile(path.join(dir, name), entry.algorithm);
    if (entry.hex !== actual) throw new Error(`manifest says ${entry.algorithm} ${entry.hex} for ${name}, the file hashes to ${actual}`);
  }
  if (listed.size !== 2) throw new Error(`manifest lists ${[...listed.keys()].join(', ')}`);

  const ovfPath = path.join(dir, ovfName);
  assertOvfValid(ovfPath);
  const ovf = readFileSync(ovfPath, 'utf8');
  const vmdkPath = path.join(dir, vmdkName);
  if (!ovf.includes(`ovf:href="${vmdkName}"`) || !ovf.includes(`ovf:size="${statSync(vmdkPath).size}"`)) {
    throw new Error(`the OVF does not reference ${vmdkName} with its exact size ${statSync(vmdkPath).size}`);
  }

  const check = tool('qemu-img', ['check', '-f', 'vmdk', vmdkPath]);
  if (!/No errors were found/.test(check)) throw new Error(`qemu-img check: ${check}`);
  const raw = path.join(work, 'disk.raw');
  // Inflating every grain is the strict VMDK check (qemu-img check only looks at the tables).
  tool('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', vmdkPath, raw]);
  return { dir, members, ovf, ...checkDisk(raw), cleanup: () => rmSync(work, { recursive: true, force: true }) };
}

/** GPT, root filesystem and ESP checks on a raw disk image. */
export function checkDisk(raw: string): Omit<CheckedOutput, 'dir' | 'members' | 'ovf' | 'cleanup'> {
  tool('sgdisk', ['-v', raw]);

  const parts = JSON.parse(tool('sfdisk', ['--json', raw])).partitiontable.partitions as { start: number; size: number; type: string }[];
  const find = (type: string) => {
    const p = parts.find((x) => x.type.toUpperCase() === type);
    if (!p) throw new Error(`no partition of type ${type} in ${JSON.stringify(parts)}`);
    return { offset: p.start * 512, bytes: p.size * 512 };
  };
  const root = find(ROOT_TYPE);
  const esp = find(ESP_TYPE);
  const rootDev = `${raw}?offset=${root.offset}`;
  tool('e2fsck', ['-fn', rootDev]);
  const espImg = `${raw}.esp.img`;
  execFileSync('dd', [`if=${raw}`, `of=${espImg}`, 'bs=1M', 'iflag=skip_bytes,count_bytes', `skip=${esp.offset}`, `count=${esp.bytes}`, 'status=none']);
  tool('fsck.vfat', ['-n', espImg]);
  rmSync(espImg);

  return {
    raw,
    root,
    esp,
    debugfs: (request) => execFileSync('debugfs', ['-R', request, rootDev], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 }),
  };
}

/** Parsed `debugfs stat` of one path. */
export function inodeStat(out: CheckedOutput, file: string): { type: string; mode: number; uid: number; gid: number; size: number; text: string } {
  const text = out.debugfs(`stat "${file}"`).toString('latin1');
  const m = /Type: (\S+(?: special)?)\s+Mode:\s+(\d+)/.exec(text);
  if (!m) throw new Error(`debugfs stat ${file}: ${text || 'not found'}`);
  return {
    type: m[1],
    mode: parseInt(m[2], 8),
    uid: Number(/User:\s+(\d+)/.exec(text)?.[1]),
    gid: Number(/Group:\s+(\d+)/.exec(text)?.[1]),
    size: Number(/Size: (\d+)/.exec(text)?.[1]),
    text,
  };
}

/** Names in a directory of the root filesystem, as latin1 strings (one char per byte). */
export function listDir(out: CheckedOutput, dir: string): string[] {
  return out
    .debugfs(`ls -p "${dir}"`)
    .toString('latin1')
    .split('\n')
    .map((l) => l.split('/')[5])
    .filter((n): n is string => n !== undefined && n !== '' && n !== '.' && n !== '..');
}
