import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { C2vError } from '../../src/errors.js';
import { FlattenIndex } from '../../src/formats/layers/flatten-index.js';
import { FlattenMerge } from '../../src/formats/layers/flatten-merge.js';
import { childrenOf, resolveKey } from '../../src/formats/layers/tree-paths.js';
import { TarParser, readBody, readTar, textOf } from '../../src/formats/tar/index.js';
import { tarBuffer, type TarEntry } from '../helpers/crafted-tar.js';

/** Layers as tar buffers, bottom first, flattened by the two passes; the result read back as a list. */
async function flatten(layers: TarEntry[][]): Promise<{ tree: Map<string, { kind: string; mode: number; link: string; data: string }>; order: string[]; index: FlattenIndex }> {
  const tars = await Promise.all(layers.map((l) => tarBuffer(l)));
  const index = new FlattenIndex();
  for (let i = tars.length - 1; i >= 0; i--) {
    index.beginLayer(i, `layer ${i}`);
    const p = new TarParser({ entry: (e) => index.add(e) }, { source: `layer ${i}` });
    p.write(tars[i]);
    p.end();
    index.endLayer();
  }
  index.finish();
  const out: Buffer[] = [];
  const merge = new FlattenMerge(index, (b) => out.push(Buffer.from(b)));
  tars.forEach((tar, i) => {
    const p = new TarParser(merge.layerHandler(i, `layer ${i}`), { source: `layer ${i}` });
    p.write(tar);
    p.end();
  });
  merge.finish();
  const tree = new Map<string, { kind: string; mode: number; link: string; data: string }>();
  const order: string[] = [];
  for await (const e of readTar(Readable.from([Buffer.concat(out)]))) {
    const name = textOf(e.header.name).replace(/^\.\//, '').replace(/\/$/, '');
    expect(tree.has(name), `${name} written twice`).toBe(false);
    const slash = name.lastIndexOf('/');
    if (slash !== -1) expect(tree.get(name.slice(0, slash))?.kind, `parent of ${name} written before it`).toBe('dir');
    if (e.kind === 'hardlink') expect(tree.get(textOf(e.header.linkname))?.kind, `target of ${name} written before it`).toBe('file');
    tree.set(name, { kind: e.kind, mode: e.header.mode & 0o7777, link: textOf(e.header.linkname), data: (await readBody(e)).toString() });
    order.push(name);
  }
  return { tree, order, index };
}

const dir = (name: string, mode = 0o755): TarEntry => ({ name: `${name}/`, type: 'dir', mode });
const file = (name: string, data: string, mode = 0o644): TarEntry => ({ name, data, mode });

describe('flattening layers (OCI "Applying changesets")', () => {
  it('a whiteout hides the path and what is below it in lower layers only', async () => {
    const { tree } = await flatten([
      [dir('etc'), file('etc/a', 'a1'), file('etc/b', 'b1'), dir('var'), file('var/x', 'x')],
      [file('etc/.wh.a', ''), file('.wh.var', ''), file('etc/c', 'c2')],
      [file('etc/a', 'a3')],
    ]);
    expect(tree.get('etc/a')?.data).toBe('a3');
    expect(tree.get('etc/b')?.data).toBe('b1');
    expect(tree.get('etc/c')?.data).toBe('c2');
    expect(tree.has('var')).toBe(false);
    expect(tree.has('var/x')).toBe(false);
    expect([...tree.keys()].some((k) => k.includes('.wh.'))).toBe(false);
  });

  it('an opaque marker empties its directory of lower content wherever it sits in its tar', async () => {
    const { tree } = await flatten([
      [dir('d'), file('d/old', 'o'), dir('d/sub'), file('d/sub/deep', 'x'), file('keep', 'k')],
      // rm -rf d && mkdir d && touch d/new: the marker after the new file
      [dir('d', 0o700), file('d/new', 'n'), file('d/.wh..wh..opq', '')],
    ]);
    expect([...tree.keys()].filter((k) => k.startsWith('d/'))).toEqual(['d/new']);
    expect(tree.get('d')?.mode).toBe(0o700);
    expect(tree.get('keep')?.data).toBe('k');
  });

  it('a path that changes type is replaced, with everything the old one held', async () => {
    const { tree } = await flatten([
      [dir('a'), file('a/inside', '1'), file('b', 'file b'), dir('c'), file('c/x', 'x')],
      [file('a', 'now a file'), dir('b'), file('b/y', 'y'), { name: 'c', type: 'symlink', linkname: '/tmp' }],
    ]);
    expect(tree.get('a')).toMatchObject({ kind: 'file', data: 'now a file' });
    expect(tree.has('a/inside')).toBe(false);
    expect(tree.get('b')?.kind).toBe('dir');
    expect(tree.get('b/y')?.data).toBe('y');
    expect(tree.get('c')).toMatchObject({ kind: 'symlink', link: '/tmp' });
    expect(tree.has('c/x')).toBe(false);
  });

  it('a directory over a directory changes only its attributes, and it is written where it first appears', async () => {
    const { tree, order } = await flatten([
      [dir('srv', 0o755), file('srv/one', '1')],
      [dir('srv', 0o750), file('srv/two', '2')],
    ]);
    expect(tree.get('srv')?.mode).toBe(0o750);
    expect(order).toEqual(['srv', 'srv/one', 'srv/two']);
  });

  it('hard links keep their inode when the original path is deleted or replaced above', async () => {
    const { tree, index } = await flatten([
      [dir('bin'), file('bin/a', 'inode-a'), { name: 'bin/b', type: 'hardlink', linkname: 'bin/a' }, { name: 'bin/c', type: 'hardlink', linkname: 'bin/a' }, file('bin/p', 'inode-p'), { name: 'bin/q', type: 'hardlink', linkname: 'bin/p' }, file('bin/s', 'inode-s'), { name: 'bin/t', type: 'hardlink', linkname: 'bin/s' }],
      [file('bin/.wh.a', ''), file('bin/p', 'new p')],
    ]);
    // a is gone: b carries the data, c links to b
    expect(tree.has('bin/a')).toBe(false);
    expect(tree.get('bin/b')).toMatchObject({ kind: 'file', data: 'inode-a' });
    expect(tree.get('bin/c')).toMatchObject({ kind: 'hardlink', link: 'bin/b' });
    // p was replaced: q keeps the old content
    expect(tree.get('bin/p')?.data).toBe('new p');
    expect(tree.get('bin/q')).toMatchObject({ kind: 'file', data: 'inode-p' });
    // untouched groups stay links
    expect(tree.get('bin/t')).toMatchObject({ kind: 'hardlink', link: 'bin/s' });
    expect(index.sizeBytes).toBe('inode-a'.length + 'new p'.length + 'inode-p'.length + 'inode-s'.length);
  });

  it("takes the root's own entry however it is spelled ('/' from kaniko, './' from docker save), and writes none", async () => {
    const { order } = await flatten([[dir('.'), file('a', 'a')], [{ name: '/', type: 'dir' }, file('b', 'b')]]);
    expect(order).toEqual(['a', 'b']);
  });

  it('gives missing parent directories 0755 root, before their content', async () => {
    const { tree, order } = await flatten([[file('opt/app/bin/run', '#!/bin/sh\n')]]);
    expect(order).toEqual(['opt', 'opt/app', 'opt/app/bin', 'opt/app/bin/run']);
    expect(tree.get('opt/app')).toMatchObject({ kind: 'dir', mode: 0o755 });
  });

  it('keeps a parent written early with the newest layer header when a lower file needs it first', async () => {
    const { tree, order } = await flatten([[file('x/f', 'f')], [dir('x', 0o711), file('x/g', 'g')]]);
    expect(order).toEqual(['x', 'x/f', 'x/g']);
    expect(tree.get('x')?.mode).toBe(0o711);
  });

  it('refuses names that leave the root, and whiteouts of ..', async () => {
    const refused = async (entries: TarEntry[]): Promise<string> => {
      const e = await flatten([entries]).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(C2vError);
      return (e as C2vError).message;
    };
    expect(await refused([file('../etc/passwd', 'x')])).toMatch(/^layer 0 holds an entry named "\.\.\/etc\/passwd", with a '\.\.' component/);
    expect(await refused([file('/etc/passwd', 'x')])).toMatch(/an absolute path/);
    expect(await refused([file('etc/.wh...', '')])).toMatch(/a whiteout of "\.\."/);
    expect(await refused([dir('a'), { name: 'a/l', type: 'hardlink', linkname: 'a/missing' }])).toMatch(/hard link "a\/l" points to "a\/missing", which the layer does not hold/);
  });

  it('resolves paths through symlinks in the middle, as the guest would', async () => {
    const { index } = await flatten([
      [dir('usr'), dir('usr/lib'), dir('usr/lib/systemd'), file('usr/lib/systemd/systemd', 'elf'), { name: 'lib', type: 'symlink', linkname: 'usr/lib' }, dir('etc'), { name: 'etc/os-release', type: 'symlink', linkname: '../usr/lib/os-release' }, file('usr/lib/os-release', 'ID=debian'), { name: 'loop', type: 'symlink', linkname: 'loop' }],
    ]);
    expect(resolveKey(index.final, '/lib/systemd/systemd', false)).toBe('usr/lib/systemd/systemd');
    expect(resolveKey(index.final, '/etc/os-release', true)).toBe('usr/lib/os-release');
    expect(resolveKey(index.final, '/etc/os-release', false)).toBe('etc/os-release');
    expect(resolveKey(index.final, '/loop', true)).toBeUndefined();
    expect(childrenOf(index.final, 'usr/lib').sort()).toEqual(['os-release', 'systemd']);
  });
});
