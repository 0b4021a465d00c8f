import { describe, expect, it } from 'vitest';
import { convertSchema, formatIssues } from '../../src/config/schema.js';
import { appOvfProperties, appProperties, parsePropertyHelp, parsePropertySpec, PropertyError, standardProperties } from '../../src/plan/properties.js';
import type { ImageCommand } from '../../src/plan/app-service.js';

const command: ImageCommand = { entrypoint: [], cmd: ['app'], env: ['PATH=/usr/bin', 'GREETING=hi there', 'SECRET=from-image'], workingDir: '/', user: '', exposedPorts: [] };

describe('--property NAME[:TYPE][=DEFAULT]', () => {
  it('reads the name, type and default', () => {
    expect(parsePropertySpec('GREETING')).toEqual({ name: 'GREETING', type: 'string', default: undefined });
    expect(parsePropertySpec('GREETING=hello=world')).toEqual({ name: 'GREETING', type: 'string', default: 'hello=world' });
    expect(parsePropertySpec('API_TOKEN:password')).toEqual({ name: 'API_TOKEN', type: 'password', default: undefined });
    expect(parsePropertySpec('PORT:int=8080')).toEqual({ name: 'PORT', type: 'int', default: '8080' });
    expect(parsePropertySpec('DEBUG:bool=false')).toEqual({ name: 'DEBUG', type: 'bool', default: 'false' });
    expect(parsePropertySpec('EMPTY=')).toEqual({ name: 'EMPTY', type: 'string', default: '' });
  });

  it('refuses what cannot be an environment variable or a typed value, in one line naming the flag', () => {
    for (const bad of ['1ABC', 'A-B', '', 'A:float', 'PORT:int=80x', 'ON:bool=yes', 'A:string:x', '../x']) {
      expect(() => parsePropertySpec(bad), bad).toThrow(PropertyError);
    }
    const r = convertSchema.safeParse({ input: 'x', property: ['OK', 'PORT:int=eighty'] });
    expect(r.success).toBe(false);
    if (!r.success) expect(formatIssues(r.error)).toBe('--property PORT: the default of an int property must be a whole number, not "eighty"');
  });

  it('takes one flag or several through the schema', () => {
    const one = convertSchema.parse({ input: 'x', property: 'A=1' });
    expect(one.property).toEqual([{ name: 'A', type: 'string', default: '1' }]);
    const help = convertSchema.parse({ input: 'x', property: ['A'], propertyHelp: ['A=Says hello'] });
    expect(help.propertyHelp).toEqual([{ name: 'A', description: 'Says hello' }]);
    expect(() => parsePropertyHelp('no equals')).toThrow(/NAME=TEXT/);
  });
});

describe('the app properties of an image', () => {
  it('come from labels and flags, a flag replacing a label, the image ENV giving defaults except to passwords', () => {
    const labels = {
      'c2v.property.PORT': 'int=8080',
      'c2v.property.PORT.label': 'Port',
      'c2v.property.GREETING': '=from-label',
      'c2v.property.SECRET': 'password',
      'org.opencontainers.image.title': 'app',
    };
    const props = appProperties({ flags: [parsePropertySpec('GREETING')], help: [{ name: 'PORT', description: 'Where it listens' }], labels, command });
    expect(props).toEqual([
      { name: 'GREETING', type: 'string', default: 'hi there', label: 'GREETING' },
      { name: 'PORT', type: 'int', default: '8080', label: 'Port', description: 'Where it listens' },
      { name: 'SECRET', type: 'password', default: undefined, label: 'SECRET' },
    ]);
    const ovf = appOvfProperties(props);
    expect(ovf.map((p) => [p.key, p.type, p.password, p.value])).toEqual([
      ['app.GREETING', 'string', false, 'hi there'],
      ['app.PORT', 'int', false, '8080'],
      ['app.SECRET', 'string', true, ''],
    ]);
  });

  it('refuses help for a property nobody declared, and a bad label', () => {
    expect(() => appProperties({ flags: [], help: [{ name: 'NOPE', description: 'x' }], labels: {}, command })).toThrow(/no property NOPE/);
    expect(() => appProperties({ flags: [], help: [], labels: { 'c2v.property.PORT': 'int=x' }, command })).toThrow(/the image label c2v.property.PORT/);
  });
});

describe('the standard properties', () => {
  it('offer the network only where c2v manages it, and keys only where sshd runs', () => {
    const keys = (g: { network: boolean; sshd: boolean }) => standardProperties(g).map((p) => p.key);
    expect(keys({ network: true, sshd: true })).toEqual(['c2v.hostname', 'c2v.ipv4', 'c2v.gateway', 'c2v.dns', 'c2v.search', 'c2v.ntp', 'c2v.ssh_keys', 'c2v.root_password']);
    expect(keys({ network: false, sshd: false })).toEqual(['c2v.hostname', 'c2v.ntp', 'c2v.root_password']);
    expect(standardProperties({ network: false, sshd: false }).every((p) => p.value === '')).toBe(true);
  });
});
