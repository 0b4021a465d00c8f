import { describe, expect, it } from 'vitest';
import { distroFamily, distroOf, parseOsRelease } from '../../src/plan/os-release.js';

describe('parseOsRelease', () => {
  it('reads double-quoted values with the shell escapes allowed inside them', () => {
    const os = parseOsRelease(['NAME="Debian GNU/Linux"', 'Q="say \\"hi\\""', 'D="\\$HOME \\`x\\` \\\\ \\n"'].join('\n'));
    expect(os).toEqual({ NAME: 'Debian GNU/Linux', Q: 'say "hi"', D: '$HOME `x` \\ \\n' });
  });

  it('reads single-quoted values literally, and an unclosed quote to the end of the line', () => {
    expect(parseOsRelease("A='no \\\"escapes\\\" $here'\nB='open")).toEqual({ A: 'no \\"escapes\\" $here', B: 'open' });
  });

  it('ends an unquoted value at whitespace and honours backslash-escaped spaces', () => {
    expect(parseOsRelease('ID=alpine # comment\nX=a\\ b\nY=one"two"three')).toEqual({ ID: 'alpine', X: 'a b', Y: 'onetwothree' });
  });

  it('skips comments, blank and malformed lines, and tolerates CRLF and indentation', () => {
    const os = parseOsRelease(['# ID=commented', '', 'not a pair', '1BAD=x', '  VERSION_ID="12"  \r', 'EMPTY=', 'ID=debian\r'].join('\n'));
    expect(os).toEqual({ VERSION_ID: '12', EMPTY: '', ID: 'debian' });
  });

  it('keeps the last of repeated keys', () => {
    expect(parseOsRelease('ID=one\nID=two').ID).toBe('two');
  });
});

describe('distroOf', () => {
  it('knows Debian and Ubuntu', () => {
    expect(distroOf({ ID: 'debian', VERSION_ID: '12', PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)' })).toEqual({
      id: 'debian',
      like: [],
      major: 12,
      family: 'debian',
    });
    expect(distroOf({ ID: 'ubuntu', ID_LIKE: 'debian', VERSION_ID: '24.04' })).toEqual({ id: 'ubuntu', like: ['debian'], major: 24, family: 'ubuntu' });
  });

  it('serves Ubuntu derivatives from the Ubuntu template, though they name debian as well', () => {
    expect(distroOf({ ID: 'linuxmint', ID_LIKE: 'ubuntu debian', VERSION_ID: '21.3' })).toEqual({
      id: 'linuxmint',
      like: ['ubuntu', 'debian'],
      major: 21,
      family: 'ubuntu',
    });
    expect(distroFamily({ ID: 'kali', ID_LIKE: 'debian', VERSION_ID: '2024.1' })).toBe('debian');
  });

  it('knows Alpine', () => {
    expect(distroOf({ ID: 'alpine', VERSION_ID: '3.20.3' })).toEqual({ id: 'alpine', like: [], major: 3, family: 'alpine' });
  });

  it('puts RHEL, its rebuilds, CentOS and Fedora under the rhel template', () => {
    expect(distroOf({ ID: 'rhel', ID_LIKE: 'fedora', VERSION_ID: '9.4' })).toEqual({ id: 'rhel', like: ['fedora'], major: 9, family: 'rhel' });
    expect(distroOf({ ID: 'rocky', ID_LIKE: 'rhel centos fedora', VERSION_ID: '9.4' })).toMatchObject({ id: 'rocky', major: 9, family: 'rhel' });
    expect(distroOf({ ID: 'fedora', VERSION_ID: '40' })).toEqual({ id: 'fedora', like: [], major: 40, family: 'rhel' });
    expect(distroOf({ ID: 'centos', ID_LIKE: 'rhel fedora', VERSION_ID: '7' })).toEqual({ id: 'centos', like: ['rhel', 'fedora'], major: 7, family: 'rhel' });
    expect(distroFamily({ ID: 'ol', ID_LIKE: 'fedora', VERSION_ID: '8.9' })).toBe('rhel');
    expect(distroFamily({ ID: 'amzn', ID_LIKE: 'centos rhel fedora', VERSION_ID: '2' })).toBe('rhel');
  });

  it('has no family for a distribution c2v has no template for, or for an empty os-release', () => {
    expect(distroOf({ ID: 'arch', BUILD_ID: 'rolling' })).toEqual({ id: 'arch', like: [], major: undefined, family: undefined });
    expect(distroFamily({ ID: 'opensuse-leap', ID_LIKE: 'suse opensuse', VERSION_ID: '15.6' })).toBeUndefined();
    expect(distroOf({})).toEqual({ id: '', like: [], major: undefined, family: undefined });
  });

  it('takes the family from ID_LIKE when ID is missing', () => {
    expect(distroFamily({ ID_LIKE: 'ubuntu debian' })).toBe('ubuntu');
    expect(distroFamily({ ID_LIKE: 'debian' })).toBe('debian');
  });

  it('normalises case and whitespace, and reads only a leading whole number as the major version', () => {
    expect(distroOf({ ID: ' Ubuntu ', ID_LIKE: '  Debian  ', VERSION_ID: ' 22.04 ' })).toEqual({ id: 'ubuntu', like: ['debian'], major: 22, family: 'ubuntu' });
    expect(distroOf({ ID: 'debian', VERSION_ID: 'trixie' }).major).toBeUndefined();
    expect(distroOf({ ID: 'amzn', VERSION_ID: '2023' }).major).toBe(2023);
  });

  it('reads what parseOsRelease reads', () => {
    const os = parseOsRelease('NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n');
    expect(distroOf(os)).toEqual({ id: 'rocky', like: ['rhel', 'centos', 'fedora'], major: 9, family: 'rhel' });
  });
});
