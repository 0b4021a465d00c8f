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

  it('refuses the transports it cannot read yet, saying how to load the image instead', async () => {
    expect((await refusal('docker-archive:dist/app.tar')).message).toMatch(/^docker-archive: inputs are not supported yet: load it into the engine first \(docker load -i FILE\)/);
    expect((await refusal('oci:dist/layout:1.4')).message).toMatch(/skopeo copy oci:DIR docker-daemon:NAME:TAG/);
    expect((await refusal('docker://registry.example/app:1')).message).toMatch(/without docker:\/\//);
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
    expect((e as C2vError).message).toMatch(/^building Dockerfile needs an image builder and none is available/);
    expect(() => requireBuilder({ source }, 'the appliance step')).toThrow(/the appliance step needs an image builder/);
  });

  it('an image the source does not hold, and cannot pull, is named with what to do', async () => {
    const bare = await acquireImage({ source }, await classifyInput('app:1.4', { pull: true }), { name: 'x' }).catch((err: unknown) => err);
    expect((bare as C2vError).message).toBe('image app:1.4 is not present locally: build or pull it first, or drop --no-pull');
    const daemon = await acquireImage({ source }, await classifyInput('docker-daemon:app:1.4', { pull: true }), { name: 'x' }).catch((err: unknown) => err);
    expect((daemon as C2vError).message).toBe('image app:1.4 is not present locally: build or pull it first, docker-daemon: names an image the engine already holds');
  });
});
