// Benchmark (not a test): c2v's compressed qcow2 writer against `qemu-img convert -c`, on one raw disk.
// Usage: node scripts/bench.d/qcow2.mjs [RAW] [LEVELS=6,5] [ENGINE]
//   RAW: a raw disk image; without it, a 1 GiB sparse one with ~600 MB of files from /usr is built (and removed).
//   LEVELS: c2v's deflate levels, comma-separated, one run each (qemu-img uses zlib's default, 6, with a 4 KiB
//   window). ENGINE: c2v's deflate engine (default: the best that loads). Pass '' for RAW to build one.
// c2v's writer comes from dist/ (`npm run build` first), or from $C2V_DIST (a directory holding stages/qcow2.js).
// Every output is checked with `qemu-img compare` against the raw disk. Keep other work off the machine.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, writeSync, ftruncateSync, lstatSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = process.env.C2V_DIST ?? path.resolve(HERE, '../../dist');
const [rawArg, levelsArg = '6,5', engine] = process.argv.slice(2);
const GiB = 2 ** 30;
const MB = 1e6;

function log(line) {
  process.stderr.write(`[qcow2-bench] ${line}\n`);
}

function run(cmd, argv) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}): ${out.trim()}`));
      else resolve({ seconds: (performance.now() - t0) / 1000, out });
    });
  });
}

/** Regular files under dir, in a stable order. */
function* files(dir) {
  let names;
  try {
    names = readdirSync(dir).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const st = lstatSync(p);
    if (st.isDirectory()) yield* files(p);
    else if (st.isFile() && st.size > 0) yield p;
  }
}

/** A 1 GiB sparse raw disk: files from /usr packed at 4 KiB boundaries like a file system would, up to ~600 MB. */
function buildRaw(rawPath) {
  const fd = openSync(rawPath, 'w');
  try {
    ftruncateSync(fd, GiB);
    let at = 1024 * 1024; // leave the first MiB as a hole, as a partition table's gap would be
    for (const p of files('/usr')) {
      if (at > 600 * MB) break;
      let data;
      try {
        data = readFileSync(p);
      } catch {
        continue;
      }
      if (at + data.length > GiB) continue;
      writeSync(fd, data, 0, data.length, at);
      at = Math.ceil((at + data.length) / 4096) * 4096;
    }
    log(`built ${rawPath}: ${(at / MB).toFixed(0)} MB of /usr in 1 GiB`);
  } finally {
    closeSync(fd);
  }
}

const work = await mkdtemp(path.join(process.env.C2V_BENCH_DIR ?? tmpdir(), 'c2v-qcow2-bench-'));
try {
  const raw = rawArg || path.join(work, 'disk.raw');
  if (!rawArg) buildRaw(raw);
  const rows = [];
  const check = async (label, out, seconds) => {
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, out]);
    if (!/Images are identical/.test(cmp.out)) throw new Error(`${label}: ${out} differs from ${raw}`);
    rows.push({ label, seconds, bytes: (await stat(out)).size });
    await rm(out);
  };
  // Page cache warm for everyone: the first reader would pay for the disk otherwise.
  await run('sh', ['-c', 'cat "$0" > /dev/null', raw]);

  log('(a) qemu-img convert -c');
  const a = path.join(work, 'a.qcow2');
  await check('qemu-img convert -c', a, (await run('qemu-img', ['convert', '-c', '-O', 'qcow2', raw, a])).seconds);

  log('(b) qemu-img convert -c -m 2 -W');
  const b = path.join(work, 'b.qcow2');
  await check('qemu-img convert -c -m 2 -W', b, (await run('qemu-img', ['convert', '-c', '-O', 'qcow2', '-m', '2', '-W', raw, b])).seconds);

  const module = path.join(DIST, 'stages', 'qcow2.js');
  let writer;
  try {
    ({ writeQcow2: writer } = await import(pathToFileURL(module).href));
  } catch (e) {
    log(`(c) skipped: ${module} does not load (${e.message.split('\n')[0]}); run npm run build`);
  }
  for (const level of writer ? levelsArg.split(',').map(Number) : []) {
    log(`(c) c2v writeQcow2, level ${level}`);
    const c = path.join(work, 'c.qcow2');
    const t0 = performance.now();
    const r = await writer(raw, c, { capacityBytes: (await stat(raw)).size, compressLevel: level, engine: engine || undefined });
    const seconds = (performance.now() - t0) / 1000;
    await check(`c2v writeQcow2 (${r.engine}, level ${level})`, c, seconds);
  }

  const base = rows[0];
  const width = Math.max(...rows.map((r) => r.label.length));
  console.log(`raw disk: ${raw} (${((await stat(raw)).size / GiB).toFixed(2)} GiB)`);
  console.log(`${'writer'.padEnd(width)}  ${'seconds'.padStart(8)}  ${'MB'.padStart(8)}  ${'speed vs (a)'.padStart(12)}  ${'size vs (a)'.padStart(11)}`);
  for (const r of rows) {
    console.log(
      `${r.label.padEnd(width)}  ${r.seconds.toFixed(2).padStart(8)}  ${(r.bytes / MB).toFixed(1).padStart(8)}  ${`${(base.seconds / r.seconds).toFixed(2)}x`.padStart(12)}  ${(r.bytes / base.bytes).toFixed(3).padStart(11)}`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
