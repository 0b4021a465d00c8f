import { describe, expect, it } from 'vitest';
import { C2vError } from '../../src/errors.js';
import { GuestEdits, applyGuestEdit, checkGuestEdit, type GuestEdit } from '../../src/formats/guest-edits.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const text = (buf: Buffer | undefined): string | undefined => buf?.toString('latin1');

/** A user-facing failure: a C2vError('input') whose message is one line matching `pattern`. */
function failure(fn: () => unknown, pattern: RegExp): C2vError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(C2vError);
  const e = caught as C2vError;
  expect(e.code).toBe('input');
  expect(e.message).not.toMatch(/[\r\n]/);
  expect(e.message).toMatch(pattern);
  return e;
}

const append = (line: string, unlessMatching?: string): GuestEdit => ({ path: '/etc/inittab', op: 'append-line', line, unlessMatching });
const shadow = (user: string, hash: string | null): GuestEdit => ({ path: '/etc/shadow', op: 'shadow-password', user, hash });

const HASH = '$6$salt$0123456789abcdefABCDEF./';
const SHADOW = 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nalice:$6$old$xyz:19000:0:99999:7:::\n';

describe('applyGuestEdit append-line', () => {
  it('appends the line and a newline', () => {
    expect(text(applyGuestEdit(append('ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100'), b('::sysinit:/sbin/openrc sysinit\n')))).toBe(
      '::sysinit:/sbin/openrc sysinit\nttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100\n',
    );
  });

  it('adds the missing newline at the end of the file first', () => {
    expect(text(applyGuestEdit(append('b'), b('a')))).toBe('a\nb\n');
  });

  it('writes just the line into an empty file, and makes a missing file with just the line', () => {
    expect(text(applyGuestEdit(append('x=1'), b('')))).toBe('x=1\n');
    expect(text(applyGuestEdit(append('x=1'), undefined))).toBe('x=1\n');
  });

  it('leaves the file alone (the same buffer) when an identical line is there', () => {
    const before = b('a\nx=1\nb');
    expect(applyGuestEdit(append('x=1'), before)).toBe(before);
    // the last line without its newline counts too, a longer line does not
    expect(applyGuestEdit(append('b'), before)).toBe(before);
    expect(text(applyGuestEdit(append('x='), before))).toBe('a\nx=1\nb\nx=\n');
  });

  it('compares the line literally, regex characters and all', () => {
    expect(text(applyGuestEdit(append('a.b'), b('axb\n')))).toBe('axb\na.b\n');
    expect(text(applyGuestEdit(append('^x$'), b('x\n')))).toBe('x\n^x$\n');
  });

  it('leaves the file alone when a line matches unlessMatching, searched anywhere in the line', () => {
    const before = b('# comment\nttyS0::respawn:/sbin/agetty ttyS0\n');
    expect(applyGuestEdit(append('ttyS0::respawn:/sbin/getty -L ttyS0', '^ttyS0:'), before)).toBe(before);
    expect(applyGuestEdit(append('anything', 'agetty'), before)).toBe(before);
    expect(text(applyGuestEdit(append('ttyS1::respawn:x', '^ttyS1:'), before))).toBe(`${text(before)}ttyS1::respawn:x\n`);
    // with a pattern, the line itself being there does not count
    expect(text(applyGuestEdit(append('# comment', '^never$'), b('# comment\n')))).toBe('# comment\n# comment\n');
  });

  it('matches unlessMatching against the text of UTF-8 lines, and keeps bytes that are not UTF-8', () => {
    const before = Buffer.concat([Buffer.from('café=1\n', 'utf8'), Buffer.from([0xff, 0xfe, 0x0a])]);
    expect(applyGuestEdit(append('x', '^café='), before)).toBe(before);
    const after = applyGuestEdit(append('é'), before)!;
    expect(after.equals(Buffer.concat([before, Buffer.from('é\n', 'utf8')]))).toBe(true);
  });

  it('keeps CR line endings as they are', () => {
    expect(text(applyGuestEdit(append('c'), b('a\r\nb\r\n')))).toBe('a\r\nb\r\nc\n');
  });

  it('refuses a line with a line break, and a pattern that is not a regular expression', () => {
    failure(() => applyGuestEdit(append('a\nroot::0:0::/:/bin/sh'), b('')), /cannot append "a\\nroot.*to \/etc\/inittab: it contains a line break/);
    failure(() => applyGuestEdit(append('a\rb'), b('')), /line break/);
    failure(() => applyGuestEdit(append('a', '(unclosed'), b('')), /"\(unclosed" is not a valid regular expression \(.*\); fix the pattern$/);
  });
});

describe('applyGuestEdit shadow-password', () => {
  it("sets the user's hash and keeps every other byte", () => {
    expect(text(applyGuestEdit(shadow('root', HASH), b(SHADOW)))).toBe(SHADOW.replace('root:*:', `root:${HASH}:`));
    expect(text(applyGuestEdit(shadow('alice', HASH), b(SHADOW)))).toBe(SHADOW.replace('$6$old$xyz', HASH));
  });

  it('keeps a missing final newline, CRLF endings and a line with only two fields', () => {
    expect(text(applyGuestEdit(shadow('root', HASH), b('root:*:1::::::')))).toBe(`root:${HASH}:1::::::`);
    expect(text(applyGuestEdit(shadow('root', HASH), b('x:!:1::::::\r\nroot:*:1::::::\r\n')))).toBe(`x:!:1::::::\r\nroot:${HASH}:1::::::\r\n`);
    expect(text(applyGuestEdit(shadow('root', HASH), b('root:old\r\n')))).toBe(`root:${HASH}\r\n`);
    expect(text(applyGuestEdit(shadow('root', HASH), b('root:\n')))).toBe(`root:${HASH}\n`);
  });

  it('locks an account with a hash or an empty one, and leaves a locked one alone', () => {
    expect(text(applyGuestEdit(shadow('alice', null), b(SHADOW)))).toBe(SHADOW.replace('$6$old$xyz', '!$6$old$xyz'));
    expect(text(applyGuestEdit(shadow('root', null), b('root::19000:0:99999:7:::\n')))).toBe('root:!:19000:0:99999:7:::\n');
    for (const locked of ['root:*:1::::::\n', 'root:!:1::::::\n', 'root:!$6$a$b:1::::::\n', 'root:!!:1::::::\n', 'root:*LK*:1::::::\n']) {
      expect(text(applyGuestEdit(shadow('root', null), b(locked)))).toBe(locked);
    }
  });

  it('matches the user name literally and whole', () => {
    const file = 'axb:old:1::::::\na.b:old:1::::::\na.bc:old:1::::::\n';
    expect(text(applyGuestEdit(shadow('a.b', HASH), b(file)))).toBe(`axb:old:1::::::\na.b:${HASH}:1::::::\na.bc:old:1::::::\n`);
    failure(() => applyGuestEdit(shadow('.*', HASH), b(file)), /cannot set the password of "\.\*": \/etc\/shadow in the image has no line for that user/);
    failure(() => applyGuestEdit(shadow('a', HASH), b(file)), /no line for that user/);
  });

  it('edits every line of the user, so no stale hash is left behind', () => {
    expect(text(applyGuestEdit(shadow('root', HASH), b('root:a:1\nroot:b:2\n')))).toBe(`root:${HASH}:1\nroot:${HASH}:2\n`);
  });

  it('keeps bytes that are not UTF-8 in other lines', () => {
    const before = Buffer.concat([b('root:*:1::::::\n'), Buffer.from([0x75, 0xe9, 0x3a, 0x2a, 0x0a])]);
    const after = applyGuestEdit(shadow('root', HASH), before)!;
    expect(after.equals(Buffer.concat([b(`root:${HASH}:1::::::\n`), Buffer.from([0x75, 0xe9, 0x3a, 0x2a, 0x0a])]))).toBe(true);
  });

  it('refuses to set the hash of a user the file lacks, and locking one is a no-op', () => {
    failure(() => applyGuestEdit(shadow('bob', HASH), b(SHADOW)), /^cannot set the password of "bob": \/etc\/shadow in the image has no line for that user; create the user/);
    const before = b(SHADOW);
    expect(applyGuestEdit(shadow('bob', null), before)).toBe(before);
  });

  it('on an empty file: locking changes nothing, setting a hash is refused', () => {
    expect(text(applyGuestEdit(shadow('root', null), b('')))).toBe('');
    failure(() => applyGuestEdit(shadow('root', HASH), b('')), /no line for that user/);
  });

  it('without a shadow file: locking has nothing to do, setting a hash is refused', () => {
    expect(applyGuestEdit(shadow('root', null), undefined)).toBeUndefined();
    failure(() => applyGuestEdit(shadow('root', HASH), undefined), /^the image has no \/etc\/shadow: c2v cannot set the password of "root"/);
  });

  it('refuses a hash or user that would add a field or a line, and an empty hash', () => {
    for (const hash of [`${HASH}:0:0`, `${HASH}\nevil::0:0:::::`, `${HASH}\r`, `${HASH}\0`]) {
      const e = failure(() => applyGuestEdit(shadow('root', hash), b(SHADOW)), /the password hash for "root" contains ':', a line break or a NUL byte, which would corrupt \/etc\/shadow/);
      expect(e.message).not.toContain('evil'); // the hash is not echoed
    }
    // before looking at the file: a hostile hash is refused even where the file is missing
    failure(() => applyGuestEdit(shadow('root', 'a:b'), undefined), /contains ':'/);
    failure(() => applyGuestEdit(shadow('root', ''), b(SHADOW)), /empty password hash.*without a password/);
    for (const user of ['', 'ro:ot', 'root\nx', 'root\0']) failure(() => applyGuestEdit(shadow(user, HASH), b(SHADOW)), /give a non-empty user name without ':', line breaks or NUL bytes/);
  });

  it('reads relative paths as guest paths in its messages', () => {
    failure(() => applyGuestEdit({ path: 'etc//shadow', op: 'shadow-password', user: 'root', hash: HASH }, undefined), /the image has no \/etc\/shadow:/);
    failure(() => checkGuestEdit({ path: '/', op: 'append-line', line: 'x' }), /names the root directory/);
  });
});

describe('GuestEdits', () => {
  it('applies the edits of a path in order, and makes the files the image lacks at the end', () => {
    const edits = new GuestEdits(
      [append('one'), shadow('root', null), { path: 'etc/inittab', op: 'append-line', line: 'two' }, { path: 'etc/securetty', op: 'append-line', line: 'ttyS0' }],
      () => undefined,
    );
    expect(edits.has('etc/inittab')).toBe(true);
    expect(text(edits.apply('etc/inittab', b('zero')))).toBe('zero\none\ntwo\n');
    // inittab was edited in the stream; shadow locks nothing when missing; securetty is made
    expect(edits.leftovers().map(([k, c]) => [k, text(c)])).toEqual([['etc/securetty', 'ttyS0\n']]);
  });

  it('refuses paths the caller says it owns, and entries it cannot edit', () => {
    failure(() => new GuestEdits([{ path: '/etc/hosts', op: 'append-line', line: 'x' }], (k) => (k === 'etc/hosts' ? 'c2v writes it itself' : undefined)), /^c2v cannot edit \/etc\/hosts: c2v writes it itself$/);
    const edits = new GuestEdits([shadow('root', HASH)], () => undefined);
    failure(() => edits.checkEntry('etc/shadow', 'symlink', [], 0), /c2v cannot edit \/etc\/shadow: it is a symlink in the image, and c2v edits regular files only/);
    failure(() => edits.checkEntry('etc/shadow', 'hardlink', [], 0), /it is a hard link in the image/);
    failure(() => edits.checkEntry('etc/shadow', 'file', [], 1024 * 1024 + 1), /it is 1048577 bytes, over the 1 MiB c2v edits/);
    expect(() => edits.checkEntry('etc/shadow', 'file', [], 1024 * 1024)).not.toThrow();
    failure(() => edits.checkEntry('etc/shadow', 'file', [{ key: 'GNU.sparse.major', value: '1', raw: Buffer.alloc(0) }], 10), /sparse/);
    failure(() => edits.checkHardLink('etc/shadow-', 'etc/shadow'), /c2v cannot edit \/etc\/shadow: \/etc\/shadow- is a hard link to it in the image/);
    expect(() => edits.checkHardLink('usr/bin/x', 'usr/bin/y')).not.toThrow();
  });
});
