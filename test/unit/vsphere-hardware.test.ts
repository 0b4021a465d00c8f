import { describe, expect, it } from 'vitest';
import { atLeast, DEFAULT_HW_VERSION, HARDWARE_VERSIONS, oldestHostApi, type ApiRelease } from '../../src/plan/vsphere-hardware.js';

describe('vSphere hardware versions', () => {
  it('lists each version once, oldest first, with releases, APIs and limits that never fall', () => {
    for (let i = 1; i < HARDWARE_VERSIONS.length; i++) {
      const [older, newer] = [HARDWARE_VERSIONS[i - 1], HARDWARE_VERSIONS[i]];
      expect(newer.vmx).toBeGreaterThan(older.vmx);
      expect(atLeast(newer.api, older.api) && !atLeast(older.api, newer.api), `vmx-${newer.vmx} needs a newer API than vmx-${older.vmx}`).toBe(true);
      expect(newer.maxCpus).toBeGreaterThanOrEqual(older.maxCpus);
      expect(newer.maxMemoryGB).toBeGreaterThanOrEqual(older.maxMemoryGB);
    }
  });

  it('names the ESXi release whose API it gives', () => {
    for (const row of HARDWARE_VERSIONS) {
      const [major, minor, update] = row.api;
      expect(row.esxi).toBe(`${major}.${minor}${update ? ` U${update}` : ''}`);
    }
  });

  it('has a row for the default, ESXi 6.7', () => {
    expect(HARDWARE_VERSIONS.find((r) => r.vmx === DEFAULT_HW_VERSION)).toMatchObject({ esxi: '6.7', api: [6, 7, 0, 0] });
  });

  it('answers every version c2v accepts (11..21) with its own row, or else an older host than the next row', () => {
    for (let vmx = 11; vmx <= 21; vmx++) {
      const api = oldestHostApi(vmx);
      expect(api).toHaveLength(4);
      const exact = HARDWARE_VERSIONS.find((r) => r.vmx === vmx);
      if (exact) expect(api, `vmx-${vmx}`).toEqual(exact.api);
      const next = HARDWARE_VERSIONS.find((r) => r.vmx > vmx);
      // A host newer than the version needs could be told of a guest id it does not know.
      if (next) expect(atLeast(api, next.api), `vmx-${vmx}`).toBe(false);
    }
  });

  it('keeps what earlier releases of c2v declared below 6.5 and for the Workstation-only 12 and 16', () => {
    const v = (vmx: number): ApiRelease => oldestHostApi(vmx);
    expect(v(10)).toEqual([6, 0, 0, 0]);
    expect(v(11)).toEqual([6, 0, 0, 0]);
    expect(v(12)).toEqual([6, 0, 0, 0]);
    expect(v(13)).toEqual([6, 5, 0, 0]);
    expect(v(16)).toEqual([6, 7, 2, 0]);
    expect(v(21)).toEqual([8, 0, 2, 0]);
  });

  it('compares API releases element by element', () => {
    expect(atLeast([7, 0, 1, 0], [7, 0, 1, 0])).toBe(true);
    expect(atLeast([7, 0, 2, 0], [7, 0, 1, 5])).toBe(true);
    expect(atLeast([8, 0, 0, 0], [8, 0, 0, 1])).toBe(false);
    expect(atLeast([6, 7, 0, 0], [7, 0, 0, 0])).toBe(false);
    expect(atLeast([10, 0, 0, 0], [9, 9, 9, 9])).toBe(true);
  });
});
