import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarBuffer, type TarEntry } from './crafted-tar.js';

/**
 * Images written by hand, without an engine: an OCI layout or a `docker save` archive from layers given as tar
 * entries. Nothing is validated, so tests can make damaged and hostile images as easily as good ones.
 */
export interface CraftedImage {
  layers: Buffer[];
  diffIds: string[];
  config: Buffer;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function craftImage(layers: TarEntry[][], config: Record<string, unknown> = {}): Promise<CraftedImage> {
  const tars = await Promise.all(layers.map((l) => tarBuffer(l)));
  const diffIds = tars.map(sha256);
  const doc = { architecture: 'amd64', os: 'linux', created: '2026-01-01T00:00:00Z', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds }, ...config };
  return { layers: tars, diffIds, config: Buffer.from(JSON.stringify(doc)) };
}

/** An OCI layout folder; `gzip` compresses the layers; `damage` may change blobs after their digests are taken. */
export function writeOciLayout(dir: string, image: CraftedImage, opts: { gzip?: boolean; refName?: string; damage?: (blobs: Map<string, Buffer>) => void } = {}): void {
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer): string => {
    const d = sha256(b);
    blobs.set(d, b);
    return d;
  };
  const stored = image.layers.map((l) => (opts.gzip ? gzipSync(l) : l));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(image.config), size: image.config.length },
      layers: stored.map((b) => ({ mediaType: `application/vnd.oci.image.layer.v1.tar${opts.gzip ? '+gzip' : ''}`, digest: put(b), size: b.length })),
    }),
  );
  const manifestDigest = put(manifest);
  opts.damage?.(blobs);
  mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  for (const [d, b] of blobs) writeFileSync(path.join(dir, 'blobs/sha256', d.slice(7)), b);
  writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const annotations = opts.refName ? { 'org.opencontainers.image.ref.name': opts.refName } : undefined;
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations }] }));
}

/**
 * A `docker save` archive: by default in the layout Docker wrote before version 25 (<id>.json, <dir>/layer.tar,
 * a repeated layer stored as a symlink to the first, manifest.json); with `blobs`, as Docker 25+ writes it (an OCI
 * layout's blobs/sha256/ with manifest.json beside them).
 */
export async function writeDockerArchive(file: string, image: CraftedImage, tag = 'crafted:1', form: 'legacy' | 'blobs' = 'legacy'): Promise<void> {
  const id = sha256(image.config).slice(7);
  const members: TarEntry[] = [];
  const seen = new Map<string, string>();
  let configName = `${id}.json`;
  if (form === 'blobs') {
    members.push({ name: 'blobs/', type: 'dir' }, { name: 'blobs/sha256/', type: 'dir' }, { name: `blobs/sha256/${id}`, data: image.config });
    configName = `blobs/sha256/${id}`;
  } else {
    members.push({ name: configName, data: image.config });
  }
  const layerNames = image.layers.map((l, i) => {
    const digest = sha256(l).slice(7);
    if (form === 'blobs') {
      const name = `blobs/sha256/${digest}`;
      if (!seen.has(digest)) members.push({ name, data: l });
      seen.set(digest, name);
      return name;
    }
    const name = `${digest.slice(0, 63)}${i}/layer.tar`;
    const first = seen.get(digest);
    members.push({ name: `${name.split('/')[0]}/`, type: 'dir' }, first ? { name, type: 'symlink', linkname: `../${first}` } : { name, data: l });
    if (!first) seen.set(digest, name);
    return name;
  });
  members.push({ name: 'manifest.json', data: JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: layerNames }]) });
  writeFileSync(file, await tarBuffer(members));
}
