import { execa } from 'execa';
import { C2V_BIN } from './env.js';

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function runC2v(args: string[], opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliRun> {
  const r = await execa('node', [C2V_BIN, ...args], {
    cwd: opts.cwd,
    reject: false,
    timeout: opts.timeoutMs ?? 900_000,
    env: opts.env,
    stdin: 'ignore',
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Containers that c2v created and did not remove (it labels every one). */
export async function strayContainers(): Promise<string[]> {
  const r = await execa('docker', ['ps', '-a', '--filter', 'label=c2v.session', '--format', '{{.ID}}']);
  return String(r.stdout).split('\n').filter(Boolean);
}
