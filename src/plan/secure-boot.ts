/**
 * --secure-boot: which signed binaries boot an image of each distribution, where they live in the image, and
 * where their GRUB looks for its configuration. Firmware with Microsoft's keys (vSphere's, and OVMF's `ms`
 * variable store) runs the Microsoft-signed shim; shim runs the distribution-signed GRUB beside it; that GRUB has
 * its modules built in (it may not load any from disk) and verifies the kernel through shim.
 */
import { distroFamily, type DistroFamily, type OsRelease } from './os-release.js';

export type SignedRole = 'shim' | 'grub' | 'mokManager';

/** In ESP order; the removable-media layout, so no NVRAM entry is needed (as without --secure-boot). */
export const SIGNED_BOOT_FILES: readonly { role: SignedRole; espName: string; what: string; required: boolean }[] = [
  { role: 'shim', espName: 'BOOTX64.EFI', what: 'Microsoft-signed shim', required: true },
  { role: 'grub', espName: 'grubx64.efi', what: 'signed GRUB', required: true },
  // shim starts MokManager only when a key enrolment is pending (mokutil --import); without one it never does.
  { role: 'mokManager', espName: 'mmx64.efi', what: 'MokManager', required: false },
];

export interface SignedBootPlan {
  /** Where each binary may be in the image, preferred first. */
  paths: Record<SignedRole, readonly string[]>;
  /** What provides them, for the packages step and for messages. */
  packages: string;
  /**
   * Folders under EFI/ that get c2v's early config as grub.cfg. The signed GRUB's built-in config reads
   * `$prefix/grub.cfg` when its prefix folder (EFI/<vendor>) exists, else `$cmdpath/grub.cfg` (EFI/BOOT) after
   * searching for installer media first, which prints errors on the console: both folders get the file.
   */
  configDirs: readonly string[];
}

const GRUB_SIGNED = '/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed';

const PLANS: Partial<Record<DistroFamily, SignedBootPlan>> = {
  debian: {
    paths: { shim: ['/usr/lib/shim/shimx64.efi.signed'], grub: [GRUB_SIGNED], mokManager: ['/usr/lib/shim/mmx64.efi.signed'] },
    packages: 'shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed',
    configDirs: ['debian', 'BOOT'],
  },
  ubuntu: {
    // Ubuntu ships the current shim as .latest beside older ones.
    paths: { shim: ['/usr/lib/shim/shimx64.efi.signed.latest', '/usr/lib/shim/shimx64.efi.signed'], grub: [GRUB_SIGNED], mokManager: ['/usr/lib/shim/mmx64.efi.signed'] },
    packages: 'shim-signed grub-efi-amd64-signed',
    configDirs: ['ubuntu', 'BOOT'],
  },
};

export class SecureBootError extends Error {}

/** The signed chain for this distribution; refused for those without a Microsoft-signed shim c2v knows. */
export function signedBootPlan(os: OsRelease): SignedBootPlan {
  const family = distroFamily(os);
  const plan = family && PLANS[family];
  if (!plan) {
    const pretty = os.PRETTY_NAME ?? os.ID ?? 'this distribution';
    throw new SecureBootError(`--secure-boot needs the distribution's Microsoft-signed shim and signed GRUB, which c2v takes from Debian and Ubuntu images; ${pretty} has none c2v knows: drop --secure-boot`);
  }
  return plan;
}

/** The paths whose presence says the image carries the chain already (the required binaries). */
export function requiredSignedPaths(plan: SignedBootPlan): string[][] {
  return SIGNED_BOOT_FILES.filter((f) => f.required).map((f) => [...plan.paths[f.role]]);
}
