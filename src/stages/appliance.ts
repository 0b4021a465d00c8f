import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { C2vError } from '../errors.js';
import type { ImageBuilder, ImageInfo, RootfsSource } from '../adapters/engine.js';
import type { AppliancePlan, ImageProbe } from '../plan/appliance.js';

/** dockerfiles/ at the package root, from src/stages or dist/stages alike. */
export const TEMPLATE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dockerfiles');

/** Looks into the stopped container for a kernel and an init, without starting it. */
export async function probeImage(source: RootfsSource, osRelease: Readonly<Record<string, string>>): Promise<ImageProbe> {
  // Existence checks are cheap for the engine; listing /boot makes it tar the kernel and initrd, so that is the
  // last resort, for kernels with no well-known name (RHEL's /boot/vmlinuz-<version> only).
  const has = async (paths: string[]): Promise<boolean> => (await Promise.all(paths.map((p) => source.exists(p)))).some(Boolean);
  const [knownKernel, openrc, sysvInit, systemd] = await Promise.all([
    has(['/vmlinuz', '/boot/vmlinuz', '/boot/vmlinuz-virt', '/boot/vmlinuz-lts']),
    has(['/sbin/openrc', '/sbin/openrc-init', '/usr/sbin/openrc', '/usr/sbin/openrc-init']),
    has(['/sbin/init', '/usr/sbin/init']),
    has(['/lib/systemd/systemd', '/usr/lib/systemd/systemd']),
  ]);
  const hasKernel = knownKernel || (await source.listDir('/boot')).some((n) => /^vmlinuz/.test(n));
  let init: ImageProbe['init'] = 'none';
  if (openrc) init = 'openrc';
  else if (sysvInit) init = systemd ? 'systemd' : 'other';
  return { osRelease, hasKernel, init };
}

/** Builds the derived image: the per-distro template FROM the user's image, with c2v's generated files. */
export async function buildAppliance(
  builder: ImageBuilder,
  base: ImageInfo,
  plan: AppliancePlan,
  opts: { workDir: string; tag: string; onLog?: (line: string) => void },
): Promise<ImageInfo> {
  const ctx = path.join(opts.workDir, 'appliance-context');
  await mkdir(path.join(ctx, 'c2v'), { recursive: true });
  await copyFile(path.join(TEMPLATE_DIR, plan.template), path.join(ctx, 'Dockerfile'));
  for (const f of plan.files) await writeFile(path.join(ctx, f.path), f.content, { mode: f.mode });
  let id: string;
  try {
    id = await builder.build({
      contextDir: ctx,
      dockerfile: 'Dockerfile',
      tag: opts.tag,
      buildArgs: { C2V_BASE: base.ref, ...plan.buildArgs },
      labels: { 'c2v.appliance-of': base.id },
      onLog: opts.onLog,
    });
  } catch (e) {
    if (e instanceof C2vError && e.code === 'build') {
      throw new C2vError('build', `adding ${[plan.installKernel && 'a kernel', plan.installInit && plan.init, plan.appArgv && 'the app service'].filter(Boolean).join(', ')} to the image failed: ${e.message.replace(/^the Dockerfile build failed: /, '')}`, { cause: e, detail: e.detail });
    }
    throw e;
  }
  const info = await builder.source.inspect(id);
  if (!info) throw new C2vError('build', `the appliance image ${opts.tag} vanished right after its build`);
  return { ...info, ref: opts.tag };
}
