/**
 * vSphere virtual hardware versions: the one place that knows what each vmx-NN means.
 *
 * The oldest ESXi that runs each version is VMware KB 1003746 (as the vSphere Automation API's Hardware.Version
 * quotes it: vmx-20 is "first supported in ESXi 8.0.0.1", the release whose API added debian12_64Guest, so a
 * vmx-20 OVF may name it). 12 and 16 are Workstation/Fusion versions that no ESXi release introduced, so they
 * have no row and c2v refuses them: an ESXi of that era rejects them ("Unsupported hardware family").
 * The limits are the "Hardware features available with virtual machine compatibility settings" tables of the
 * vSphere 6.5, 6.7, 7.0 and 8.0 guides (memory in GB, as those tables give it). vmx-22 (ESXi 9.0, govmomi's
 * hardware_version.go) raised the vCPU limit to 960, as the VCF/VVF 9.0 release material states; it names no new
 * memory limit, so vmx-21's stays.
 */

/** vmx-14: ESXi 6.7 and later, the oldest release still commonly deployed to. */
export const DEFAULT_HW_VERSION = 14;

/** A vSphere API release as [major, minor, update, patch]; compared element by element. */
export type ApiRelease = readonly [number, number, number, number];

/** Whether a host speaking `have` knows what arrived in `need`. */
export function atLeast(have: ApiRelease, need: ApiRelease): boolean {
  for (let i = 0; i < 4; i++) if (have[i] !== need[i]) return have[i] > need[i];
  return true;
}

export interface HardwareVersion {
  vmx: number;
  /** The oldest ESXi release that runs it. */
  esxi: string;
  /** The vSphere API release that ESXi speaks: it decides which guest ids the host knows. */
  api: ApiRelease;
  maxCpus: number;
  maxMemoryGB: number;
}

/** Oldest first. */
export const HARDWARE_VERSIONS: readonly HardwareVersion[] = [
  { vmx: 10, esxi: '5.5', api: [5, 5, 0, 0], maxCpus: 64, maxMemoryGB: 1011 },
  { vmx: 11, esxi: '6.0', api: [6, 0, 0, 0], maxCpus: 128, maxMemoryGB: 4080 },
  { vmx: 13, esxi: '6.5', api: [6, 5, 0, 0], maxCpus: 128, maxMemoryGB: 6128 },
  { vmx: 14, esxi: '6.7', api: [6, 7, 0, 0], maxCpus: 128, maxMemoryGB: 6128 },
  { vmx: 15, esxi: '6.7 U2', api: [6, 7, 2, 0], maxCpus: 256, maxMemoryGB: 6128 },
  { vmx: 17, esxi: '7.0', api: [7, 0, 0, 0], maxCpus: 256, maxMemoryGB: 6128 },
  { vmx: 18, esxi: '7.0 U1', api: [7, 0, 1, 0], maxCpus: 768, maxMemoryGB: 24560 },
  { vmx: 19, esxi: '7.0 U2', api: [7, 0, 2, 0], maxCpus: 768, maxMemoryGB: 24560 },
  { vmx: 20, esxi: '8.0.0.1', api: [8, 0, 0, 1], maxCpus: 768, maxMemoryGB: 24560 },
  { vmx: 21, esxi: '8.0 U2', api: [8, 0, 2, 0], maxCpus: 768, maxMemoryGB: 24560 },
  { vmx: 22, esxi: '9.0', api: [9, 0, 0, 0], maxCpus: 960, maxMemoryGB: 24560 },
];

/** The row of an ESXi hardware version; undefined for Workstation-only (12, 16) and unknown ones. */
export function hardwareVersion(vmx: number): HardwareVersion | undefined {
  return HARDWARE_VERSIONS.find((row) => row.vmx === vmx);
}

/** What `--hw-version` accepts, for its message: "10 (ESXi 5.5), 11 (ESXi 6.0), ...". */
export function describeHardwareVersions(): string {
  return HARDWARE_VERSIONS.map((row) => `${row.vmx} (ESXi ${row.esxi})`).join(', ');
}

/**
 * The API of the oldest host that runs vmx-`vmx`, which decides the guest ids an OVF may declare: a guest id the
 * host does not know makes the import fail.
 */
export function oldestHostApi(vmx: number): ApiRelease {
  const row = hardwareVersion(vmx);
  if (!row) throw new RangeError(`vmx-${vmx} is not an ESXi hardware version`);
  return row.api;
}
