// What --cloud-init costs against c2v's own guest agent (see scripts/bench --cloud-init): the same app image (the
// test fixture's python3 HTTP server on Debian bookworm) made into an appliance both ways, then booted under QEMU
// with an OVF environment that sets the host name. Prints the appliance image's size, the OVA's size, and the
// time until the app answers with the new host name. (The packages build is left out: the engine's cache makes
// it 0 s on a second run.)
import { spawn } from 'node:child_process';
import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const C2V = path.join(ROOT, 'bin', 'c2v.js');
const WORK = path.join(process.env.C2V_BENCH_DIR ?? '/var/tmp/c2v-bench', 'cloud-init');
const IMAGE = 'c2v-bench/http-app:bookworm';
const MB = 1e6;

function run(cmd, argv) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}): ${stderr.trim().split('\n').slice(-5).join('\n')}`));
      else resolve({ seconds: (performance.now() - t0) / 1000, stdout });
    });
  });
}

const events = (stdout) => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));

async function variant(label, name, flags, props) {
  process.stderr.write(`[bench] ${label}: converting\n`);
  const ova = path.join(WORK, `${name}.ova`);
  await run('node', [C2V, 'convert', IMAGE, '-o', ova, '--name', name, '--json', ...flags]);
  const inspected = JSON.parse((await run('docker', ['image', 'inspect', `c2v-appliance/${name}:latest`])).stdout)[0];
  process.stderr.write(`[bench] ${label}: booting\n`);
  const ver = await run('node', [C2V, 'verify', ova, '--firmware', 'bios', '--json', '--timeout', '600', '--http', `8080:on ${name}-vm`, ...props.flatMap((p) => ['--property', p])]);
  const v = events(ver.stdout).find((e) => e.event === 'verified');
  return [label, (inspected.Size / MB).toFixed(0), ((await stat(ova)).size / MB).toFixed(0), v.bootSeconds.toFixed(1), (v.bootSeconds + v.httpSeconds).toFixed(1)];
}

await rm(WORK, { recursive: true, force: true });
await mkdir(WORK, { recursive: true });
await run('docker', ['build', '-q', '--build-arg', 'BASE=debian:bookworm', '-t', IMAGE, path.join(ROOT, 'test/fixtures/http-app')]);
const rows = [
  await variant("c2v's guest agent", 'agentapp', [], ['c2v.hostname=agentapp-vm']),
  await variant('--cloud-init', 'cloudapp', ['--cloud-init'], ['hostname=cloudapp-vm', 'instance-id=bench-1']),
];
const head = ['guest side', 'appliance image (MB)', 'OVA (MB)', 'boot to target (s)', 'until the app answers with the host name (s)'];
const all = [head, ...rows];
const widths = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
process.stdout.write(`\n### --cloud-init against c2v's guest agent (TCG boots, BIOS)\n${line(head)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n${rows.map(line).join('\n')}\n`);
await rm(WORK, { recursive: true, force: true });
