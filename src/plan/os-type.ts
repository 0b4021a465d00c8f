/**
 * Which guest OS an OVF declares, from the image's /etc/os-release.
 *
 * Two identifiers are involved:
 * - `cimId`, the OperatingSystemSection's ovf:id, from the DMTF CIM_OperatingSystem.OSType value map.
 *   Values used: 80 "RedHat Enterprise Linux 64-Bit", 83 "SUSE 64-Bit", 85 "SLES 64-Bit",
 *   94 "Ubuntu 64-Bit", 96 "Debian 64-Bit", 101 "Linux 64-Bit", 107 "CentOS 64-bit",
 *   109 "Oracle Linux 64-bit". (36 "LINUX" and 100 "Linux 2.6.x 64-Bit" exist too; 101 is the
 *   generic 64-bit one and says nothing about a kernel version we cannot know here.)
 * - `vmwOsType`, VMware's guest id (VirtualMachineGuestOsIdentifier). vSphere only knows the ids that
 *   existed in its API release, so each candidate below carries the release that introduced it
 *   ("Since vSphere API ..." in VMware's reference), and the newest one the target host knows wins.
 *   The target is the oldest ESXi that runs the OVF's virtual hardware version (plan/vsphere-hardware.ts):
 *   vmx-14 (c2v's default) means ESXi 6.7, so out of the box Debian 11 gets debian10_64Guest and Alpine
 *   other4xLinux64Guest; at vmx-18 (7.0U1) they get debian11_64Guest and other5xLinux64Guest.
 *   debian12_64Guest needs API 8.0.0.1 (8.0U1), which no hardware version proves before vmx-21 (8.0U2),
 *   so Debian 12 and 13 stay on debian11_64Guest below that. A guest id one release too old only
 *   changes vSphere's defaults for the guest; one too new makes the import fail.
 */

import { distroOf, type OsRelease } from './os-release.js';
import { atLeast, oldestHostApi, type ApiRelease } from './vsphere-hardware.js';

export interface GuestOs {
  cimId: number;
  vmwOsType: string;
  description: string;
}

interface Candidate {
  id: string;
  since: ApiRelease;
}

const API_6_5: ApiRelease = [6, 5, 0, 0];
const API_6_7: ApiRelease = [6, 7, 0, 0];
const API_6_7_1: ApiRelease = [6, 7, 1, 0];
const API_7_0: ApiRelease = [7, 0, 0, 0];
const API_7_0_1: ApiRelease = [7, 0, 1, 0];
const API_8_0_0_1: ApiRelease = [8, 0, 0, 1];
const ALWAYS: ApiRelease = [0, 0, 0, 0];

/** Generic Linux, newest first; other5x/4x/3x name the kernel series, which os-release does not give. */
const GENERIC: readonly Candidate[] = [
  { id: 'other5xLinux64Guest', since: API_7_0_1 },
  { id: 'other4xLinux64Guest', since: API_6_7 },
  { id: 'other3xLinux64Guest', since: [5, 5, 0, 0] },
  { id: 'otherLinux64Guest', since: ALWAYS },
];

function ladder(major: number | undefined, steps: readonly [number, string, ApiRelease][]): Candidate[] {
  // steps are oldest first; an unknown or newer major starts from the newest step.
  let start = steps.length - 1;
  if (major !== undefined) while (start > 0 && major < steps[start][0]) start--;
  return steps
    .slice(0, start + 1)
    .reverse()
    .map(([, id, since]) => ({ id, since }));
}

const DEBIAN: readonly [number, string, ApiRelease][] = [
  [8, 'debian8_64Guest', [5, 5, 0, 0]],
  [9, 'debian9_64Guest', [6, 0, 0, 0]],
  [10, 'debian10_64Guest', API_6_5],
  [11, 'debian11_64Guest', API_7_0],
  [12, 'debian12_64Guest', API_8_0_0_1],
];
const RHEL: readonly [number, string, ApiRelease][] = [
  [6, 'rhel6_64Guest', [4, 0, 0, 0]],
  [7, 'rhel7_64Guest', [5, 5, 0, 0]],
  [8, 'rhel8_64Guest', API_6_7],
  [9, 'rhel9_64Guest', API_7_0_1],
];
const CENTOS: readonly [number, string, ApiRelease][] = [
  [6, 'centos6_64Guest', API_6_5],
  [7, 'centos7_64Guest', API_6_5],
  [8, 'centos8_64Guest', API_6_7],
  [9, 'centos9_64Guest', API_7_0_1],
];
const ORACLE: readonly [number, string, ApiRelease][] = [
  [7, 'oracleLinux7_64Guest', API_6_5],
  [8, 'oracleLinux8_64Guest', API_6_7],
  [9, 'oracleLinux9_64Guest', API_7_0_1],
];
const SLES: readonly [number, string, ApiRelease][] = [
  [12, 'sles12_64Guest', [5, 5, 0, 0]],
  [15, 'sles15_64Guest', API_6_7],
];

interface Family {
  cimId: number;
  candidates: Candidate[];
}

function familyOf(id: string, like: readonly string[], major: number | undefined): Family {
  switch (id) {
    case 'debian':
      return { cimId: 96, candidates: ladder(major, DEBIAN) };
    case 'ubuntu':
      return { cimId: 94, candidates: [{ id: 'ubuntu64Guest', since: ALWAYS }] };
    case 'rhel':
      return { cimId: 80, candidates: ladder(major, RHEL) };
    case 'centos':
      return { cimId: 107, candidates: ladder(major, CENTOS) };
    case 'ol':
      return { cimId: 109, candidates: ladder(major, ORACLE) };
    case 'rocky':
      return { cimId: 80, candidates: [{ id: 'rockylinux_64Guest', since: API_8_0_0_1 }, ...ladder(major, RHEL)] };
    case 'almalinux':
      return { cimId: 80, candidates: [{ id: 'almalinux_64Guest', since: API_8_0_0_1 }, ...ladder(major, RHEL)] };
    case 'sles':
      return { cimId: 85, candidates: ladder(major, SLES) };
    case 'fedora':
      return { cimId: 101, candidates: [{ id: 'fedora64Guest', since: ALWAYS }] };
    case 'amzn':
      // Amazon Linux 2023 is what VMware calls "Amazon Linux 3".
      return {
        cimId: 101,
        candidates: major === 2 ? [{ id: 'amazonlinux2_64Guest', since: API_6_7_1 }] : [{ id: 'amazonlinux3_64Guest', since: API_7_0_1 }],
      };
    case 'photon':
      return { cimId: 101, candidates: [{ id: 'vmwarePhoton64Guest', since: API_6_5 }] };
  }
  if (id.startsWith('opensuse')) return { cimId: 83, candidates: [{ id: 'opensuse64Guest', since: ALWAYS }] };
  // Derivatives: their VERSION_ID is their own (Mint 21, Kali 2024.1), not the parent's, so take the
  // parent's newest id the host knows rather than reading a parent version into it.
  if (like.includes('ubuntu')) return familyOf('ubuntu', [], undefined);
  if (like.includes('debian')) return familyOf('debian', [], undefined);
  if (like.includes('rhel') || like.includes('centos')) return familyOf('rhel', [], undefined);
  if (like.includes('fedora')) return familyOf('fedora', [], undefined);
  if (like.includes('suse')) return familyOf('opensuse', [], undefined);
  return { cimId: 101, candidates: [] };
}

function describe(release: OsRelease, id: string): string {
  const pretty = release.PRETTY_NAME?.trim();
  if (pretty) return pretty;
  if (id) return release.VERSION_ID ? `${id} ${release.VERSION_ID}` : id;
  return 'Linux';
}

/**
 * The guest OS to declare for an image. `vmxVersion` is the OVF's virtual hardware version; it decides
 * which guest ids the oldest compatible host knows.
 */
export function guestOsFor(release: OsRelease, hardware: { vmxVersion: number }): GuestOs {
  const host = oldestHostApi(hardware.vmxVersion);
  const { id, like, major } = distroOf(release);
  const family = familyOf(id, like, major);
  const known = family.candidates.find((c) => atLeast(host, c.since));
  // No family id this host knows: a generic Linux id, still under the family's CIM id.
  const chosen = known ?? GENERIC.find((c) => atLeast(host, c.since)) ?? GENERIC[GENERIC.length - 1];
  return { cimId: family.cimId, vmwOsType: chosen.id, description: describe(release, id) };
}
