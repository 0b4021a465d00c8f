/** Reading an image without starting it: what it is (os-release) and what it has (kernel, init). */
import type { RootfsSource } from '../adapters/engine.js';
import type { ImageProbe } from '../plan/appliance.js';
import { parseOsRelease, type OsRelease } from '../plan/os-release.js';
import { PACKAGES_RECORD, parsePackagesRecord } from '../plan/appliance.js';
import { requiredSignedPaths, SecureBootError, signedBootPlan } from '../plan/secure-boot.js';
import { netbootLacks } from '../plan/netboot.js';

export async function readOsRelease(source: RootfsSource): Promise<OsRelease> {
  for (const p of ['/etc/os-release', '/usr/lib/os-release']) {
    const data = await source.readFile(p);
    if (data) return parseOsRelease(data.toString('utf8'));
  }
  return {};
}

/** Whether the image carries the signed shim and GRUB of its distribution (--secure-boot). */
async function hasSignedChain(osRelease: OsRelease, has: (paths: string[]) => Promise<boolean>): Promise<boolean> {
  let plan;
  try {
    plan = signedBootPlan(osRelease);
  } catch (e) {
    if (e instanceof SecureBootError) return false;
    throw e;
  }
  return (await Promise.all(requiredSignedPaths(plan).map(has))).every(Boolean);
}

/** The kernels' module indexes, judged for what --format netboot mounts with; none for an image without modules. */
async function probeNetbootKernels(source: RootfsSource): Promise<NonNullable<ImageProbe['netbootLacks']>> {
  const found: NonNullable<ImageProbe['netbootLacks']> = [];
  for (const dir of ['/usr/lib/modules', '/lib/modules']) {
    const versions = await source.listDir(dir);
    for (const version of versions) {
      const dep = await source.readFile(`${dir}/${version}/modules.dep`);
      if (!dep) continue;
      const builtin = (await source.readFile(`${dir}/${version}/modules.builtin`)) ?? Buffer.alloc(0);
      found.push({ version, lacks: netbootLacks({ version, dep: dep.toString('utf8'), builtin: builtin.toString('utf8') }) });
    }
    if (found.length) break;
  }
  // One kernel able to do it is enough: a leftover module folder of a removed kernel must not refuse the image.
  return found.some((k) => k.lacks.length === 0) ? [] : found;
}

/** Looks into the stopped container for a kernel and an init, without starting it. */
export async function probeImage(source: RootfsSource, osRelease: OsRelease, opts: { netboot?: boolean } = {}): Promise<ImageProbe> {
  // Existence checks are cheap for the engine; listing /boot makes it tar the kernel and initrd, so that is the
  // last resort, for kernels with no well-known name (RHEL's /boot/vmlinuz-<version> only).
  const has = async (paths: string[]): Promise<boolean> => (await Promise.all(paths.map((p) => source.exists(p)))).some(Boolean);
  const [knownKernel, openrc, sysvInit, systemd, hasSshd, hasCloudInit, hasSignedBoot, hasGuestAgent, hasBusybox, record, netbootKernels] = await Promise.all([
    has(['/vmlinuz', '/boot/vmlinuz', '/boot/vmlinuz-virt', '/boot/vmlinuz-lts']),
    has(['/sbin/openrc', '/sbin/openrc-init', '/usr/sbin/openrc', '/usr/sbin/openrc-init']),
    has(['/sbin/init', '/usr/sbin/init']),
    has(['/lib/systemd/systemd', '/usr/lib/systemd/systemd']),
    has(['/usr/sbin/sshd', '/sbin/sshd']),
    has(['/usr/bin/cloud-init']),
    hasSignedChain(osRelease, has),
    has(['/usr/sbin/qemu-ga', '/usr/bin/qemu-ga']),
    has(['/usr/bin/busybox', '/bin/busybox']),
    source.readFile(PACKAGES_RECORD),
    opts.netboot ? probeNetbootKernels(source) : undefined,
  ]);
  const hasKernel = knownKernel || (await source.listDir('/boot')).some((n) => /^vmlinuz/.test(n));
  let init: ImageProbe['init'] = 'none';
  if (openrc) init = 'openrc';
  else if (sysvInit) init = systemd ? 'systemd' : 'other';
  return { osRelease, hasKernel, init, hasSshd, hasCloudInit, hasSignedBoot, hasGuestAgent, hasBusybox, netbootLacks: netbootKernels?.filter((k) => k.lacks.length > 0), packages: record && parsePackagesRecord(record.toString('utf8')) };
}
