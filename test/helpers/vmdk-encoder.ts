import { deflateSync } from 'node:zlib';
import { GRAIN_BYTES, StreamOptimizedEncoder, type VmdkOptions } from '../../src/formats/vmdk.js';
import { isZero } from '../../src/formats/zero.js';

/** One grain of a disk held in memory; data is at most GRAIN_BYTES, a short one reads as zeros past its end. */
export interface Grain {
  index: number;
  data: Buffer;
}

/**
 * A whole streamOptimized VMDK from grains in memory (ascending index), deflated one at a time with node:zlib at
 * the encoder's level. It drives src's StreamOptimizedEncoder the way stages/vmdk.ts does, minus the files and
 * the worker pool, so tests can check the layout on chosen grains.
 */
export function encodeVmdk(grains: readonly Grain[], opts: VmdkOptions): Buffer {
  const enc = new StreamOptimizedEncoder(opts);
  const out = enc.start();
  for (const { index, data } of grains) {
    if (data.length === 0 || data.length > GRAIN_BYTES) throw new RangeError(`grain ${index} has ${data.length} bytes, expected 1..${GRAIN_BYTES}`);
    if (isZero(data)) continue;
    const full = data.length === GRAIN_BYTES ? data : Buffer.concat([data, Buffer.alloc(GRAIN_BYTES - data.length)]);
    out.push(...enc.grain(index, deflateSync(full, { level: enc.options.compressLevel })));
  }
  out.push(...enc.finish());
  return Buffer.concat(out);
}
