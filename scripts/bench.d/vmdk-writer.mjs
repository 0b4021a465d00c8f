// Runs c2v's VMDK writer alone on a raw disk, as a process of its own (like qemu-img), and prints one JSON line.
// Usage: node vmdk-writer.mjs RAW OUT LEVEL [ENGINE]
import { stat } from 'node:fs/promises';
import { DEFAULT_HW_VERSION } from '../../dist/plan/vsphere-hardware.js';
import { writeVmdk } from '../../dist/stages/vmdk.js';

const [raw, out, level = '6', engine] = process.argv.slice(2);
const t0 = performance.now();
const r = await writeVmdk(raw, out, {
  capacityBytes: (await stat(raw)).size,
  fileName: 'bench-disk1.vmdk',
  virtualHwVersion: DEFAULT_HW_VERSION,
  compressLevel: Number(level),
  engine: engine || undefined,
});
process.stdout.write(`${JSON.stringify({ ...r, seconds: (performance.now() - t0) / 1000 })}\n`);
