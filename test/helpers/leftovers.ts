import { existsSync, readdirSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { expect } from 'vitest';
import { C2V_BIN, PROJECT_ROOT } from './env.js';

export interface C2vRun {
  pid: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Starts `node bin/c2v.js ...`; the pid tells its containers apart from those of other runs on the same engine. */
export function startC2v(args: string[], opts: { env?: Record<string, string>; extendEnv?: boolean; node?: string } = {}): ResultPromise {
  return execa(opts.node ?? process.execPath, [C2V_BIN, ...args], {
    cwd: PROJECT_ROOT,
    reject: false,
    stdin: 'ignore',
    env: opts.env,
    extendEnv: opts.extendEnv ?? true,
    timeout: 600_000,
  });
}

/** Resolves with what `child` wrote to `stream` once it matches `pattern`; rejects after `timeoutMs` saying what never came. */
export function waitFor(child: ResultPromise, pattern: RegExp, what: string, stream: 'stderr' | 'stdout' = 'stderr', timeoutMs = 120_000): Promise<string> {
  let text = '';
  return new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} never came: ${text}`)), timeoutMs);
    child[stream]!.on('data', (c: Buffer) => {
      text += c.toString();
      if (pattern.test(text)) {
        clearTimeout(t);
        resolve(text);
      }
    });
  });
}

export async function runC2vWithPid(args: string[], opts: Parameters<typeof startC2v>[1] = {}): Promise<C2vRun> {
  const child = startC2v(args, opts);
  const pid = child.pid ?? -1;
  const r = await child;
  return { pid, exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Containers labelled as created by the c2v process `pid` (its session id starts with the pid). */
export async function containersOf(pid: number): Promise<string[]> {
  const r = await execa('docker', ['ps', '-a', '--filter', 'label=c2v.session', '--format', '{{.ID}} {{.Label "c2v.session"}}']);
  return String(r.stdout)
    .split('\n')
    .filter((l) => l.split(' ')[1]?.startsWith(`${pid}-`))
    .map((l) => l.split(' ')[0]);
}

/** Entries c2v may leave only while it runs: its workspace, partial copies, an old output being replaced. */
export function stagingLeftovers(...dirs: string[]): string[] {
  return dirs.filter((d) => existsSync(d)).flatMap((d) => readdirSync(d).filter((n) => /^\.c2v-work-|c2v-partial|c2v-old|\.partial$/.test(n)).map((n) => `${d}/${n}`));
}

/**
 * The contract for every failure: the exit code of its kind, one `c2v:` line matching `message` and no stack
 * trace, no output under the final name, no workspace or partial file, and no container of this run.
 */
export async function expectCleanFailure(r: C2vRun, exitCode: number, message: RegExp, where: { output: string; dirs: string[] }): Promise<void> {
  expect(r.exitCode, r.stderr).toBe(exitCode);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('c2v:'));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(existsSync(where.output), `${where.output} exists`).toBe(false);
  expect(stagingLeftovers(...where.dirs)).toEqual([]);
  expect(await containersOf(r.pid)).toEqual([]);
}
