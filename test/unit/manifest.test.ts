import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatManifest } from '../../src/formats/manifest.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('formatManifest', () => {
  it('writes exactly SHA256(<name>)= <lowercase hex> per line, in the given order', () => {
    const ovf = sha('ovf');
    const disk = sha('disk');
    expect(formatManifest([
      { name: 'app.ovf', sha256: ovf },
      { name: 'app-disk1.vmdk', sha256: disk.toUpperCase() },
    ])).toBe(`SHA256(app.ovf)= ${ovf}\nSHA256(app-disk1.vmdk)= ${disk}\n`);
  });

  it('matches a line computed independently', () => {
    expect(formatManifest([{ name: 'a.ovf', sha256: sha('') }])).toBe(
      'SHA256(a.ovf)= e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n',
    );
  });

  it('writes nothing for no entries', () => {
    expect(formatManifest([])).toBe('');
  });

  it('rejects bad digests and names, naming every problem', () => {
    expect(() => formatManifest([{ name: 'a.ovf', sha256: 'abc' }])).toThrow(/a\.ovf.*not a SHA-256/);
    expect(() => formatManifest([{ name: 'a.ovf', sha256: 'g'.repeat(64) }])).toThrow(/not a SHA-256/);
    expect(() => formatManifest([{ name: 'a.ovf', sha256: ` ${sha('x')}` }])).toThrow(/not a SHA-256/);
    expect(() => formatManifest([{ name: 'x\ny', sha256: sha('x') }])).toThrow(/plain file name/);
    expect(() => formatManifest([{ name: 'dir/x', sha256: sha('x') }])).toThrow(/plain file name/);
    expect(() =>
      formatManifest([
        { name: 'a', sha256: sha('a') },
        { name: 'a', sha256: 'zz' },
      ]),
    ).toThrow(/listed twice.*not a SHA-256/);
  });
});
