/**
 * The image configuration blob (OCI image config, which Docker's config is a superset of): what the image runs
 * and the list of its layers' uncompressed digests.
 */
import { z } from 'zod';
import { C2vError } from '../../errors.js';
import type { ImageInfo } from '../../plan/image.js';
import { DIGEST } from './reference.js';

const stringList = z.array(z.string()).nullish();

const configSchema = z.object({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  created: z.string().optional(),
  config: z
    .object({
      Entrypoint: stringList,
      Cmd: stringList,
      Env: stringList,
      WorkingDir: z.string().nullish(),
      User: z.string().nullish(),
      ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
      Labels: z.record(z.string(), z.string()).nullish(),
    })
    .nullish(),
  rootfs: z.object({
    type: z.literal('layers'),
    diff_ids: z.array(z.string().regex(DIGEST, 'not a digest')),
  }),
});

export type ImageConfig = z.infer<typeof configSchema>;

export function parseImageConfig(bytes: Buffer, where: string): ImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new C2vError('input', `${where} is not JSON: the image's configuration is damaged`);
  }
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new C2vError('input', `${where} is not a valid image configuration (${issue.path.join('.') || 'document'}: ${issue.message})`);
  }
  return parsed.data;
}

/**
 * What c2v knows of an image read without an engine. `id` is the config's digest, as the engine's image id is;
 * `sizeBytes` is the flattened tree's file bytes, which the engine's Size approximates.
 */
export function imageInfoOf(config: ImageConfig, ids: { id: string; ref: string; sizeBytes: number }): ImageInfo {
  const c = config.config ?? {};
  return {
    id: ids.id,
    ref: ids.ref,
    architecture: config.architecture,
    os: config.os,
    sizeBytes: ids.sizeBytes,
    created: config.created,
    config: {
      entrypoint: c.Entrypoint ?? [],
      cmd: c.Cmd ?? [],
      env: c.Env ?? [],
      workingDir: c.WorkingDir ?? '',
      user: c.User ?? '',
      exposedPorts: Object.keys(c.ExposedPorts ?? {}),
      labels: c.Labels ?? {},
    },
  };
}
