import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { tarStream, type TarEntry } from './crafted-tar.js';

/**
 * Test images made with `docker import` from a crafted tar streamed on stdin: no registry, no build, seconds.
 * Returns the image id. The engine may normalise entries (see docs/robustness.md), so tests check what the
 * export really holds where it matters.
 */
export async function importImage(tag: string, entries: Iterable<TarEntry>): Promise<string> {
  const child = spawn('docker', ['import', '-', tag], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  await pipeline(tarStream(entries), child.stdin).catch(() => undefined);
  const code = await exited;
  if (code !== 0) throw new Error(`docker import ${tag} failed (${code}): ${err.trim()}`);
  return out.trim();
}

export async function removeImages(...refs: string[]): Promise<void> {
  await execa('docker', ['rmi', '-f', ...refs], { reject: false });
}

/** Builds a Dockerfile given as text (context: an empty folder) and returns the image id. */
export async function buildImage(tag: string, dockerfile: string, contextDir: string): Promise<string> {
  writeFileSync(path.join(contextDir, 'Dockerfile'), dockerfile);
  await execa('docker', ['build', '-q', '-t', tag, contextDir]);
  return String((await execa('docker', ['image', 'inspect', '-f', '{{.Id}}', tag])).stdout).trim();
}
