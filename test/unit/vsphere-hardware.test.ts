import { describe, expect, it } from 'vitest';
import { atLeast, DEFAULT_HW_VERSION, describeHardwareVersions, hardwareVersion, HARDWARE_VERSIONS, oldestHostApi, type ApiRelease } from '../../src/plan/vsphere-hardware.js';

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
      const [major, minor, update, patch] = row.api;
      // VMware names a patch release by its four numbers (8.0.0.1), an update as "U2".
      expect(row.esxi).toBe(patch ? row.api.join('.') : `${major}.${minor}${update ? ` U${update}` : ''}`);
    }
  });

  it('has a row for the default, ESXi 6.7', () => {
    expect(HARDWARE_VERSIONS.find((r) => r.vmx === DEFAULT_HW_VERSION)).toMatchObject({ esxi: '6.7', api: [6, 7, 0, 0] });
  });

  it('answers each ESXi version with its own host, and knows no Workstation-only or future version', () => {
    const v = (vmx: number): ApiRelease => oldestHostApi(vmx);
    expect(v(10)).toEqual([5, 5, 0, 0]);
    expect(v(11)).toEqual([6, 0, 0, 0]);
    expect(v(13)).toEqual([6, 5, 0, 0]);
    expect(v(20)).toEqual([8, 0, 0, 1]);
    expect(v(21)).toEqual([8, 0, 2, 0]);
    expect(v(22)).toEqual([9, 0, 0, 0]);
    for (const vmx of [9, 12, 16, 23]) {
      expect(hardwareVersion(vmx), `vmx-${vmx}`).toBeUndefined();
      expect(() => v(vmx)).toThrow(RangeError);
    }
    expect(describeHardwareVersions()).toMatch(/^10 \(ESXi 5\.5\), 11 \(ESXi 6\.0\), 13 \(ESXi 6\.5\), 14 \(ESXi 6\.7\), .* 20 \(ESXi 8\.0\.0\.1\), 21 \(ESXi 8\.0 U2\), 22 \(ESXi 9\.0\)$/);
  });

  it('compares API releases element by element', () => {
    expect(atLeast([7, 0, 1, 0], [7, 0, 1, 0])).toBe(true);
    expect(atLeast([7, 0, 2, 0], [7, 0, 1, 5])).toBe(true);
    expect(atLeast([8, 0, 0, 0], [8, 0, 0, 1])).toBe(false);
    expect(atLeast([6, 7, 0, 0], [7, 0, 0, 0])).toBe(false);
    expect(atLeast([10, 0, 0, 0], [9, 9, 9, 9])).toBe(true);
  });
});
