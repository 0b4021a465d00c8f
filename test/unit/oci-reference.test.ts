import { describe, expect, it } from 'vitest';
import { C2vError } from '../../src/errors.js';
import { parseManifest, parsePlatform, selectManifest, type Descriptor } from '../../src/formats/oci/manifest.js';
import { formatReference, isLoopbackRegistry, parseReference, registryHost } from '../../src/formats/oci/reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('image references, as Docker reads them', () => {
  it.each([
    ['debian', 'docker.io/library/debian:latest'],
    ['debian:bookworm', 'docker.io/library/debian:bookworm'],
    ['team/app:1.4', 'docker.io/team/app:1.4'],
    ['docker.io/debian', 'docker.io/library/debian:latest'],
    ['index.docker.io/team/app', 'docker.io/team/app:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['127.0.0.1:5000/team/app:1.4', '127.0.0.1:5000/team/app:1.4'],
    ['registry.example/a/b/c', 'registry.example/a/b/c:latest'],
    [`app@${DIGEST}`, `docker.io/library/app@${DIGEST}`],
    [`app:1.4@${DIGEST}`, `docker.io/library/app:1.4@${DIGEST}`],
  ])('%s is %s', (given, full) => {
    expect(formatReference(parseReference(given))).toBe(full);
  });

  it('talks to Docker Hub at its API host, and to loopback registries in plain HTTP', () => {
    expect(registryHost(parseReference('debian').registry)).toBe('registry-1.docker.io');
    expect(isLoopbackRegistry('127.0.0.1:5000')).toBe(true);
    expect(isLoopbackRegistry('localhost:5000')).toBe(true);
    expect(isLoopbackRegistry('[::1]:5000')).toBe(true);
    expect(isLoopbackRegistry('registry.example:5000')).toBe(false);
  });

  it.each(['Team/App', 'app:', 'app@sha256:short', '/app', 'app//x', 'a:b:c'])('refuses %s in one line', (given) => {
    expect(() => parseReference(given)).toThrow(C2vError);
  });
});

describe('choosing an image from an index', () => {
  const entry = (platform: Descriptor['platform'], annotations?: Record<string, string>): Descriptor => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, size: 1, platform, annotations });

  it('takes the platform asked for, past attestation entries, preferring an exact variant', () => {
    const attestation = entry({ os: 'unknown', architecture: 'unknown' }, { 'vnd.docker.reference.type': 'attestation-manifest' });
    const amd = entry({ os: 'linux', architecture: 'amd64' });
    const v8 = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    const v9 = entry({ os: 'linux', architecture: 'arm64', variant: 'v9' });
    expect(selectManifest([attestation, amd, v8], parsePlatform('linux/amd64'), 'x')).toBe(amd);
    expect(selectManifest([v9, v8], parsePlatform('linux/arm64/v8'), 'x')).toBe(v8);
    expect(selectManifest([v9], parsePlatform('linux/arm64'), 'x')).toBe(v9);
  });

  it('names what is on offer when the platform is not', () => {
    expect(() => selectManifest([entry({ os: 'linux', architecture: 'arm64' })], parsePlatform('linux/amd64'), 'oci:x')).toThrow(
      'oci:x has no image for linux/amd64 (it offers linux/arm64): choose one with --platform, or build the image for linux/amd64',
    );
  });

  it('reads indexes and manifests by their media type, or their shape when the document has none', () => {
    const manifest = { schemaVersion: 2, config: { mediaType: 'x', digest: DIGEST, size: 2 }, layers: [] };
    expect(parseManifest(Buffer.from(JSON.stringify(manifest)), 'm').kind).toBe('image');
    expect(parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })), 'i').kind).toBe('index');
    expect(() => parseManifest(Buffer.from('{"schemaVersion":1}'), 'old')).toThrow(/schema 1 manifest/);
    expect(() => parseManifest(Buffer.from('not json'), 'bad')).toThrow(/bad is not JSON/);
  });
});
