/**
 * Inputs for every text file c2v writes into a guest, chosen to reach each branch of each file: the golden test
 * compares the renderings with recorded bytes, the shellcheck test lints the shell ones.
 */
import type { ImageCommand } from '../../src/plan/app-service.js';
import type { ApplianceRequest, ImageProbe, InitChoice } from '../../src/plan/appliance.js';
import type { FstabInput, GrubConfigInput } from '../../src/plan/boot-config.js';

export interface Case<T> {
  name: string;
  input: T;
}

const TRICKY_ENV = [
  'PATH=/usr/local/bin:/usr/bin:/bin',
  'GREETING=hello world',
  `QUOTE=a'b"c$d\`e\\f`,
  'SUBST=$(touch /tmp/pwned) `id` ${HOME}',
  'MULTI=line one\nline two',
  'EMPTY=',
  'EQUALS=a=b=c',
  'bad key=x',
  '=novalue',
  'NOEQUALS',
  '1DIGIT=x',
  '_under_score=ok',
];

export const COMMANDS: Case<ImageCommand>[] = [
  {
    name: 'tricky',
    input: { entrypoint: ['/usr/bin/tini', '--'], cmd: ['python3', 'app.py', "it's $HOME"], env: TRICKY_ENV, workingDir: '/srv/my app', user: 'app:staff', exposedPorts: ['8080/tcp'] },
  },
  { name: 'bare', input: { entrypoint: [], cmd: ['nginx'], env: [], workingDir: '', user: '', exposedPorts: [] } },
  { name: 'quoted-dir', input: { entrypoint: [], cmd: ['run'], env: ['A=1'], workingDir: "/o'dir", user: '1000', exposedPorts: [] } },
];

export const ARGVS: Case<string[]>[] = [
  { name: 'entrypoint-cmd', input: ['/usr/bin/tini', '--', 'python3', 'app.py', "it's $HOME"] },
  { name: 'shell-c', input: ['/bin/sh', '-c', 'echo "$(date)" && exec app --flag=\'x y\'', 'arg0'] },
  { name: 'odd-words', input: ['', ' ', '\n', '*', '~', '#not-a-comment', '\\'] },
];

export const SOURCES: Case<string>[] = [
  { name: 'plain', input: 'myapp:1.4' },
  { name: 'quote', input: "registry.example.com/o'brien/app:1.0" },
  { name: 'newlines', input: 'multi\nline\nsource $(x)' },
];

export const USERS: Case<string>[] = ['', 'app', 'app:staff', '1000', '1000:1000', ':staff', 'app:', 'a:b:c', "o'b:g r"].map((u, i) => ({ name: `user${i}`, input: u }));

const BOOLS = [false, true];

export const UUIDS: Case<string>[] = [
  { name: 'uuid-a', input: '0b6c1f55-3c39-4a8e-9d8c-2f0e1c7a9b11' },
  { name: 'uuid-b', input: 'ffffffff-0000-4000-8000-123456789abc' },
];

const KERNELS: Case<GrubConfigInput['kernel']>[] = [
  { name: 'initrd', input: { kernel: 'boot/vmlinuz-6.1.0-18-amd64', initrd: 'boot/initrd.img-6.1.0-18-amd64', version: '6.1.0-18-amd64' } },
  { name: 'no-initrd', input: { kernel: 'boot/vmlinuz-virt' } },
];

export const GRUBS: Case<GrubConfigInput>[] = KERNELS.flatMap((k) =>
  [undefined, '', 'net.ifnames=0', 'quiet splash'].flatMap((extraCmdline, e) =>
    [undefined, 0, 5].flatMap((timeoutSeconds) =>
      ["Debian's appliance", 'plain'].map((title, t) => ({
        name: `${k.name}-extra${e}-timeout${timeoutSeconds ?? 'default'}-title${t}`,
        input: { title, rootFsUuid: UUIDS[0].input, kernel: k.input, extraCmdline, timeoutSeconds },
      })),
    ),
  ),
);

export const FSTABS: Case<FstabInput>[] = [
  { name: 'root-and-esp', input: { rootFsUuid: UUIDS[0].input, espUuid: 'ABCD-1234' } },
  { name: 'root-only', input: { rootFsUuid: UUIDS[1].input } },
  { name: 'empty-esp', input: { rootFsUuid: UUIDS[1].input, espUuid: '' } },
];

/** A request but for the templates, which the tests supply. */
export type ApplianceCase = Omit<ApplianceRequest, 'templates'>;

const OS_RELEASES: Case<Record<string, string>>[] = [
  { name: 'debian', input: { ID: 'debian', VERSION_ID: '12', PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)' } },
  { name: 'ubuntu', input: { ID: 'ubuntu', ID_LIKE: 'debian', PRETTY_NAME: 'Ubuntu 24.04 LTS' } },
  { name: 'alpine', input: { ID: 'alpine', PRETTY_NAME: 'Alpine Linux v3.20' } },
  { name: 'rocky', input: { ID: 'rocky', ID_LIKE: 'rhel centos fedora', PRETTY_NAME: 'Rocky Linux 9' } },
];

const PROBES: Case<Omit<ImageProbe, 'osRelease'>>[] = [
  { name: 'app-image', input: { hasKernel: false, init: 'none' } },
  { name: 'vm-systemd', input: { hasKernel: true, init: 'systemd' } },
  { name: 'vm-openrc', input: { hasKernel: true, init: 'openrc' } },
];

const EXTRAS: Case<Pick<ApplianceCase, 'sshAuthorizedKeys' | 'cmdOverride'>>[] = [
  { name: 'plain', input: {} },
  { name: 'ssh-override', input: { sshAuthorizedKeys: 'ssh-ed25519 AAAA one\nssh-rsa BBBB two\n\n', cmdOverride: ['nginx', '-g', 'daemon off;'] } },
];

export const APPLIANCES: Case<ApplianceCase>[] = OS_RELEASES.flatMap((os) =>
  PROBES.flatMap((p) =>
    (['auto', 'systemd', 'openrc'] as InitChoice[]).flatMap((init) =>
      BOOLS.flatMap((appService) =>
        EXTRAS.map((x) => ({
          name: `${os.name}-${p.name}-${init}-${appService ? 'app' : 'noapp'}-${x.name}`,
          input: { source: 'myapp:1.4', command: COMMANDS[0].input, probe: { osRelease: os.input, ...p.input }, init, appService, ...x.input },
        })),
      ),
    ),
  ),
);
