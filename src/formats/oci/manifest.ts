/**
 * Image manifests and indexes, OCI and Docker schema 2 alike (they share their JSON shape), and the choice of
 * one platform's manifest from an index.
 */
import { z } from 'zod';
import { C2vError } from '../../errors.js';
import { DIGEST } from './reference.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** What a registry is asked for: every manifest form c2v reads. */
export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');

const INDEX_TYPES = new Set<string>([MEDIA.ociIndex, MEDIA.dockerList]);
const MANIFEST_TYPES = new Set<string>([MEDIA.ociManifest, MEDIA.dockerManifest]);

const platformSchema = z.object({
  os: z.string(),
  architecture: z.string(),
  variant: z.string().optional(),
});

const descriptorSchema = z.object({
  mediaType: z.string(),
  digest: z.string().regex(DIGEST, 'not a digest'),
  size: z.number().int().nonnegative(),
  platform: platformSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  urls: z.array(z.string()).optional(),
});

const documentSchema = z.object({
  schemaVersion: z.number().optional(),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema).optional(),
  config: descriptorSchema.optional(),
  layers: z.array(descriptorSchema).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export type Platform = z.infer<typeof platformSchema>;
export type Descriptor = z.infer<typeof descriptorSchema>;

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] }
  | { kind: 'image'; mediaType: string; config: Descriptor; layers: Descriptor[] };

/**
 * An index or an image manifest. The kind comes from the document's mediaType, else the one the registry or the
 * enclosing descriptor gave, else its shape (OCI makes mediaType optional in the document).
 */
export function parseManifest(bytes: Buffer, where: string, declaredType?: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new C2vError('input', `${where} is not JSON: the image is damaged or not an image manifest`);
  }
  const parsed = documentSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new C2vError('input', `${where} is not a valid image manifest (${issue.path.join('.') || 'document'}: ${issue.message})`);
  }
  const doc = parsed.data;
  if (doc.schemaVersion === 1) {
    throw new C2vError('input', `${where} is a Docker schema 1 manifest, which nothing has written since 2017: push the image again with a current tool`);
  }
  const mediaType = doc.mediaType ?? (declaredType && declaredType !== 'application/json' ? declaredType : undefined) ?? (doc.manifests ? MEDIA.ociIndex : MEDIA.ociManifest);
  if (INDEX_TYPES.has(mediaType) || (!MANIFEST_TYPES.has(mediaType) && doc.manifests)) {
    if (!doc.manifests) throw new C2vError('input', `${where} is an index without a manifests list`);
    return { kind: 'index', mediaType, manifests: doc.manifests };
  }
  if (!doc.config || !doc.layers) {
    throw new C2vError('input', `${where} has media type ${mediaType}, which is not a container image: c2v converts images only`);
  }
  return { kind: 'image', mediaType, config: doc.config, layers: doc.layers };
}

/** `linux/amd64`, `linux/arm64/v8`: what --platform takes. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, extra] = text.split('/');
  if (!os || !architecture || extra !== undefined) {
    throw new C2vError('usage', `--platform ${text} is not of the form os/architecture[/variant], like linux/amd64`);
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** BuildKit's provenance and SBOM manifests sit in the index as `unknown/unknown`, marked by this annotation. */
function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' || (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown');
}

/**
 * The entry of an index for `platform`. An entry without a platform is taken only when it is the one image there
 * is; a nested index is returned as it is, for the caller to open and choose from again.
 */
export function selectManifest(manifests: Descriptor[], platform: Platform, where: string): Descriptor {
  const candidates = manifests.filter((d) => !isAttestation(d));
  const matches = candidates.filter(
    (d) => d.platform && d.platform.os === platform.os && d.platform.architecture === platform.architecture && (!platform.variant || !d.platform.variant || d.platform.variant === platform.variant),
  );
  if (matches.length > 0) return matches.find((d) => d.platform?.variant === platform.variant) ?? matches[0];
  const unlabelled = candidates.filter((d) => !d.platform);
  if (unlabelled.length === 1 && candidates.length === 1) return unlabelled[0];
  const offered = candidates.map((d) => (d.platform ? formatPlatform(d.platform) : 'an unlabelled entry'));
  throw new C2vError('input', `${where} has no image for ${formatPlatform(platform)} (it offers ${offered.join(', ') || 'none'}): choose one with --platform, or build the image for ${formatPlatform(platform)}`);
}

export function isIndexType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}
