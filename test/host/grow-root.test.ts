/**
 * templates/guest/grow-root.sh, which grows the root partition and its ext4 when the VM's disk grew. Its
 * partition-table steps run for real with the host's sfdisk, on a sparse image file laid out as c2v lays out its
 * disks (C2V_GROW_TEST_DISK); how it finds the root and decides runs in dry runs over fake /proc and /sys trees
 * (C2V_ROOT). No host disk is opened, partx and resize2fs are only named: they need a mounted root to act on.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { renderTemplate } from '../../src/plan/template.js';

const has = (argv: string[]) => spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' }).status === 0;
const SHELLS = [['sh'], ['busybox', 'sh']].filter((s) => has([...s, '-c', ':']));
const sfdisk = has(['sfdisk', '--version']);
const sgdisk = has(['sgdisk', '--version']);

const MiB = 2048; // sectors
const GiB = 1024 * MiB;
/** c2v's layout: BIOS boot and ESP first, on 1 MiB boundaries, the root last. */
const LAYOUT = [
  { start: MiB, size: MiB, type: '21686148-6449-6E6F-744E-656564454649' },
  { start: 2 * MiB, size: 64 * MiB, type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B' },
  { start: 66 * MiB, size: 700 * MiB, type: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709' },
];

let work: string;
let script: string;
beforeAll(async () => {
  const templates = await loadTemplates();
  work = mkdtempSync(path.join(os.tmpdir(), 'c2v-grow-root-'));
  script = path.join(work, 'grow-root');
  writeFileSync(script, renderTemplate(templates.growRoot, {}));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function growRoot(env: Record<string, string>, shell: string[] = ['sh']) {
  const r = spawnSync(shell[0], [...shell.slice(1), script], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  const raw = r.stderr.split('\n').filter(Boolean);
  for (const l of raw) expect(l).toMatch(/^c2v-grow-root: /);
  return { status: r.status, lines: raw.map((l) => l.slice('c2v-grow-root: '.length)) };
}

interface Table {
  label: string;
  lastlba: number;
  partitions: { node: string; start: number; size: number; type: string; uuid?: string }[];
}
const table = (file: string): Table => JSON.parse(spawnSync('sfdisk', ['--json', file], { encoding: 'utf8' }).stdout).partitiontable;
const verify = (file: string) => spawnSync('sgdisk', ['-v', file], { encoding: 'utf8' }).stdout;

describe.skipIf(!sfdisk)(`the partition-table steps, on an image file${sfdisk ? '' : ' (skipped: no sfdisk; apt-get install fdisk)'}`, () => {
  function image(name: string, label = 'gpt'): string {
    const file = path.join(work, name);
    writeFileSync(file, '');
    truncateSync(file, 767 * MiB * 512 + 34 * 512);
    const lines = label === 'gpt' ? LAYOUT.map((p) => `start=${p.start}, size=${p.size}, type=${p.type}`) : [`start=${MiB}, size=${700 * MiB}, type=83`];
    const r = spawnSync('sfdisk', ['-q', file], { input: `label: ${label}\n${lines.join('\n')}\n`, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return file;
  }

  it.each(SHELLS.map((s) => [s.join(' '), s]))('moves the backup GPT to the end and grows the last partition to it, under %s', (name, shell) => {
    const file = image(`disk-${name.replace(/\W+/g, '-')}.img`);
    const before = table(file);
    truncateSync(file, 3 * GiB * 512);
    if (sgdisk) expect(verify(file)).toMatch(/secondary header's self-pointer indicates that it doesn't reside\s+at the end of the disk/);

    const r = growRoot({ C2V_GROW_TEST_DISK: file, C2V_GROW_TEST_PART: '3' }, shell);
    expect(r.lines).toEqual([`grew partition 3 of ${file} to the end of the file`]);
    expect(r.status).toBe(0);
    const after = table(file);
    const lastLba = 3 * GiB - 34; // the backup GPT's 32 sectors of entries and its header follow
    expect(after.lastlba).toBe(lastLba);
    expect(after.partitions.slice(0, 2)).toEqual(before.partitions.slice(0, 2));
    const root = after.partitions[2];
    expect({ start: root.start, end: root.start + root.size - 1, type: root.type, uuid: root.uuid }).toEqual({
      start: LAYOUT[2].start,
      end: lastLba,
      type: LAYOUT[2].type,
      uuid: before.partitions[2].uuid,
    });
    if (sgdisk) expect(verify(file)).toMatch(/No problems found/);
  });

  it('leaves a disk alone that is not GPT', () => {
    const file = image('mbr.img', 'dos');
    truncateSync(file, 3 * GiB * 512);
    const before = table(file);
    const r = growRoot({ C2V_GROW_TEST_DISK: file, C2V_GROW_TEST_PART: '1' });
    expect(r.lines).toEqual([`${file} has a dos partition table, not GPT: not growing`]);
    expect(r.status).toBe(1);
    expect(table(file)).toEqual(before);
  });
});

type Part = { name: string; no: number; start: number; size: number };
/** /proc/self/mountinfo and the sysfs of one disk, as the kernel shows them; DEVNAME in uevent unless told not to. */
function fakeRoot(name: string, o: { disk: string; size: number; parts: Part[]; root: string; majmin?: string; fstype?: string; uevent?: boolean; noPartition?: boolean }): string {
  const root = path.join(work, name);
  const diskDir = path.join(root, 'sys/devices/pci0000:00/0000:00:10.0/block', o.disk);
  const write = (p: string, text: string) => {
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, text);
  };
  write(path.join(diskDir, 'size'), `${o.size}\n`);
  write(path.join(diskDir, 'uevent'), `MAJOR=8\nMINOR=0\nDEVNAME=${o.disk}\nDEVTYPE=disk\n`);
  for (const p of o.parts) {
    const d = path.join(diskDir, p.name);
    if (!o.noPartition) write(path.join(d, 'partition'), `${p.no}\n`);
    write(path.join(d, 'start'), `${p.start}\n`);
    write(path.join(d, 'size'), `${p.size}\n`);
    if (o.uevent !== false) write(path.join(d, 'uevent'), `MAJOR=8\nMINOR=${p.no}\nDEVNAME=${p.name}\nDEVTYPE=partition\n`);
  }
  const majmin = o.majmin ?? '8:3';
  mkdirSync(path.join(root, 'sys/dev/block'), { recursive: true });
  symlinkSync(path.relative(path.join(root, 'sys/dev/block'), path.join(diskDir, o.root)), path.join(root, 'sys/dev/block', majmin));
  // An initramfs's root mounted first, then the real one over it: the last line for / counts.
  write(
    path.join(root, 'proc/self/mountinfo'),
    `1 1 0:2 / / rw - rootfs rootfs rw\n22 1 ${majmin} / / rw,relatime shared:1 - ${o.fstype ?? 'ext4'} /dev/${o.root} rw\n23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n`,
  );
  return root;
}

const C2V_PARTS: Part[] = LAYOUT.map((p, i) => ({ name: `sda${i + 1}`, no: i + 1, start: p.start, size: p.size }));
const dry = (root: string) => growRoot({ C2V_ROOT: root, C2V_DRY_RUN: '1' });

describe('finding the root and deciding, on fake /proc and /sys trees', () => {
  it('grows the last partition when the disk has room after it', () => {
    const r = dry(fakeRoot('grown', { disk: 'sda', size: 3 * GiB, parts: C2V_PARTS, root: 'sda3' }));
    expect(r.lines).toEqual([
      'dry run: would run: sfdisk --relocate gpt-bak-std /dev/sda',
      "dry run: would run: echo ', +' | sfdisk --no-reread --no-tell-kernel --force -N 3 /dev/sda",
      'dry run: would run: partx --update --nr 3 /dev/sda',
      'dry run: would run: resize2fs /dev/sda3',
      'would grow /dev/sda3 from 700 MiB to the end of the disk (3 GiB)',
    ]);
    expect(r.status).toBe(0);
  });

  it('finds NVMe names from sysfs, without a uevent to read them from', () => {
    const parts = LAYOUT.map((p, i) => ({ name: `nvme0n1p${i + 1}`, no: i + 1, start: p.start, size: p.size }));
    const r = dry(fakeRoot('nvme', { disk: 'nvme0n1', size: 2560 * MiB, parts, root: 'nvme0n1p3', majmin: '259:3', uevent: false }));
    expect(r.lines.slice(-3)).toEqual([
      'dry run: would run: partx --update --nr 3 /dev/nvme0n1',
      'dry run: would run: resize2fs /dev/nvme0n1p3',
      'would grow /dev/nvme0n1p3 from 700 MiB to the end of the disk (2560 MiB)',
    ]);
  });

  it('says nothing when there is nothing to grow: less than 1 MiB free, or grown already', () => {
    const end = LAYOUT[2].start + LAYOUT[2].size;
    for (const [name, size] of [
      ['small', end + 2048 + 32],
      ['done', end + 33],
    ] as const) {
      const r = dry(fakeRoot(`nothing-${name}`, { disk: 'sda', size, parts: C2V_PARTS, root: 'sda3' }));
      expect(r, name).toEqual({ status: 0, lines: [] });
    }
    expect(dry(fakeRoot('enough', { disk: 'sda', size: end + 2048 + 33, parts: C2V_PARTS, root: 'sda3' })).lines).toHaveLength(5);
  });

  it('leaves a root alone that is not the last partition, not ext4, or not a partition, saying why once', () => {
    const swap = { name: 'sda4', no: 4, start: 800 * MiB, size: 100 * MiB };
    expect(dry(fakeRoot('not-last', { disk: 'sda', size: 3 * GiB, parts: [...C2V_PARTS, swap], root: 'sda3' })).lines).toEqual([
      '/dev/sda has 2306 MiB unused, but the root (/dev/sda3) is not its last partition: not growing',
    ]);
    expect(dry(fakeRoot('xfs', { disk: 'sda', size: 3 * GiB, parts: C2V_PARTS, root: 'sda3', fstype: 'xfs' })).lines).toEqual([
      '/dev/sda has 2306 MiB unused, but the root (/dev/sda3) is xfs, not ext4: not growing',
    ]);
    expect(dry(fakeRoot('whole-disk', { disk: 'sda', size: 3 * GiB, parts: C2V_PARTS, root: 'sda3', noPartition: true }))).toEqual({ status: 0, lines: [] });
  });

  it('refuses a prefix without a dry run', () => {
    const r = growRoot({ C2V_ROOT: work });
    expect(r).toEqual({ status: 2, lines: ['C2V_ROOT and C2V_DRY_RUN=1 go together (host tests only)'] });
  });
});
