/**
 * `docker save` and `kaniko --tar-path` archives: `manifest.json` lists each image's config and layer files. The
 * same file leads the way in Docker 25+'s archives, whose members are an OCI layout's blobs. Layers stored
 * compressed (kaniko) carry no stored digest; their diff_id is checked all the same.
 */
import { z } from 'zod';
import { C2vError } from '../../errors.js';
import { parseImageConfig } from '../../formats/oci/image-config.js';
import { normalisedReference, pickByIndex } from '../../formats/oci/reference.js';
import type { ResolvedImage } from './resolved-image.js';
import type { StoredFiles } from './stored-files.js';
import { blobDigestOf, checkedBlob } from './blobs.js';

const manifestSchema = z.array(
  z.object({
    Config: z.string(),
    RepoTags: z.array(z.string()).nullish(),
    Layers: z.array(z.string()),
  }),
);

/** `selector`: a tag the archive holds (`app:1.4`), `@N` for its N-th image, or undefined when it holds one. */
export async function resolveDockerArchive(files: StoredFiles, selector: string | undefined, given: string): Promise<ResolvedImage> {
  let parsed: z.infer<typeof manifestSchema>;
  try {
    parsed = manifestSchema.parse(JSON.parse((await files.read('manifest.json')).toString('utf8')));
  } catch (e) {
    if (e instanceof C2vError) {
      if (/has no manifest\.json/.test(e.message)) throw new C2vError('input', `${files.describe} has no manifest.json, so it is not a docker save or kaniko archive: for an OCI archive use oci-archive:`);
      throw e;
    }
    throw new C2vError('input', `${files.describe}: manifest.json is not a docker save manifest (${(e as Error).message.split('\n')[0]})`);
  }
  const entry = chooseEntry(parsed, selector, files.describe);
  const configBytes = await files.read(entry.Config);
  // The config's own digest is the image id, whether or not the member's name states it (then it is checked).
  const configDigest = checkedBlob(configBytes, blobDigestOf(entry.Config), `${files.describe}: the image configuration`);
  const config = parseImageConfig(configBytes, `${files.describe}: ${entry.Config}`);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== entry.Layers.length) {
    throw new C2vError('input', `${files.describe} lists ${entry.Layers.length} layers where its configuration has ${diffIds.length}: the archive is damaged; save it again`);
  }
  const layers = await Promise.all(
    entry.Layers.map(async (name, i) => {
      const size = await files.size(name);
      if (size === undefined) throw new C2vError('input', `${files.describe} has no ${name}, layer ${i + 1} of its manifest: the archive is incomplete; save it again`);
      // Old archives name layers by directory and store them uncompressed: the diff_id check covers their bytes.
      return { digest: blobDigestOf(name), diffId: diffIds[i], size, open: () => files.open(name) };
    }),
  );
  return {
    id: configDigest,
    ref: given,
    config,
    layers,
    close: async () => undefined,
  };
}

function chooseEntry<T extends { RepoTags?: string[] | null }>(entries: T[], selector: string | undefined, describe: string): T {
  if (entries.length === 0) throw new C2vError('input', `${describe} holds no image`);
  const tags = (e: T): string[] => e.RepoTags ?? [];
  if (selector === undefined) {
    if (entries.length === 1) return entries[0];
    throw new C2vError('input', `${describe} holds ${entries.length} images (${entries.map((e) => tags(e)[0] ?? 'untagged').join(', ')}): name one, like ${describe}:${tags(entries[0])[0] ?? '@0'}`);
  }
  const picked = pickByIndex(entries, selector, describe);
  if (picked) return picked;
  const want = normalisedReference(selector);
  const found = entries.find((e) => tags(e).some((t) => t === selector || (want !== undefined && normalisedReference(t) === want)));
  if (!found) throw new C2vError('input', `${describe} holds no image tagged ${selector} (it has ${entries.flatMap(tags).join(', ') || 'only untagged images'})`);
  return found;
}
