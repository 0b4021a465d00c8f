import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { craftImage, writeDockerArchive, writeOciLayout } from '../helpers/oci-images.js';
import { runC2v } from '../helpers/run-cli.js';
import type { TarEntry } from '../helpers/crafted-tar.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'c2v-bad-images-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const base: TarEntry[] = [
  { name: 'etc/', type: 'dir' },
  { name: 'etc/os-release', data: 'ID=debian\nVERSION_ID=12\n' },
];

/** Converts with no engine reachable; the run must fail in one line, with its code, leaving only its input. */
async function refused(dir: string, input: string, extra: string[] = []): Promise<{ line: string; exitCode: number }> {
  const before = readdirSync(dir).sort();
  const r = await runC2v(['convert', input, '-o', path.join(dir, 'out.ova'), ...extra], { env: { DOCKER_HOST: `unix://${dir}/no-engine.sock` }, timeoutMs: 60_000 });
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('c2v:'));
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr.trim().split('\n').pop()).toBe(lines[0]);
  expect(readdirSync(dir).sort()).toEqual(before);
  return { line: lines[0], exitCode: r.exitCode };
}

function caseDir(name: string): string {
  const dir = path.join(root, name);
  rmSync(dir, { recursive: true, force: true });
  return mkdtempSync(`${dir}-`);
}

describe('docker save archives, old and new', () => {
  it.each(['legacy', 'blobs'] as const)('%s form, a repeated layer stored once: planned with no engine', async (form) => {
    const dir = caseDir(`form-${form}`);
    const file = path.join(dir, 'app.tar');
    // The same layer twice (a RUN that changed nothing twice): stored once, named twice.
    const same: TarEntry[] = [{ name: 'opt/', type: 'dir' }, { name: 'opt/same', data: 'same' }];
    await writeDockerArchive(file, await craftImage([base, same, [{ name: 'etc/app', data: 'x' }], same]), 'crafted:1', form);
    const r = await runC2v(['convert', `docker-archive:${file}:crafted:1`, '--plan', '--json'], { env: { DOCKER_HOST: `unix://${dir}/no-engine.sock` } });
    expect(r.exitCode, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout.trim().split('\n').pop()!).plan;
    expect(plan.image.sizeBytes).toBe('ID=debian\nVERSION_ID=12\n'.length + 'same'.length + 1);
    expect(plan.appliance.family).toBe('debian');
  });
});

describe('damaged and hostile images read without an engine: one line, a non-zero exit, nothing left', () => {
  it('a truncated docker save archive', async () => {
    const dir = caseDir('truncated');
    const file = path.join(dir, 'app.tar');
    await writeDockerArchive(file, await craftImage([[...base, { name: 'big', data: Buffer.alloc(64 * 1024, 7) }]]));
    truncateSync(file, Math.floor(readFileSync(file).length / 2));
    const r = await refused(dir, `docker-archive:${file}`);
    expect(r.line).toMatch(/is truncated \(it ends inside a member\)|has no manifest\.json/);
    expect(r.exitCode).toBe(3);
  });

  it('a layer whose bytes do not match its digest names the blob', async () => {
    const dir = caseDir('digest');
    const image = await craftImage([base, [{ name: 'app', data: 'the real content' }]]);
    writeOciLayout(path.join(dir, 'layout'), image, {
      damage: (blobs) => {
        // The top layer's first file byte flipped, its name kept: a bit flip on disk or a tampered copy.
        const digest = [...blobs.keys()][2];
        const copy = Buffer.from(blobs.get(digest)!);
        copy[512] ^= 0xff;
        blobs.set(digest, copy);
      },
    });
    const r = await refused(dir, `oci:${path.join(dir, 'layout')}`);
    expect(r.line).toMatch(/^c2v: layer 2 of 2 \(sha256:[0-9a-f]{12}…\) of oci:.*the stored blob does not match its digest \(expected sha256:/);
    expect(r.exitCode).toBe(3);
  });

  it('a manifest naming a blob the layout does not have', async () => {
    const dir = caseDir('missing');
    const image = await craftImage([base, [{ name: 'app', data: 'x' }]]);
    writeOciLayout(path.join(dir, 'layout'), image, { damage: (blobs) => blobs.delete([...blobs.keys()][2]) });
    const r = await refused(dir, `oci:${path.join(dir, 'layout')}`);
    expect(r.line).toMatch(/has no blob for layer 2, sha256:[0-9a-f]{64}: the layout is incomplete/);
    expect(r.exitCode).toBe(3);
  });

  it.each([
    ['../ in a name', [{ name: '../escape', data: 'x' }], /holds an entry named "\.\.\/escape", with a '\.\.' component/],
    ['an absolute name', [{ name: '/etc/passwd', data: 'x' }], /holds an entry named "\/etc\/passwd", an absolute path/],
    ['a whiteout of ..', [{ name: 'etc/.wh...', data: '' }], /a whiteout of "\.\."/],
  ] as [string, TarEntry[], RegExp][])('a layer entry with %s', async (what, top, message) => {
    const dir = caseDir(what.replace(/\W+/g, '-'));
    await writeDockerArchive(path.join(dir, 'app.tar'), await craftImage([base, top]));
    const r = await refused(dir, `docker-archive:${path.join(dir, 'app.tar')}`);
    expect(r.line).toMatch(message);
    expect(r.line).toMatch(/^c2v: layer 2 of 2/);
    expect(r.exitCode).toBe(3);
  });

  it('a layer that inflates past the disk size', async () => {
    const dir = caseDir('bomb');
    const zeros = 96 * 1024 * 1024;
    const image = await craftImage([base, [{ name: 'zeros', size: zeros, chunks: function* () { for (let i = 0; i < zeros / (1 << 20); i++) yield Buffer.alloc(1 << 20); } }]]);
    writeOciLayout(path.join(dir, 'layout'), image, { gzip: true });
    const r = await refused(dir, `oci:${path.join(dir, 'layout')}`, ['--disk-size', '64M']);
    expect(r.line).toMatch(/^c2v: layer 2 of 2 .* inflates past 64(\.0)? MiB, more than the disk can hold: raise --disk-size/);
    expect(r.exitCode).toBe(3);
  });

  it('an archive with several images and no tag to choose one', async () => {
    const dir = caseDir('several');
    const file = path.join(dir, 'two.tar');
    await writeDockerArchive(file, await craftImage([base]), 'one:1');
    const manifest = [{ Config: 'a.json', RepoTags: ['one:1'], Layers: [] }, { Config: 'b.json', RepoTags: ['two:2'], Layers: [] }];
    const { tarBuffer } = await import('../helpers/crafted-tar.js');
    writeFileSync(file, await tarBuffer([{ name: 'manifest.json', data: JSON.stringify(manifest) }]));
    const r = await refused(dir, `docker-archive:${file}`);
    expect(r.line).toMatch(/holds 2 images \(one:1, two:2\): name one, like docker-archive:.*two\.tar:one:1/);
  });
});
