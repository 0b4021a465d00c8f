// c2v's performance benchmark (see scripts/bench): prints, from one run on this machine, qemu-img against c2v's
// VMDK writer, the seed-style shell pipeline against `c2v convert`, c2v's peak RSS and stage timings, and the
// --compress-level curve. Options: --quick (the ~600 MB image only, no 64 GiB disks), --keep (keep the work dir).
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const C2V = path.join(ROOT, 'bin', 'c2v.js');
const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const WORK = process.env.C2V_BENCH_DIR ?? '/var/tmp/c2v-bench';
const MB = 1e6;
const { DEFAULT_COMPRESS_LEVEL: DEFAULT_LEVEL } = await import('../../dist/formats/vmdk.js');
const GiB = 2 ** 30;

const SMALL = { label: 'debian-vm (~600 MB)', ref: 'c2v-build/debian-vm:latest' };
const BIG = { label: 'debian-2g (~2 GB)', ref: 'c2v-bench/debian-2g:latest' };

function log(line) {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Runs a command; wall time, exit code, output, and the peak RSS of that process (VmHWM, polled). */
function measure(cmd, argv, { cwd = ROOT, env } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hwm = 0;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const poll = setInterval(async () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwm = Math.max(hwm, Number(m[1]));
      } catch {
        // exited between ticks
      }
    }, 50);
    child.on('error', (e) => {
      clearInterval(poll);
      reject(e);
    });
    child.on('close', (code) => {
      clearInterval(poll);
      resolve({ seconds: (performance.now() - t0) / 1000, code, stdout, stderr, peakRssMiB: hwm / 1024 });
    });
  });
}

async function must(cmd, argv, opts) {
  const r = await measure(cmd, argv, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.code}): ${r.stderr.trim().split('\n').slice(-5).join('\n')}`);
  return r;
}

async function imageExists(ref) {
  return (await measure('docker', ['image', 'inspect', ref])).code === 0;
}

async function ensureImages() {
  if (!(await imageExists(SMALL.ref))) {
    log(`building ${SMALL.ref} from examples/debian-vm`);
    await must('docker', ['build', '-q', '-t', SMALL.ref, path.join(ROOT, 'examples', 'debian-vm')]);
  }
  if (!quick && !(await imageExists(BIG.ref))) {
    log(`building ${BIG.ref} (the example plus ~1.4 GB of data)`);
    await must('docker', ['build', '-q', '--build-arg', `BASE=${SMALL.ref}`, '-t', BIG.ref, '-f', path.join(HERE, 'Dockerfile.2g'), HERE]);
  }
}

/** c2v convert with --json: wall time, peak RSS, and the result event. */
async function c2v(argv, env) {
  const r = await must('node', [C2V, 'convert', ...argv, '--json'], { env });
  const events = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const result = events.find((e) => e.event === 'result');
  const vmdk = events.find((e) => e.event === 'stage' && e.stage === 'vmdk' && e.status === 'done');
  return { ...r, result, vmdkSummary: vmdk?.summary };
}

const f1 = (n) => n.toFixed(1);
const f2 = (n) => n.toFixed(2);
const mb = (bytes) => (bytes / MB).toFixed(1);

function table(title, head, rows) {
  const all = [head, ...rows].map((r) => r.map(String));
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const out = [`\n### ${title}`, line(all[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...all.slice(1).map(line)];
  process.stdout.write(`${out.join('\n')}\n`);
}

function stageLine(timings) {
  return timings.map((t) => `${t.stage} ${f1(t.seconds)}`).join(', ');
}

async function main() {
  const loadBefore = loadavg()[0];
  await rm(WORK, { recursive: true, force: true });
  await mkdir(WORK, { recursive: true });
  await ensureImages();
  const images = quick ? [SMALL] : [SMALL, BIG];
  const vmdkRows = [];
  const levelRows = [];
  const e2eRows = [];
  const stageRows = [];
  const engineRows = [];
  const sourceRows = [];

  for (const img of images) {
    const dir = path.join(WORK, img.ref.split('/')[1].split(':')[0]);
    await mkdir(dir, { recursive: true });

    // 1. The same raw disk for both VMDK writers: c2v's own, before its VMDK stage.
    log(`${img.label}: raw disk`);
    const raw = path.join(dir, 'disk.raw');
    const rawRun = await c2v([img.ref, '--format', 'raw', '-o', raw]);
    const diskBytes = rawRun.result.diskBytes;

    log(`${img.label}: qemu-img convert -O vmdk -o subformat=streamOptimized`);
    const qOut = path.join(dir, 'qemu.vmdk');
    const q = await must('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, qOut]);
    const qBytes = (await stat(qOut)).size;
    await rm(qOut);

    const levels = img === SMALL ? [1, 3, 4, 5, 6, 9] : [DEFAULT_LEVEL];
    for (const level of levels) {
      log(`${img.label}: c2v VMDK writer, level ${level}`);
      const out = path.join(dir, `c2v-${level}.vmdk`);
      const w = await must('node', [path.join(HERE, 'vmdk-writer.mjs'), raw, out, String(level)]);
      const info = JSON.parse(w.stdout);
      if (level === DEFAULT_LEVEL) {
        let check = 'not checked';
        if (img === SMALL) {
          const cmp = await measure('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'vmdk', raw, out]);
          check = cmp.code === 0 ? 'identical' : `DIFFERS (${cmp.code})`;
        }
        vmdkRows.push([
          img.label,
          f2(q.seconds),
          mb(qBytes),
          f2(w.seconds),
          mb(info.bytes),
          `${f2(q.seconds / w.seconds)}x`,
          `${f2(info.bytes / qBytes)}`,
          `${mb(info.readBytes)} / ${mb(diskBytes)}`,
          f1(w.peakRssMiB),
          check,
        ]);
      }
      if (img === SMALL) levelRows.push([level, f2(w.seconds), mb(info.bytes), `${f2(info.bytes / qBytes)}`]);
      if (img === SMALL && level === DEFAULT_LEVEL) {
        engineRows.push([info.engine, f2(w.seconds), mb(info.bytes), 'reference']);
        // The fallback engines on the same disk: what a machine without the native module gets.
        for (const engine of ['libdeflate-wasm', 'zlib'].filter((e) => e !== info.engine)) {
          log(`${img.label}: c2v VMDK writer, level ${level}, ${engine}`);
          const e = JSON.parse((await must('node', [path.join(HERE, 'vmdk-writer.mjs'), raw, out, String(level), engine])).stdout);
          engineRows.push([engine, f2(e.seconds), mb(e.bytes), e.sha256 === info.sha256 ? 'same bytes' : 'different bytes']);
        }
      }
      await rm(out);
    }
    await rm(raw);

    // 2. End to end: the seed-style pipeline and c2v convert, back to back, same image and disk size.
    log(`${img.label}: c2v convert to OVA`);
    const ova = path.join(dir, 'c2v.ova');
    const c = await c2v([img.ref, '-o', ova]);
    await rm(ova);
    log(`${img.label}: seed-style shell pipeline`);
    const seedDir = path.join(dir, 'seed');
    const s = await must('bash', [path.join(HERE, 'seed-pipeline.sh'), img.ref, seedDir, String(diskBytes)]);
    await rm(seedDir, { recursive: true, force: true });
    e2eRows.push([img.label, mb(diskBytes), f1(s.seconds), f1(c.seconds), `${f2(c.seconds / s.seconds)}x`, f1(c.peakRssMiB)]);

    // 2b. The same image without the engine (DOCKER_HOST points nowhere): a docker save archive and an OCI layout
    // (gzip layers, as skopeo writes them), flattened by c2v itself. Saving and copying are not timed.
    log(`${img.label}: docker save, skopeo copy to an OCI layout`);
    const archive = path.join(dir, 'image.tar');
    await must('docker', ['save', '-o', archive, img.ref]);
    const layout = path.join(dir, 'layout');
    await must('skopeo', ['copy', '-q', `docker-daemon:${img.ref}`, `oci:${layout}:1`]);
    const noEngine = { DOCKER_HOST: `unix://${dir}/no-engine.sock` };
    log(`${img.label}: c2v convert docker-archive:, no engine`);
    const da = await c2v([`docker-archive:${archive}`, '-o', ova], noEngine);
    await rm(ova);
    log(`${img.label}: c2v convert oci:, no engine`);
    const oc = await c2v([`oci:${layout}:1`, '-o', ova], noEngine);
    await rm(ova);
    await rm(archive);
    await rm(layout, { recursive: true, force: true });
    const vsSeed = (r) => `${f1(r.seconds)} (${f2(r.seconds / s.seconds)}x, ${f1(r.peakRssMiB)} MiB)`;
    sourceRows.push([img.label, f1(s.seconds), vsSeed(c), vsSeed(da), vsSeed(oc)]);
    stageRows.push([img.label, 'auto, docker-archive', f1(da.seconds), f1(da.peakRssMiB), stageLine(da.result.timings)]);
    stageRows.push([img.label, 'auto', f1(c.seconds), f1(c.peakRssMiB), stageLine(c.result.timings)]);

    // 3. The same content on a 64 GiB disk: cost should follow the data, not the disk size.
    if (!quick) {
      log(`${img.label}: c2v convert --disk-size 64G`);
      const big = await c2v([img.ref, '-o', ova, '--disk-size', '64G']);
      await rm(ova);
      stageRows.push([img.label, '64 GiB', f1(big.seconds), f1(big.peakRssMiB), stageLine(big.result.timings)]);
    }
    await rm(dir, { recursive: true, force: true });
  }

  const cores = (await readFile('/proc/cpuinfo', 'utf8')).split('\n').filter((l) => l.startsWith('processor')).length;
  // Other work on the machine skews the ratios (qemu-img uses one core, c2v all of them): say how busy it was.
  process.stdout.write(
    `\n## c2v benchmark (${cores} cores, ${new Date().toISOString()}, load average ${f2(loadBefore)} before, ${f2(loadavg()[0])} after)\n`,
  );
  table(
    `VMDK writing from the same raw disk (c2v at its default level ${DEFAULT_LEVEL}, qemu-img at zlib's default 6)`,
    ['image', 'qemu-img s', 'qemu-img MB', 'c2v s', 'c2v MB', 'speed-up', 'size c2v/qemu', 'c2v read MB / disk MB', 'c2v RSS MiB', 'qemu-img compare'],
    vmdkRows,
  );
  table(`Deflate engines (c2v VMDK writer, debian-vm, level ${DEFAULT_LEVEL})`, ['engine', 'seconds', 'MB', 'VMDK'], engineRows);
  table('--compress-level curve (c2v VMDK writer, debian-vm)', ['level', 'seconds', 'MB', 'size vs qemu-img'], levelRows);
  table(
    'End to end, image already built, OVA out',
    ['image', 'disk MB', 'seed-style s', 'c2v convert s', 'c2v / seed', 'c2v peak RSS MiB'],
    e2eRows,
  );
  table(
    'End to end by input form, OVA out: seconds (against the seed-style pipeline, c2v peak RSS)',
    ['image', 'seed-style s', 'engine (docker export)', 'docker-archive, no engine', 'OCI layout, no engine'],
    sourceRows,
  );
  {
    log('an OCI layout of 1 million small files: flattening time and memory');
    await must('node', [path.join(HERE, 'many-files.mjs'), 'make', path.join(WORK, 'many-files')]);
    const many = await must('node', [path.join(HERE, 'many-files.mjs'), 'flatten', path.join(WORK, 'many-files')]);
    const m = JSON.parse(many.stdout);
    table(
      'Flattening 1 million small files (two layers, 10% whited out), into nothing',
      ['entries in', 'layers MB (gzip)', 'index s', 'export s', 'tar MB out', 'peak RSS MiB'],
      [[m.written, mb(m.storedBytes), f1(m.indexSeconds), f1(m.exportSeconds), mb(m.tarBytes), f1(many.peakRssMiB)]],
    );
  }
  table('c2v convert stage timings (seconds)', ['image', 'disk', 'wall s', 'peak RSS MiB', 'stages'], stageRows);
  if (!args.has('--keep')) await rm(WORK, { recursive: true, force: true });
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e.stack ?? e}\n`);
  process.exit(1);
});
