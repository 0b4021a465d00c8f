import { C2vError } from '../errors.js';
import type { ImageSource } from '../adapters/engine.js';
import { RootfsHandle } from '../adapters/rootfs-handle.js';
import { loadTemplates } from '../adapters/templates.js';
import { containerArgv, isAppCommand } from '../plan/app-service.js';
import { AppliancePlanError, planAppliance, type InitChoice } from '../plan/appliance.js';
import { distroFamily } from '../plan/os-release.js';
import { probeImage, readOsRelease } from '../stages/probe.js';

export interface InspectReport {
  image: string;
  id: string;
  architecture: string;
  sizeBytes: number;
  distribution: string;
  family: string;
  kernel: boolean;
  init: string;
  command: string[];
  appService: boolean;
  env: string[];
  workingDir: string;
  user: string;
  exposedPorts: string[];
  /** What `c2v convert` would add, or why it cannot. */
  adds: string[] | { error: string };
}

/** What c2v sees in an image and what a conversion would add to it; starts nothing. */
export async function inspectImage(images: ImageSource, ref: string, init: InitChoice = 'auto'): Promise<InspectReport> {
  const image = await images.inspect(ref);
  if (!image) throw new C2vError('input', `image ${ref} is not present locally: build or pull it first`);
  const rootfs = new RootfsHandle(images);
  try {
    const source = await rootfs.of(image.id);
    const osRelease = await readOsRelease(source);
    const probe = await probeImage(source, osRelease);
    const argv = containerArgv(image.config);
    let adds: InspectReport['adds'];
    try {
      const plan = planAppliance({ source: ref, command: image.config, probe, init, appService: true, templates: await loadTemplates() });
      // The packages step (a build), then the app service (written at conversion time, no build).
      adds = [
        plan?.installKernel && 'kernel',
        plan?.installInit && `init (${plan.init})`,
        plan?.installNetwork && 'DHCP networking, serial getty, open-vm-tools',
        isAppCommand(argv) && 'app service',
      ].filter((x): x is string => Boolean(x));
    } catch (e) {
      if (!(e instanceof AppliancePlanError)) throw e;
      adds = { error: e.message };
    }
    return {
      image: ref,
      id: image.id,
      architecture: image.architecture,
      sizeBytes: image.sizeBytes,
      distribution: osRelease.PRETTY_NAME ?? osRelease.ID ?? 'unknown',
      family: distroFamily(osRelease) ?? 'unknown',
      kernel: probe.hasKernel,
      init: probe.init,
      command: argv,
      appService: isAppCommand(argv),
      env: image.config.env,
      workingDir: image.config.workingDir || '/',
      user: image.config.user || 'root',
      exposedPorts: image.config.exposedPorts,
      adds,
    };
  } finally {
    await rootfs.release();
  }
}
