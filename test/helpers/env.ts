import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const C2V_BIN = path.join(PROJECT_ROOT, 'bin', 'c2v.js');
export const EXAMPLE_DIR = path.join(PROJECT_ROOT, 'examples', 'debian-vm');

/** Tests need a running engine and the built CLI; scripts/test provides both. Fail loudly rather than skip. */
export function requireDockerEngine(): void {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore' });
  } catch {
    throw new Error('no Docker engine answers: run scripts/start-dockerd (scripts/test does it for you)');
  }
}
