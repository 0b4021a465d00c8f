/**
 * OCI image layouts, as a directory (`oci:`) or a tar of one (`oci-archive:`): `index.json` names the images,
 * by `org.opencontainers.image.ref.name` (skopeo writes the tag there, others the full name), and an index may
 * hold further indexes, one per platform set, down to an image manifest.
 */
import { C2vError } from '../../errors.js';
import { parseImageConfig } from '../../formats/oci/image-config.js';
import { formatPlatform, parseManifest, selectManifest, type Descriptor, type Platform } from '../../formats/oci/manifest.js';
import { normalisedReference, pickByIndex } from '../../formats/oci/reference.js';
import { checkedBlob } from './blobs.js';
import type { ResolvedImage } from './resolved-image.js';
import type { StoredFiles } from './stored-files.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';
/** Nested indexes deeper than this are a loop or a hostile layout. */
const MAX_DEPTH = 8;

function blobPath(digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return `blobs/${algorithm}/${hex}`;
}

async function readBlob(files: StoredFiles, d: Descriptor, what: string): Promise<Buffer> {
  const size = await files.size(blobPath(d.digest));
  if (size === undefined) throw new C2vError('input', `${files.describe} has no blob ${d.digest} (${what}) that its index names: the layout is incomplete; copy it again`);
  const bytes = await files.read(blobPath(d.digest));
  checkedBlob(bytes, d.digest, `${files.describe}: ${what} ${d.digest.slice(0, 19)}…`);
  return bytes;
}

/** `selector`: a reference name, `@N` for the N-th entry of index.json, or undefined when there is one image. */
export async function resolveOciLayout(files: StoredFiles, selector: string | undefined, platform: Platform, given: string): Promise<ResolvedImage> {
  if ((await files.size('index.json')) === undefined) {
    throw new C2vError('input', `${files.describe} has no index.json, so it is not an OCI image layout${files.describe.startsWith('oci-archive:') ? ' (for docker save archives use docker-archive:)' : ''}`);
  }
  const top = parseManifest(await files.read('index.json'), `${files.describe}: index.json`);
  if (top.kind !== 'index') throw new C2vError('input', `${files.describe}: index.json is not an image index`);
  let descriptor = chooseEntry(top.manifests, selector, platform, files.describe);
  for (let depth = 0; ; depth++) {
    if (depth > MAX_DEPTH) throw new C2vError('input', `${files.describe} nests indexes more than ${MAX_DEPTH} deep: the layout is damaged`);
    const doc = parseManifest(await readBlob(files, descriptor, 'manifest'), `${files.describe}: manifest ${descriptor.digest.slice(0, 19)}…`, descriptor.mediaType);
    if (doc.kind === 'index') {
      descriptor = selectManifest(doc.manifests, platform, `${given}`);
      continue;
    }
    const config = parseImageConfig(await readBlob(files, doc.config, 'image configuration'), `${files.describe}: configuration ${doc.config.digest.slice(0, 19)}…`);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== doc.layers.length) {
      throw new C2vError('input', `${given}: the manifest lists ${doc.layers.length} layers where the configuration has ${diffIds.length}: the image is damaged`);
    }
    const layers = await Promise.all(
      doc.layers.map(async (l, i) => {
        if ((await files.size(blobPath(l.digest))) === undefined) {
          const foreign = l.urls?.length ? ` (a foreign layer served from ${l.urls[0]}, which c2v does not fetch)` : '';
          throw new C2vError('input', `${files.describe} has no blob for layer ${i + 1}, ${l.digest}${foreign}: the layout is incomplete; copy it again`);
        }
        return { digest: l.digest, diffId: diffIds[i], size: l.size, open: () => files.open(blobPath(l.digest)) };
      }),
    );
    return { id: doc.config.digest, ref: given, config, layers, close: async () => undefined };
  }
}

function chooseEntry(manifests: Descriptor[], selector: string | undefined, platform: Platform, describe: string): Descriptor {
  const names = (d: Descriptor): string[] => [d.annotations?.[REF_NAME], d.annotations?.[CONTAINERD_NAME]].filter((n): n is string => !!n);
  if (manifests.length === 0) throw new C2vError('input', `${describe} holds no image`);
  if (selector === undefined) {
    if (manifests.length === 1) return manifests[0];
    // Several entries and no names: one image for several platforms, listed at the top.
    if (manifests.every((d) => names(d).length === 0)) return selectManifest(manifests, platform, describe);
    const offered = [...new Set(manifests.flatMap((d) => names(d).slice(0, 1)))];
    throw new C2vError('input', `${describe} holds ${manifests.length} images (${offered.join(', ')}): name one, like ${describe}:${offered[0] ?? '@0'}`);
  }
  const picked = pickByIndex(manifests, selector, describe);
  if (picked) return picked;
  const want = normalisedReference(selector);
  const matches = manifests.filter((d) => names(d).some((n) => n === selector || (want !== undefined && normalisedReference(n) === want)));
  if (matches.length === 0) {
    const offered = [...new Set(manifests.flatMap(names))];
    throw new C2vError('input', `${describe} holds no image named ${selector} (it has ${offered.join(', ') || 'only unnamed images'})`);
  }
  if (matches.length === 1) return matches[0];
  const chosen = selectManifest(matches, platform, `${describe}:${selector}`);
  if (!chosen) throw new C2vError('input', `${describe}:${selector} has no ${formatPlatform(platform)} image`);
  return chosen;
}
