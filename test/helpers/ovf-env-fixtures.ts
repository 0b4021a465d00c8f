/**
 * The OVF environments in test/fixtures/ovf-env and what they hold, unescaped: what the guest agent's parser must
 * give back byte for byte.
 */
import path from 'node:path';
import { PROJECT_ROOT } from './env.js';

export const OVF_ENV_FIXTURES = path.join(PROJECT_ROOT, 'test', 'fixtures', 'ovf-env');

export const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOdVnZmgKJyC7nV4zO3yJ4yqF7m0lq1h7bq4mJ5rT8cX admin@example.com';
export const KEY_B = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB6eYwV8m0nQ3sXy3tqQk2Gq0yq9x1bYwq8mZ7cJpR2d oncall@example.com';
export const BUILD_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuild0nly0ne0fThem0000000000000000000000 built-in@c2v';
export const PASSWORD = 's3cr&t <pw> $HOME';

/** What vsphere.xml holds, unescaped. */
export const VSPHERE: Record<string, string> = {
  'app.API_TOKEN': 'tokén☃😀',
  'app.EMPTY': '',
  'app.GREETING': `hello "world" & 'friends' <3>`,
  'app.PORT': '8080',
  'c2v.dns': '10.0.2.3, 2001:db8::53',
  'c2v.gateway': '10.0.2.2',
  'c2v.hostname': 'web-01.example.com',
  'c2v.ipv4': '10.0.2.15/24',
  'c2v.ntp': '0.pool.ntp.org,10.0.2.4',
  'c2v.root_password': PASSWORD,
  'c2v.search': 'example.com corp.example.com',
  'c2v.ssh_keys': `${KEY_A}\n# the on-call key\n${KEY_B}`,
};
/** quirks.xml: another prefix, single quotes, CR LF, raw whitespace in an attribute, a sibling's Entity. */
export const QUIRKS: Record<string, string> = {
  'app.BAD-NAME': 'dash',
  'app.MULTI': 'line one\nline two\r\ntab\tend',
  'app.NOT_ENTITY': 'AT&T &bogus; &#0; &#xD800; &amp',
  'app.QUOTED': `say "hi" & it's <ok>`,
  'app.RAW_WS': 'a b c',
  'app.UNDECLARED': 'nobody asked',
  'c2v.hostname': 'quirks',
};
export const VSPHERE_MACS = '00:50:56:a1:00:01\n00:50:56:a1:00:02\n';
