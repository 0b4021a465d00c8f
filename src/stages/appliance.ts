import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { C2vError } from '../errors.js';
import type { ImageBuilder, ImageInfo } from '../adapters/engine.js';
import type { AppliancePlan } from '../plan/appliance.js';

/** dockerfiles/ at the package root, from src/stages or dist/stages alike. */
export const TEMPLATE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dockerfiles');

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
