// Benchmark (not a test): the root image of --format netboot, tar2sqfs's compressors and levels on one image's
// file system. Usage: node scripts/bench.d/squashfs.mjs [IMAGE] [SETTINGS]
//   IMAGE: an engine image to export (default debian:bookworm, made by scripts/prepare).
//   SETTINGS: comma-separated compressor[:level] (default zstd:3,zstd:9,zstd:15,xz); c2v uses the zstd level in
//   src/adapters/squashfs.ts. Each is timed on the same exported tar (kept in a temporary folder, then removed).
// Keep other work off the machine: tar2sqfs uses every core.
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';

const image = process.argv[2] || 'debian:bookworm';
const settingsArg = process.argv[3] || 'zstd:3,zstd:9,zstd:15,xz';
const MB = 1e6;

function run(cmd, argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { stdio: [opts.stdin ? 'pipe' : 'ignore', opts.stdout ? 'pipe' : 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    if (opts.stdout) child.stdout.pipe(opts.stdout);
    if (opts.stdin) opts.stdin(child.stdin);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`${cmd} failed (${code}): ${err.trim()}`))));
  });
}

const dir = await mkdtemp(path.join(tmpdir(), 'c2v-sqfs-bench-'));
try {
  const tar = path.join(dir, 'root.tar');
  const id = await new Promise((resolve, reject) => {
    const c = spawn('docker', ['create', image, '/bin/true']);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`docker create ${image} failed`))));
  });
  try {
    await run('docker', ['export', id], { stdout: createWriteStream(tar) });
  } finally {
    await run('docker', ['rm', id]);
  }
  const tarMB = (await stat(tar)).size / MB;
  console.log(`${image}: ${tarMB.toFixed(1)} MB of tar, ${availableParallelism()} cores`);
  console.log('| compressor | seconds | MB | MB/s of tar |');
  console.log('| --- | --- | --- | --- |');
  for (const setting of settingsArg.split(',')) {
    const [comp, level] = setting.split(':');
    const out = path.join(dir, `${comp}-${level ?? 'default'}.sqfs`);
    const args = ['-c', comp, ...(level ? ['-X', `level=${level}`] : []), '-j', String(availableParallelism()), '-q', '-f', out];
    const seconds = await run('tar2sqfs', args, { stdin: (s) => createReadStream(tar).pipe(s) });
    const mb = (await stat(out)).size / MB;
    console.log(`| ${setting} | ${seconds.toFixed(1)} | ${mb.toFixed(1)} | ${(tarMB / seconds).toFixed(0)} |`);
    await rm(out);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
