// `many-files.mjs make DIR`: an OCI layout of 1 million small files in two gzip layers (the upper one whites out
// 10% of them and adds 10,000), written as a stream. `many-files.mjs flatten DIR`: c2v's daemonless source
// indexes it and exports the flattened tree into nothing; prints JSON. bench.mjs measures the second's memory.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

const [mode, dir] = process.argv.slice(2);
const FILES = 1_000_000;
const PER_DIR = 1000;

async function writeLayer(entries) {
  const { encodeEntry, tarPadding, TAR_END } = await import('../../dist/formats/tar/index.js');
  const tmp = path.join(dir, 'layer.tmp');
  const tarHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let storedBytes = 0;
  async function* tar() {
    let batch = [];
    for (const e of entries()) {
      const data = e.data ?? Buffer.alloc(0);
      const h = { name: e.name, linkname: '', typeflag: e.dir ? '5' : '0', mode: e.dir ? 0o755 : 0o644, uid: 0, gid: 0, size: data.length, mtime: 1_700_000_000, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [] };
      batch.push(...encodeEntry(h), data, tarPadding(data.length));
      if (batch.length > 3000) {
        const b = Buffer.concat(batch);
        tarHash.update(b);
        yield b;
        batch = [];
      }
    }
    batch.push(TAR_END);
    const b = Buffer.concat(batch);
    tarHash.update(b);
    yield b;
  }
  const gzip = createGzip({ level: 1 });
  gzip.on('data', (c) => {
    blobHash.update(c);
    storedBytes += c.length;
  });
  await pipeline(tar, gzip, createWriteStream(tmp));
  const digest = `sha256:${blobHash.digest('hex')}`;
  await rename(tmp, path.join(dir, 'blobs/sha256', digest.slice(7)));
  return { digest, diffId: `sha256:${tarHash.digest('hex')}`, size: storedBytes };
}

async function make() {
  if (await stat(path.join(dir, 'index.json')).catch(() => undefined)) return;
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'blobs/sha256'), { recursive: true });
  const content = (i) => Buffer.from(`file ${i} `.repeat(1 + (i % 20)));
  const lower = await writeLayer(function* () {
    for (let d = 0; d < FILES / PER_DIR; d++) {
      yield { name: `data/d${d}/`, dir: true };
      for (let f = 0; f < PER_DIR; f++) yield { name: `data/d${d}/f${f}`, data: content(d * PER_DIR + f) };
    }
  });
  const upper = await writeLayer(function* () {
    for (let d = 0; d < FILES / PER_DIR; d += 10) yield { name: `data/.wh.d${d}` };
    yield { name: 'data/new/', dir: true };
    for (let f = 0; f < 10_000; f++) yield { name: `data/new/f${f}`, data: content(f) };
  });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [lower.diffId, upper.diffId] } }));
  const put = async (b) => {
    const d = `sha256:${createHash('sha256').update(b).digest('hex')}`;
    await writeFile(path.join(dir, 'blobs/sha256', d.slice(7)), b);
    return d;
  };
  const layer = (l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size });
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length }, layers: [layer(lower), layer(upper)] }));
  const md = await put(manifest);
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: manifest.length }] }));
}

async function flatten() {
  const { LayeredImageSource } = await import('../../dist/adapters/oci/layered-source.js');
  const { resolveOciLayout } = await import('../../dist/adapters/oci/oci-layout.js');
  const { DirectoryFiles } = await import('../../dist/adapters/oci/stored-files.js');
  const source = new LayeredImageSource(() => resolveOciLayout(new DirectoryFiles(dir, `oci:${dir}`), undefined, { os: 'linux', architecture: 'amd64' }, `oci:${dir}`));
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
  const manifest = JSON.parse(await readFile(path.join(dir, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  const t0 = performance.now();
  const info = await source.inspect(`oci:${dir}`);
  const t1 = performance.now();
  const rootfs = await source.openRootfs(info.id);
  // Into nothing, unparsed: what is measured is c2v's own memory, as when mke2fs reads the stream.
  let tarBytes = 0;
  for await (const chunk of await rootfs.export()) tarBytes += chunk.length;
  const t2 = performance.now();
  const storedBytes = manifest.layers.reduce((n, l) => n + l.size, 0);
  process.stdout.write(JSON.stringify({ written: FILES + FILES / PER_DIR + 1 + 10_000 + 1 + FILES / PER_DIR / 10, storedBytes, indexSeconds: (t1 - t0) / 1000, exportSeconds: (t2 - t1) / 1000, tarBytes, sizeBytes: info.sizeBytes }));
}

if (mode === 'make') await make();
else if (mode === 'flatten') await flatten();
else {
  process.stderr.write('usage: many-files.mjs make|flatten DIR\n');
  process.exit(2);
}
