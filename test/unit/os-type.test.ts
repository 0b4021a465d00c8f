import { describe, expect, it } from 'vitest';
import { guestOsFor } from '../../src/plan/os-type.js';
import type { OsRelease } from '../../src/plan/os-release.js';
import { DEFAULT_HW_VERSION } from '../../src/plan/vsphere-hardware.js';

/** What c2v writes when --hw-version is not given. */
const byDefault = { vmxVersion: DEFAULT_HW_VERSION };

const debian = (v?: string): OsRelease => ({ ID: 'debian', ...(v ? { VERSION_ID: v } : {}), PRETTY_NAME: v ? `Debian GNU/Linux ${v}` : 'Debian GNU/Linux trixie/sid' });

describe('guestOsFor', () => {
  it('maps Debian releases to guest ids the target host knows', () => {
    // vmx-17 and later: ESXi 7.0 knows debian11_64Guest.
    expect(guestOsFor(debian('10'), { vmxVersion: 17 })).toEqual({ cimId: 96, vmwOsType: 'debian10_64Guest', description: 'Debian GNU/Linux 10' });
    expect(guestOsFor(debian('11'), { vmxVersion: 17 }).vmwOsType).toBe('debian11_64Guest');
    // debian12_64Guest arrived with API 8.0.0.1, the oldest ESXi that runs vmx-20; vmx-19's 7.0 U2 lacks it.
    expect(guestOsFor(debian('12'), { vmxVersion: 19 }).vmwOsType).toBe('debian11_64Guest');
    expect(guestOsFor(debian('12'), { vmxVersion: 20 }).vmwOsType).toBe('debian12_64Guest');
    expect(guestOsFor(debian('13'), { vmxVersion: 20 }).vmwOsType).toBe('debian12_64Guest');
    expect(guestOsFor(debian('13'), { vmxVersion: 22 }).vmwOsType).toBe('debian12_64Guest');
    expect(guestOsFor(debian('12'), { vmxVersion: 21 }).vmwOsType).toBe('debian12_64Guest');
    expect(guestOsFor(debian('13'), { vmxVersion: 21 }).vmwOsType).toBe('debian12_64Guest');
    expect(guestOsFor(debian(undefined), { vmxVersion: 19 })).toEqual({ cimId: 96, vmwOsType: 'debian11_64Guest', description: 'Debian GNU/Linux trixie/sid' });
  });

  it('declares what ESXi 6.7 (vmx-14, the default) knows by default', () => {
    expect(DEFAULT_HW_VERSION).toBe(14);
    expect(guestOsFor(debian('11'), byDefault).vmwOsType).toBe('debian10_64Guest');
    expect(guestOsFor(debian('12'), byDefault).vmwOsType).toBe('debian10_64Guest');
    expect(guestOsFor({ ID: 'alpine', VERSION_ID: '3.20.3' }, byDefault).vmwOsType).toBe('other4xLinux64Guest');
  });

  it('declares for ESXi 5.5 and 6.0 only what their APIs know, and refuses Workstation-only versions', () => {
    // debian9_64Guest arrived in API 6.0: an ESXi 5.5 (vmx-10) host gets debian8_64Guest.
    expect(guestOsFor(debian('9'), { vmxVersion: 10 }).vmwOsType).toBe('debian8_64Guest');
    expect(guestOsFor(debian('9'), { vmxVersion: 11 }).vmwOsType).toBe('debian9_64Guest');
    expect(guestOsFor(debian('10'), { vmxVersion: 11 }).vmwOsType).toBe('debian9_64Guest');
    expect(guestOsFor(debian('10'), { vmxVersion: 13 }).vmwOsType).toBe('debian10_64Guest');
    expect(guestOsFor(debian('11'), { vmxVersion: 17 }).vmwOsType).toBe('debian11_64Guest');
    expect(() => guestOsFor(debian('11'), { vmxVersion: 12 })).toThrow(/not an ESXi hardware version/);
    expect(() => guestOsFor(debian('11'), { vmxVersion: 16 })).toThrow(/not an ESXi hardware version/);
  });

  it('maps Ubuntu and its derivatives to ubuntu64Guest', () => {
    expect(guestOsFor({ ID: 'ubuntu', VERSION_ID: '24.04', PRETTY_NAME: 'Ubuntu 24.04.1 LTS' }, byDefault)).toEqual({
      cimId: 94,
      vmwOsType: 'ubuntu64Guest',
      description: 'Ubuntu 24.04.1 LTS',
    });
    expect(guestOsFor({ ID: 'linuxmint', ID_LIKE: 'ubuntu debian', VERSION_ID: '21.3' }, byDefault).vmwOsType).toBe('ubuntu64Guest');
  });

  it('maps Alpine and unknown distributions to generic Linux', () => {
    const alpine = { ID: 'alpine', VERSION_ID: '3.20.3', PRETTY_NAME: 'Alpine Linux v3.20' };
    expect(guestOsFor(alpine, { vmxVersion: 18 })).toEqual({ cimId: 101, vmwOsType: 'other5xLinux64Guest', description: 'Alpine Linux v3.20' });
    expect(guestOsFor(alpine, { vmxVersion: 17 }).vmwOsType).toBe('other4xLinux64Guest');
    expect(guestOsFor(alpine, { vmxVersion: 13 }).vmwOsType).toBe('other3xLinux64Guest');
    expect(guestOsFor({ ID: 'arch' }, { vmxVersion: 19 })).toEqual({ cimId: 101, vmwOsType: 'other5xLinux64Guest', description: 'arch' });
    expect(guestOsFor({}, { vmxVersion: 19 })).toEqual({ cimId: 101, vmwOsType: 'other5xLinux64Guest', description: 'Linux' });
  });

  it('maps the RHEL family', () => {
    expect(guestOsFor({ ID: 'rhel', VERSION_ID: '8.10' }, { vmxVersion: 19 })).toMatchObject({ cimId: 80, vmwOsType: 'rhel8_64Guest' });
    expect(guestOsFor({ ID: 'rhel', VERSION_ID: '9.4' }, { vmxVersion: 19 })).toMatchObject({ cimId: 80, vmwOsType: 'rhel9_64Guest' });
    // rhel9_64Guest needs 7.0U1.
    expect(guestOsFor({ ID: 'rhel', VERSION_ID: '9.4' }, { vmxVersion: 14 }).vmwOsType).toBe('rhel8_64Guest');
    expect(guestOsFor({ ID: 'centos', ID_LIKE: 'rhel fedora', VERSION_ID: '9' }, { vmxVersion: 19 })).toMatchObject({ cimId: 107, vmwOsType: 'centos9_64Guest' });
    expect(guestOsFor({ ID: 'centos', VERSION_ID: '7' }, { vmxVersion: 14 })).toMatchObject({ cimId: 107, vmwOsType: 'centos7_64Guest' });
    expect(guestOsFor({ ID: 'ol', VERSION_ID: '9.4' }, { vmxVersion: 19 })).toMatchObject({ cimId: 109, vmwOsType: 'oracleLinux9_64Guest' });
    // Rocky's own id needs 8.0U1; below that it is declared as the RHEL release it rebuilds.
    const rocky = { ID: 'rocky', ID_LIKE: 'rhel centos fedora', VERSION_ID: '9.4' };
    expect(guestOsFor(rocky, { vmxVersion: 19 })).toMatchObject({ cimId: 80, vmwOsType: 'rhel9_64Guest' });
    expect(guestOsFor(rocky, { vmxVersion: 21 }).vmwOsType).toBe('rockylinux_64Guest');
    expect(guestOsFor({ ID: 'almalinux', VERSION_ID: '8.9' }, { vmxVersion: 14 }).vmwOsType).toBe('rhel8_64Guest');
    expect(guestOsFor({ ID: 'someclone', ID_LIKE: 'rhel', VERSION_ID: '42' }, { vmxVersion: 19 }).vmwOsType).toBe('rhel9_64Guest');
  });

  it('maps other known distributions', () => {
    expect(guestOsFor({ ID: 'fedora', VERSION_ID: '40' }, byDefault)).toMatchObject({ cimId: 101, vmwOsType: 'fedora64Guest' });
    // amazonlinux2_64Guest arrived in 6.7U1, after the vmx-14 baseline (6.7).
    expect(guestOsFor({ ID: 'amzn', VERSION_ID: '2' }, byDefault)).toMatchObject({ vmwOsType: 'other4xLinux64Guest' });
    expect(guestOsFor({ ID: 'amzn', VERSION_ID: '2' }, { vmxVersion: 15 })).toMatchObject({ vmwOsType: 'amazonlinux2_64Guest' });
    expect(guestOsFor({ ID: 'amzn', VERSION_ID: '2023' }, { vmxVersion: 19 })).toMatchObject({ vmwOsType: 'amazonlinux3_64Guest' });
    expect(guestOsFor({ ID: 'amzn', VERSION_ID: '2023' }, { vmxVersion: 14 })).toMatchObject({ vmwOsType: 'other4xLinux64Guest' });
    expect(guestOsFor({ ID: 'sles', VERSION_ID: '15.6' }, byDefault)).toMatchObject({ cimId: 85, vmwOsType: 'sles15_64Guest' });
    expect(guestOsFor({ ID: 'opensuse-leap', VERSION_ID: '15.6' }, byDefault)).toMatchObject({ cimId: 83, vmwOsType: 'opensuse64Guest' });
    expect(guestOsFor({ ID: 'kali', ID_LIKE: 'debian', VERSION_ID: '2024.1' }, { vmxVersion: 17 })).toMatchObject({
      cimId: 96,
      vmwOsType: 'debian11_64Guest',
    });
  });

  it('is case- and whitespace-tolerant in ID and ID_LIKE', () => {
    expect(guestOsFor({ ID: 'Ubuntu ' }, byDefault).vmwOsType).toBe('ubuntu64Guest');
    expect(guestOsFor({ ID: 'pop', ID_LIKE: '  Ubuntu   debian ' }, byDefault).vmwOsType).toBe('ubuntu64Guest');
  });
});
