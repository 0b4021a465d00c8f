import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runC2v } from '../helpers/run-cli.js';

/** `c2v prepare` with no engine to ask: what it writes, and what it refuses. Kaniko builds its output in test/docker. */
const root = mkdtempSync(path.join(os.tmpdir(), 'c2v-prepare-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const noEngine = { DOCKER_HOST: `unix://${root}/no-engine.sock` };

function context(name: string, dockerfile: string, files: Record<string, string> = {}): string {
  const dir = path.join(root, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'Dockerfile'), dockerfile);
  for (const [f, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), content);
  }
  return dir;
}

async function prepare(args: string[]): Promise<{ exitCode: number; info: Record<string, unknown>; stderr: string }> {
  const r = await runC2v(['prepare', ...args, '--json'], { env: noEngine, timeoutMs: 60_000 });
  const last = r.stdout.trim().split('\n').pop();
  return { exitCode: r.exitCode, info: last ? JSON.parse(last) : {}, stderr: r.stderr };
}

describe('c2v prepare', () => {
  it('appends the packages stage after the last stage of a multi-stage Dockerfile, with a copy of the context', async () => {
    const ctx = context('multi', 'FROM golang:1.22 AS build\nUSER builder\nRUN go build\nFROM debian:bookworm\nCOPY --from=build /app /app\nUSER 1000:1000\nCMD ["/app"]\n', { 'src/main.go': 'package main\n', '.dockerignore': 'secrets\n' });
    symlinkSync('src/main.go', path.join(ctx, 'link'));
    const out = path.join(root, 'multi-out');
    const r = await prepare([ctx, '-o', out, '--init', 'openrc', '--ssh']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.info).toMatchObject({ event: 'prepared', base: 'c2v-app', user: '1000:1000', userFrom: 'the Dockerfile' });
    const dockerfile = readFileSync(path.join(out, 'Dockerfile'), 'utf8');
    const users = 'FROM golang:1.22 AS build\nUSER builder\nRUN go build\nFROM debian:bookworm AS c2v-app\nCOPY --from=build /app /app\nUSER 1000:1000\nCMD ["/app"]\n\n';
    expect(dockerfile.startsWith(users)).toBe(true);
    const appended = dockerfile.slice(users.length);
    expect(appended).toMatch(/^FROM c2v-app$/m);
    expect(appended).toMatch(/^ARG C2V_INIT=openrc$/m);
    expect(appended).toMatch(/^ARG C2V_SSH=1$/m);
    expect(appended).toMatch(/^ARG C2V_USER=1000:1000\nUSER \$\{C2V_USER\}\n$/m);
    expect(readFileSync(path.join(out, 'src/main.go'), 'utf8')).toBe('package main\n');
    expect(readFileSync(path.join(out, '.dockerignore'), 'utf8')).toBe('secrets\n');
    expect(statSync(path.join(out, 'c2v-packages/c2v-packages.sh')).mode & 0o777).toBe(0o755);
    expect(existsSync(path.join(out, 'c2v-packages/interfaces'))).toBe(true);
    expect(readFileSync(path.join(ctx, 'Dockerfile'), 'utf8')).not.toContain('c2v');
  });

  it('builds FROM an image reference; with no engine to ask, says the USER is not known', async () => {
    const out = path.join(root, 'ref-out');
    const r = await prepare(['registry.lan:5000/team/app:1.4', '-o', out]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.info).toMatchObject({ base: 'registry.lan:5000/team/app:1.4', user: 'root' });
    expect(String(r.info.userFrom)).toMatch(/^not known: registry\.lan:5000\/team\/app:1\.4 could not be looked up here, so the app runs as root/);
    expect(readFileSync(path.join(out, 'Dockerfile'), 'utf8')).toMatch(/^FROM registry\.lan:5000\/team\/app:1\.4$/m);
  });

  it('refuses, in one line, what it cannot do', async () => {
    const ctx = context('refuse', 'FROM debian\n');
    const inside = await prepare([ctx, '-o', path.join(ctx, 'out')]);
    expect(inside.exitCode).toBe(2);
    expect(inside.stderr).toMatch(/is inside the build context/);
    const busy = path.join(root, 'busy');
    mkdirSync(busy);
    writeFileSync(path.join(busy, 'x'), '');
    expect((await prepare([ctx, '-o', busy])).stderr).toMatch(/already exists and is not an empty folder/);
    const tar = path.join(root, 'image.tar');
    writeFileSync(tar, Buffer.alloc(1024));
    expect((await prepare([`docker-archive:${tar}`, '-o', path.join(root, 'tar-out')])).stderr).toMatch(/builds FROM a registry image, and .* is a file: push it to a registry first/);
    const hostile = context('hostile', 'FROM debian\nUSER "app\\nRUN"\n');
    const h = await prepare([hostile, '-o', path.join(root, 'hostile-out')]);
    expect(h.exitCode).toBe(3);
    expect(h.stderr).toMatch(/is not a user or uid\[:group\] c2v can carry through a build/);
  });
});
