/**
 * `c2v prepare`: a build context any builder (kaniko, buildah, docker buildx) turns into an image that already
 * carries what a VM needs, so that `c2v convert` of its result needs no builder at all. The user's context is
 * copied, and its Dockerfile gets c2v's packages stage after its last stage; an image reference gets the stage
 * FROM it.
 */
import { cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { C2vError } from '../errors.js';
import type { InputSpec } from '../plan/image.js';
import { AppliancePlanError, packagesContext, packagesStage, PACKAGES_CONTEXT_DIR, stageUser, type InitChoice } from '../plan/appliance.js';
import { appendStage, finalUser, parseInstructions, stagesOf } from '../plan/dockerfile-stages.js';
import type { Templates } from '../plan/template.js';

export interface PrepareOptions {
  input: InputSpec;
  /** The folder to write; it must not exist yet, or be empty. */
  output: string;
  init: InitChoice;
  /** Install an SSH server (convert's --ssh-key then finds one). */
  ssh: boolean;
  /** Install cloud-init (for convert --cloud-init). */
  cloudInit?: boolean;
  /** Install the signed shim and GRUB (for convert --secure-boot). */
  secureBoot?: boolean;
  /** Install the QEMU guest agent (for convert --guest-agent). */
  guestAgent?: boolean;
  /** Install busybox for the network boot step (for convert --format netboot). */
  netboot?: boolean;
  templates: Templates;
  /** The USER of an image outside the Dockerfile, when it can be found (the engine or its registry). */
  userOf: (ref: string) => Promise<string | undefined>;
}

export interface PrepareResult {
  dir: string;
  dockerfile: string;
  /** The stage the packages build FROM. */
  base: string;
  /** The USER the stage restores, and where it came from. */
  user: string;
  userFrom: string;
}

export async function prepareContext(opts: PrepareOptions): Promise<PrepareResult> {
  const { input } = opts;
  const dir = path.resolve(opts.output);
  await requireEmpty(dir);
  let base: string;
  let user: { user?: string; from: string };
  let dockerfile: string;
  const stage = (from: string, u: string): string => {
    try {
      return packagesStage(opts.templates, { C2V_INIT: opts.init, C2V_SSH: opts.ssh ? '1' : '0', C2V_CLOUD_INIT: opts.cloudInit ? '1' : '0', C2V_SECURE_BOOT: opts.secureBoot ? '1' : '0', C2V_GUEST_AGENT: opts.guestAgent ? '1' : '0', C2V_NETBOOT: opts.netboot ? '1' : '0', C2V_USER: stageUser(u) }, from);
    } catch (e) {
      if (e instanceof AppliancePlanError) throw new C2vError('input', e.message, { cause: e });
      throw e;
    }
  };
  if (input.kind === 'dockerfile') {
    const ctx = path.resolve(input.contextDir);
    if (dir === ctx || dir.startsWith(`${ctx}${path.sep}`)) {
      throw new C2vError('usage', `--output ${dir} is inside the build context ${ctx}: write the prepared context elsewhere (it holds a copy of the context)`);
    }
    const text = await readFile(path.join(ctx, input.dockerfile), 'utf8');
    const stages = stagesOf(parseInstructions(text));
    if (stages.length === 0) throw new C2vError('input', `${input.dockerfile} has no FROM instruction: it is not a Dockerfile c2v can add a stage to`);
    user = await userOfStages(stages, opts.userOf);
    await checkNames(ctx, input.dockerfile);
    await cp(ctx, dir, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    const appended = appendStage(text, (from) => stage(from, user.user ?? ''));
    base = appended.base;
    dockerfile = appended.dockerfile;
  } else {
    if (input.transport !== 'docker-daemon' && input.transport !== 'docker') {
      throw new C2vError('usage', `c2v prepare builds FROM a registry image, and ${input.ref} is a file: push it to a registry first (skopeo copy ${input.ref} docker://HOST/NAME:TAG) and prepare that`);
    }
    base = input.ref;
    const found = await opts.userOf(input.ref).catch(() => undefined);
    user = found === undefined ? { from: `not known: ${input.ref} could not be looked up here, so the app runs as root` } : { user: found, from: `the image ${input.ref}` };
    await mkdir(dir, { recursive: true });
    dockerfile = stage(base, user.user ?? '');
  }
  await writeFile(path.join(dir, 'Dockerfile'), dockerfile);
  await mkdir(path.join(dir, PACKAGES_CONTEXT_DIR), { recursive: true });
  for (const f of packagesContext(opts.templates)) await writeFile(path.join(dir, PACKAGES_CONTEXT_DIR, f.path), f.content, { mode: f.mode });
  return { dir, dockerfile, base, user: user.user || 'root', userFrom: user.from };
}

async function requireEmpty(dir: string): Promise<void> {
  const s = await stat(dir).catch(() => undefined);
  if (!s) return;
  if (!s.isDirectory() || (await readdir(dir)).length > 0) {
    throw new C2vError('usage', `--output ${dir} already exists and is not an empty folder: give a new folder for the prepared context`);
  }
}

/** The prepared context's own names must not hide the user's files. */
async function checkNames(ctx: string, dockerfile: string): Promise<void> {
  const clash = async (name: string): Promise<boolean> => Boolean(await stat(path.join(ctx, name)).catch(() => undefined));
  if (await clash(PACKAGES_CONTEXT_DIR)) {
    throw new C2vError('input', `the build context has its own ${PACKAGES_CONTEXT_DIR}, the name c2v's packages stage uses: rename it`);
  }
  if (dockerfile !== 'Dockerfile' && (await clash('Dockerfile'))) {
    throw new C2vError('input', `the build context holds a Dockerfile besides ${dockerfile}, and the prepared context's Dockerfile would replace it: rename one of them`);
  }
}

async function userOfStages(stages: ReturnType<typeof stagesOf>, userOf: (ref: string) => Promise<string | undefined>): Promise<{ user?: string; from: string }> {
  const found = finalUser(stages);
  if (found.user !== undefined) {
    if (found.user.includes('$')) return { from: `not known: the Dockerfile's USER ${found.user} uses a variable, so the app runs as root` };
    return { user: found.user, from: 'the Dockerfile' };
  }
  if (!found.externalBase || found.externalBase.includes('$')) return { from: 'not known: the base image is named by a variable, so the app runs as root' };
  const user = await userOf(found.externalBase).catch(() => undefined);
  if (user === undefined) return { from: `not known: ${found.externalBase} could not be looked up here, so the app runs as root` };
  return { user, from: `the base image ${found.externalBase}` };
}
