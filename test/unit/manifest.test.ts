import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digestHexLength, formatManifest, MANIFEST_DIGESTS, parseManifest, zeroDigest, type ManifestDigest } from '../../src/formats/manifest.js';

const hash = (algorithm: ManifestDigest, s: string) => createHash(algorithm).update(s).digest('hex');
const sha = (s: string) => hash('sha256', s);

describe('formatManifest', () => {
  it('writes exactly SHA256(<name>)= <lowercase hex> per line, in the given order', () => {
    const ovf = sha('ovf');
    const disk = sha('disk');
    expect(
      formatManifest(
        [
          { name: 'app.ovf', hex: ovf },
          { name: 'app-disk1.vmdk', hex: disk.toUpperCase() },
        ],
        'sha256',
      ),
    ).toBe(`SHA256(app.ovf)= ${ovf}\nSHA256(app-disk1.vmdk)= ${disk}\n`);
  });

  it('matches lines computed independently, for each algorithm', () => {
    // The digests of the empty string, from the algorithms' published test vectors.
    expect(formatManifest([{ name: 'a.ovf', hex: hash('sha1', '') }], 'sha1')).toBe('SHA1(a.ovf)= da39a3ee5e6b4b0d3255bfef95601890afd80709\n');
    expect(formatManifest([{ name: 'a.ovf', hex: sha('') }], 'sha256')).toBe(
      'SHA256(a.ovf)= e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n',
    );
    expect(formatManifest([{ name: 'a.ovf', hex: hash('sha512', '') }], 'sha512')).toBe(
      'SHA512(a.ovf)= cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e\n',
    );
  });

  it('writes every line of a manifest with its one algorithm', () => {
    const entries = (algorithm: ManifestDigest) => [
      { name: 'app.ovf', hex: hash(algorithm, 'ovf') },
      { name: 'app-disk1.vmdk', hex: hash(algorithm, 'disk') },
    ];
    expect(formatManifest(entries('sha1'), 'sha1')).toBe(`SHA1(app.ovf)= ${hash('sha1', 'ovf')}\nSHA1(app-disk1.vmdk)= ${hash('sha1', 'disk')}\n`);
    expect(formatManifest(entries('sha512'), 'sha512')).toBe(
      `SHA512(app.ovf)= ${hash('sha512', 'ovf')}\nSHA512(app-disk1.vmdk)= ${hash('sha512', 'disk')}\n`,
    );
  });

  it('writes nothing for no entries', () => {
    for (const d of MANIFEST_DIGESTS) expect(formatManifest([], d)).toBe('');
  });

  it("knows each algorithm's hex length, and its zero digest is accepted and as long as a real one", () => {
    expect(MANIFEST_DIGESTS.map(digestHexLength)).toEqual([40, 64, 128]);
    for (const d of MANIFEST_DIGESTS) {
      expect(zeroDigest(d)).toMatch(/^0+$/);
      expect(zeroDigest(d)).toHaveLength(hash(d, 'x').length);
      const real = formatManifest([{ name: 'a.vmdk', hex: hash(d, 'x') }], d);
      expect(formatManifest([{ name: 'a.vmdk', hex: zeroDigest(d) }], d)).toHaveLength(real.length);
    }
  });

  it("refuses a digest of another algorithm's length", () => {
    expect(() => formatManifest([{ name: 'a.ovf', hex: sha('x') }], 'sha1')).toThrow(/a\.ovf.*not a SHA1 in hex \(40 digits\)/);
    expect(() => formatManifest([{ name: 'a.ovf', hex: sha('x') }], 'sha512')).toThrow(/not a SHA512 in hex \(128 digits\)/);
    expect(() => formatManifest([{ name: 'a.ovf', hex: hash('sha1', 'x') }], 'sha256')).toThrow(/not a SHA256 in hex/);
    expect(() => formatManifest([{ name: 'a.ovf', hex: hash('sha512', 'x') }], 'sha256')).toThrow(/not a SHA256 in hex/);
    expect(() => formatManifest([{ name: 'a.ovf', hex: `${hash('sha1', 'x')}0` }], 'sha1')).toThrow(/not a SHA1/);
  });

  it('rejects bad digests and names, naming every problem', () => {
    expect(() => formatManifest([{ name: 'a.ovf', hex: 'abc' }], 'sha256')).toThrow(/a\.ovf.*not a SHA256/);
    expect(() => formatManifest([{ name: 'a.ovf', hex: 'g'.repeat(64) }], 'sha256')).toThrow(/not a SHA256/);
    expect(() => formatManifest([{ name: 'a.ovf', hex: 'g'.repeat(40) }], 'sha1')).toThrow(/not a SHA1/);
    expect(() => formatManifest([{ name: 'a.ovf', hex: ` ${sha('x')}` }], 'sha256')).toThrow(/not a SHA256/);
    expect(() => formatManifest([{ name: 'x\ny', hex: sha('x') }], 'sha256')).toThrow(/plain file name/);
    expect(() => formatManifest([{ name: 'dir/x', hex: sha('x') }], 'sha256')).toThrow(/plain file name/);
    expect(() => formatManifest([{ name: 'a)= b', hex: hash('sha1', 'x') }], 'sha1')).toThrow(/plain file name/);
    expect(() => formatManifest([{ name: '', hex: hash('sha512', 'x') }], 'sha512')).toThrow(/plain file name/);
    expect(() =>
      formatManifest(
        [
          { name: 'a', hex: sha('a') },
          { name: 'a', hex: 'zz' },
        ],
        'sha256',
      ),
    ).toThrow(/listed twice.*not a SHA256/);
  });
});

describe('parseManifest', () => {
  it('reads back what formatManifest writes, for each algorithm, and nothing else', () => {
    for (const digest of MANIFEST_DIGESTS) {
      const entries = [
        { name: 'app.ovf', hex: 'a'.repeat(digestHexLength(digest)) },
        { name: 'app-disk1.vmdk', hex: 'b'.repeat(digestHexLength(digest)) },
      ];
      expect(parseManifest(formatManifest(entries, digest))).toEqual({ digest, entries });
    }
    expect(parseManifest(`SHA1(a)= ${'a'.repeat(40)}\nSHA256(b)= ${'b'.repeat(64)}\n`)).toBeUndefined();
    expect(parseManifest(`SHA256 (a) = ${'a'.repeat(64)}\n`)).toBeUndefined();
    expect(parseManifest(`SHA256(a)= ${'a'.repeat(63)}\n`)).toBeUndefined();
  });
});
