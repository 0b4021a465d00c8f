import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import type { ImageBuilder, ImageInfo } from '../adapters/engine.js';
import { PACKAGES_CONTEXT_DIR, type AppliancePlan } from '../plan/appliance.js';

/** Builds the derived image: the packages stage FROM the user's image, with its script beside it. */
export async function buildAppliance(
  builder: ImageBuilder,
  base: ImageInfo,
  plan: AppliancePlan,
  opts: { workDir: string; tag: string; onLog?: (line: string) => void },
): Promise<ImageInfo> {
  const ctx = path.join(opts.workDir, 'appliance-context');
  await mkdir(path.join(ctx, PACKAGES_CONTEXT_DIR), { recursive: true });
  await writeFile(path.join(ctx, 'Dockerfile'), plan.dockerfile);
  for (const f of plan.files) await writeFile(path.join(ctx, PACKAGES_CONTEXT_DIR, f.path), f.content, { mode: f.mode });
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
      const what = [plan.installKernel && 'a kernel', plan.installInit && plan.init, plan.ssh && 'an SSH server'].filter(Boolean).join(', ');
      throw new C2vError('build', `adding ${what} to the image failed: ${e.message.replace(/^the Dockerfile build failed: /, '')}`, { cause: e, detail: e.detail });
    }
    throw e;
  }
  const info = await builder.source.inspect(id);
  if (!info) throw new C2vError('build', `the appliance image ${opts.tag} vanished right after its build`);
  return { ...info, ref: opts.tag };
}
