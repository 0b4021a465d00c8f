import { describe, expect, it } from 'vitest';
import { decodeAuthEntry, findAuthEntry } from '../../src/adapters/registry/credentials.js';
import { registryOrigin } from '../../src/adapters/registry/client.js';
import { parseWwwAuthenticate } from '../../src/formats/oci/www-authenticate.js';

describe('parseWwwAuthenticate', () => {
  it("reads Docker Hub's bearer challenge, with a scope that holds a comma", () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/debian:pull,push' } },
    ]);
  });

  it('reads a Basic challenge and lower-cases scheme and parameter names', () => {
    expect(parseWwwAuthenticate('BASIC Realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  });

  it('reads several challenges in one header, as fetch joins repeated headers', () => {
    const got = parseWwwAuthenticate('Basic realm="basic, realm", charset="UTF-8", Bearer realm="https://t.example/token",service=reg , error="insufficient_scope"');
    expect(got).toEqual([
      { scheme: 'basic', params: { realm: 'basic, realm', charset: 'UTF-8' } },
      { scheme: 'bearer', params: { realm: 'https://t.example/token', service: 'reg', error: 'insufficient_scope' } },
    ]);
  });

  it('unescapes quoted values and allows space around "="', () => {
    expect(parseWwwAuthenticate('Bearer realm = "a \\"quoted\\" \\\\ realm", service= svc')).toEqual([{ scheme: 'bearer', params: { realm: 'a "quoted" \\ realm', service: 'svc' } }]);
  });

  it('tells token68 apart from parameters, and a bare scheme from both', () => {
    expect(parseWwwAuthenticate('Negotiate abc+/def==, Basic realm="r"')).toEqual([
      { scheme: 'negotiate', params: {}, token68: 'abc+/def==' },
      { scheme: 'basic', params: { realm: 'r' } },
    ]);
    expect(parseWwwAuthenticate('Negotiate, NTLM')).toEqual([
      { scheme: 'negotiate', params: {} },
      { scheme: 'ntlm', params: {} },
    ]);
  });

  it('keeps the first of a repeated parameter and survives damage (unclosed quote, stray characters, empty header)', () => {
    expect(parseWwwAuthenticate('Bearer realm="one", realm="two"')).toEqual([{ scheme: 'bearer', params: { realm: 'one' } }]);
    expect(parseWwwAuthenticate('Bearer realm="https://t/token')).toEqual([{ scheme: 'bearer', params: { realm: 'https://t/token' } }]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('  ,, ')).toEqual([]);
    expect(parseWwwAuthenticate('"junk" Bearer realm=x')).toEqual([
      { scheme: 'junk', params: {} },
      { scheme: 'bearer', params: { realm: 'x' } },
    ]);
  });
});

describe('credential entries', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('decodes auth as base64 of user:password, splitting at the first colon only', () => {
    expect(decodeAuthEntry({ auth: b64('alice:pa:ss') }, 'f')).toEqual({ username: 'alice', password: 'pa:ss', identityToken: undefined });
    expect(decodeAuthEntry({ username: 'bob', password: 'x' }, 'f')).toEqual({ username: 'bob', password: 'x', identityToken: undefined });
    expect(decodeAuthEntry({ identitytoken: 'refresh' }, 'f')).toEqual({ username: '', password: '', identityToken: 'refresh' });
    expect(decodeAuthEntry({}, 'f')).toBeUndefined();
    expect(() => decodeAuthEntry({ auth: b64('no-colon') }, '/x/config.json')).toThrow(/credentials in \/x\/config\.json are damaged/);
  });

  it("finds Docker Hub's entry under any of its names, the URL form first", () => {
    const url = { auth: b64('url:1') };
    const bare = { auth: b64('bare:1') };
    expect(findAuthEntry({ 'docker.io': bare, 'https://index.docker.io/v1/': url }, 'docker.io', 'library/debian')).toBe(url);
    expect(findAuthEntry({ 'docker.io': bare }, 'docker.io', 'library/debian')).toBe(bare);
    expect(findAuthEntry({ 'registry-1.docker.io': bare }, 'docker.io', 'library/debian')).toBe(bare);
    expect(findAuthEntry({ 'quay.io': bare }, 'docker.io', 'library/debian')).toBeUndefined();
  });

  it('matches a registry by host:port in old URL keys and new host keys, and prefers a repository-scoped key', () => {
    const host = { auth: b64('h:1') };
    const ns = { auth: b64('ns:1') };
    const repo = { auth: b64('repo:1') };
    expect(findAuthEntry({ 'https://reg.example:5000/v2/': host }, 'reg.example:5000', 'team/app')).toBe(host);
    expect(findAuthEntry({ 'reg.example:5000': host }, 'reg.example:5000', 'team/app')).toBe(host);
    expect(findAuthEntry({ 'reg.example': host }, 'reg.example:5000', 'team/app')).toBeUndefined();
    expect(findAuthEntry({ 'reg.example:5000': host, 'reg.example:5000/team': ns, 'reg.example:5000/team/app': repo }, 'reg.example:5000', 'team/app')).toBe(repo);
    expect(findAuthEntry({ 'reg.example:5000': host, 'reg.example:5000/team': ns }, 'reg.example:5000', 'team/app')).toBe(ns);
    // A key scoped to another repository is not the host's.
    expect(findAuthEntry({ 'reg.example:5000/other': ns }, 'reg.example:5000', 'team/app')).toBeUndefined();
  });
});

describe('registryOrigin', () => {
  it('speaks plain HTTP to loopback registries and to the ones named insecure, HTTPS to the rest', () => {
    expect(registryOrigin('127.0.0.1:5000', [])).toBe('http://127.0.0.1:5000');
    expect(registryOrigin('localhost:5000', [])).toBe('http://localhost:5000');
    expect(registryOrigin('[::1]:5000', [])).toBe('http://[::1]:5000');
    expect(registryOrigin('reg.example:5000', [])).toBe('https://reg.example:5000');
    expect(registryOrigin('reg.example:5000', ['reg.example:5000'])).toBe('http://reg.example:5000');
    expect(registryOrigin('reg.example:5000', ['reg.example'])).toBe('http://reg.example:5000');
    expect(registryOrigin('reg.example:5000', ['http://reg.example:5000/'])).toBe('http://reg.example:5000');
    expect(registryOrigin('reg.example:5000', ['reg.example:5001'])).toBe('https://reg.example:5000');
    expect(registryOrigin('docker.io', [])).toBe('https://registry-1.docker.io');
  });
});
