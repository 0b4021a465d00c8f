import { describe, expect, it } from 'vitest';
import { isZero } from '../../src/formats/zero.js';

describe('isZero', () => {
  it('finds a single non-zero byte anywhere, also past the first 64 KiB', () => {
    const b = Buffer.alloc(3 * 65536 + 7);
    expect(isZero(b)).toBe(true);
    for (const at of [0, 65535, 65536, 2 * 65536 + 1, b.length - 1]) {
      b[at] = 1;
      expect(isZero(b), `byte ${at}`).toBe(false);
      b[at] = 0;
    }
    expect(isZero(Buffer.alloc(0))).toBe(true);
  });

  it('reads a view, not the buffer behind it', () => {
    const backing = new Uint8Array(1000).fill(7);
    backing.fill(0, 100, 900);
    expect(isZero(backing.subarray(100, 900))).toBe(true);
    expect(isZero(backing.subarray(99, 900))).toBe(false);
    expect(isZero(backing.subarray(100, 901))).toBe(false);
  });
});
