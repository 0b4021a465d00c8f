import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { C2vError } from '../../src/errors.js';
import { acquireImage, requireBuilder } from '../../src/stages/acquire.js';
import { classifyInput, defaultName } from '../../src/stages/input.js';
import type { ImageSource } from '../../src/adapters/engine.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer) => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};

async function refusal(input: string): Promise<C2vError> {
  try {
    await classifyInput(input, { pull: true });
  } catch (e) {
    expect(e).toBeInstanceOf(C2vError);
    return e as C2vError;
  }
  throw new Error(`${input} was accepted`);
}

describe('the input, by its form', () => {
  it('takes files named as Dockerfiles, and other files whose first instruction is FROM or ARG', async () => {
    for (const name of ['Dockerfile', 'Containerfile', 'app.Dockerfile', 'Dockerfile.prod']) {
      expect(await classifyInput(file(name, 'FROM debian\n'), { pull: true })).toEqual({ kind: 'dockerfile', contextDir: dir, dockerfile: name });
    }
    expect((await classifyInput(file('build.txt', '# syntax=docker/dockerfile:1\n\n# a comment\nARG BASE=debian\nFROM ${BASE}\n'), { pull: true })).kind).toBe('dockerfile');
  });

  it('refuses any other file in one line, rather than handing it to a builder', async () => {
    const tar = Buffer.alloc(1024);
    tar.write('etc/hostname', 0);
    tar.write('ustar', 257);
    const e = await refusal(file('image.tar', tar));
    expect(e.code).toBe('input');
    expect(e.message).toMatch(/image\.tar is a file but not a Dockerfile/);
    expect((await refusal(file('notes.md', 'RUN apt-get install nothing\n'))).message).toMatch(/not a Dockerfile/);
  });

  it('takes a directory with a Dockerfile as a build context, and refuses one without', async () => {
    const ctx = path.join(dir, 'ctx');
    mkdirSync(ctx);
    expect((await refusal(ctx)).message).toMatch(/directory without a Dockerfile/);
    writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM debian\n');
    expect(await classifyInput(ctx, { pull: true })).toEqual({ kind: 'dockerfile', contextDir: ctx, dockerfile: 'Dockerfile' });
    expect(defaultName(await classifyInput(ctx, { pull: true }))).toBe('ctx');
  });

  it('reads image references: bare ones are pulled when allowed, docker-daemon: ones never', async () => {
    expect(await classifyInput('registry.example:5000/team/app:1.4', { pull: true })).toEqual({
      kind: 'image',
      transport: 'docker-daemon',
      explicit: false,
      ref: 'registry.example:5000/team/app:1.4',
      pull: true,
    });
    expect(await classifyInput('app:1.4', { pull: false })).toMatchObject({ pull: false });
    expect(await classifyInput('docker-daemon:app:1.4', { pull: true })).toMatchObject({ ref: 'app:1.4', explicit: true, pull: false });
    expect(defaultName(await classifyInput('docker-daemon:team/my_app:1.4', { pull: true }))).toBe('my_app');
  });

  it('reads the transports of containers-transports(5): files, layouts and registries', async () => {
    const tar = file('app.tar', Buffer.alloc(1024));
    expect(await classifyInput(`docker-archive:${tar}`, { pull: true })).toEqual({ kind: 'image', transport: 'docker-archive', explicit: true, ref: `docker-archive:${tar}`, pull: false, path: tar, selector: undefined });
    // The path is the longest prefix that exists, so tags may hold colons.
    expect(await classifyInput(`docker-archive:${tar}:team/app:1.4`, { pull: true })).toMatchObject({ path: tar, selector: 'team/app:1.4' });
    expect(defaultName(await classifyInput(`docker-archive:${tar}:team/web:1.4`, { pull: true }))).toBe('web');
    expect(defaultName(await classifyInput(`oci-archive:${tar}`, { pull: true }))).toBe('app');
    const layout = path.join(dir, 'layout');
    mkdirSync(layout);
    expect(await classifyInput(`oci:${layout}:1.4`, { pull: true })).toMatchObject({ transport: 'oci', path: layout, selector: '1.4' });
    expect(await classifyInput('docker://registry.example:5000/team/app:1.4', { pull: false })).toEqual({ kind: 'image', transport: 'docker', explicit: true, ref: 'registry.example:5000/team/app:1.4', pull: true });
  });

  it('refuses a transport given the wrong kind of path, a missing one, or a malformed reference, in one line', async () => {
    const tar = file('other.tar', Buffer.alloc(1024));
    expect((await refusal(`oci:${tar}`)).message).toMatch(/takes a directory \(an OCI layout\), and .* is a file: for a tar of a layout use oci-archive:/);
    expect((await refusal(`docker-archive:${dir}`)).message).toMatch(/takes a tar file, and .* is a directory/);
    expect((await refusal('docker-archive:dist/missing.tar')).message).toMatch(/dist\/missing\.tar does not exist/);
    expect((await refusal('docker:registry.example/app:1')).message).toMatch(/spell it docker:\/\/HOST\/REPOSITORY:TAG/);
    expect((await refusal('docker://Registry/App')).message).toMatch(/not name a valid image reference after docker:\/\//);
    expect((await refusal('Not A Ref!')).message).toMatch(/neither an existing file or directory nor a valid image reference/);
  });
});

describe('what an input needs', () => {
  const source: ImageSource = { name: 'files', inspect: async () => undefined, openRootfs: async () => Promise.reject(new Error('not reached')) };

  it('a Dockerfile needs a builder: without one, one line that says so', async () => {
    const input = await classifyInput(file('Dockerfile', 'FROM debian\n'), { pull: true });
    const e = await acquireImage({ source }, input, { name: 'x' }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(C2vError);
    expect((e as C2vError).code).toBe('engine');
    expect((e as C2vError).message).toMatch(/^building Dockerfile needs an image builder, and none is available/);
    expect(() => requireBuilder({ source }, 'the appliance step')).toThrow(/the appliance step needs an image builder, and none is available: run c2v where a Docker engine answers/);
  });

  it('an image the source does not hold, and cannot pull, is named with what to do', async () => {
    const bare = await acquireImage({ source }, await classifyInput('app:1.4', { pull: true }), { name: 'x' }).catch((err: unknown) => err);
    expect((bare as C2vError).message).toBe('image app:1.4 is not present locally: build or pull it first, or drop --no-pull');
    const daemon = await acquireImage({ source }, await classifyInput('docker-daemon:app:1.4', { pull: true }), { name: 'x' }).catch((err: unknown) => err);
    expect((daemon as C2vError).message).toBe('image app:1.4 is not present locally: build or pull it first, docker-daemon: names an image the engine already holds');
  });
});
