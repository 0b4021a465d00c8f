/**
 * Every shell file c2v writes into a guest, rendered over the input matrix, passes shellcheck. The templates carry
 * their shellcheck directives as `{{! shellcheck ... }}` comments, which c2v's own renderings drop (the guest's
 * bytes stay as they were); here they become real `# shellcheck` lines so that shellcheck honours them.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates, TEMPLATES_DIR } from '../../src/adapters/templates.js';
import { appWrapper, openrcScript } from '../../src/plan/app-service.js';
import { parseTemplate, renderTemplate, TEMPLATE_FILES, type Templates } from '../../src/plan/template.js';
import { ARGVS, COMMANDS, SOURCES, USERS } from '../helpers/template-matrix.js';

const exec = promisify(execFile);

function hasShellcheck(): boolean {
  try {
    execFileSync('shellcheck', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const DIRECTIVE = /^([ \t]*)\{\{!\s*(shellcheck\s.*?)\s*\}\}[ \t]*$/gm;

/** The templates with their shellcheck comments as directives; everything else parsed as c2v parses it. */
function lintTemplates(): Templates {
  const entries = Object.entries(TEMPLATE_FILES).map(([name, { file, shell }]) => {
    const text = readFileSync(path.join(TEMPLATES_DIR, file), 'utf8').replace(DIRECTIVE, '$1# $2');
    return [name, parseTemplate(file, text, { shell })];
  });
  return Object.fromEntries(entries) as Templates;
}

type Render = (t: Templates) => string;

/** guest.conf's values: the app's property names, the image's USER, the networking c2v manages. */
const GUEST_CONFS = [
  { name: 'none', values: { appProperties: [], appBooleans: [], appOwner: '', network: '' } },
  { name: 'ifupdown', values: { appProperties: ['GREETING', 'API_TOKEN', '_x1'], appBooleans: ['_x1'], appOwner: 'app:staff', network: 'ifupdown' } },
  { name: 'nm', values: { appProperties: ['PORT'], appBooleans: [], appOwner: "o'b:g r", network: 'networkmanager' } },
];

const SHELL_RENDERINGS: { kind: string; shellcheckArgs: string[]; cases: [string, Render][] }[] = [
  {
    kind: 'app-run',
    shellcheckArgs: ['--shell=sh'],
    cases: COMMANDS.flatMap((c) => ARGVS.flatMap((a) => SOURCES.map((s): [string, Render] => [`${c.name}-${a.name}-${s.name}`, (t) => appWrapper(c.input, a.input, s.input, t)]))),
  },
  {
    kind: 'openrc',
    // openrc-run is sh with its own variables and functions; shellcheck does not know its shebang.
    shellcheckArgs: ['--shell=sh'],
    cases: USERS.flatMap((u) => SOURCES.map((s): [string, Render] => [`${u.name}-${s.name}`, (t) => openrcScript({ ...COMMANDS[0].input, user: u.input }, s.input, t)])),
  },
  {
    kind: 'c2v-guest',
    shellcheckArgs: ['--shell=sh'],
    cases: [['agent', (t) => renderTemplate(t.guestAgent, {})]],
  },
  {
    kind: 'network.sh',
    // Sourced by the agent, whose variables it reads.
    shellcheckArgs: ['--shell=sh'],
    cases: [['network', (t) => renderTemplate(t.guestNetwork, {})]],
  },
  {
    kind: 'grow-root',
    shellcheckArgs: ['--shell=sh'],
    cases: [['grow-root', (t) => renderTemplate(t.growRoot, {})]],
  },
  {
    kind: 'netboot',
    // Sourced by initramfs-tools' init, whose functions (panic, configure_networking) and variables it uses.
    shellcheckArgs: ['--shell=sh'],
    cases: [['c2v-boot', (t) => renderTemplate(t.netbootScript, {})]],
  },
  {
    kind: 'guest.conf',
    // Sourced by the agent, so it has no shebang of its own.
    shellcheckArgs: ['--shell=sh'],
    cases: GUEST_CONFS.map((c): [string, Render] => [c.name, (t) => renderTemplate(t.guestConf, c.values)]),
  },
  {
    kind: 'c2v-guest.openrc',
    shellcheckArgs: ['--shell=sh'],
    cases: [['openrc', (t) => renderTemplate(t.guestOpenrc, {})]],
  },
];

const shellcheck = hasShellcheck();

describe.skipIf(!shellcheck)('shell templates pass shellcheck (needs the shellcheck binary: apt-get install shellcheck)', () => {
  let real: Templates;
  let lint: Templates;
  let dir: string;
  beforeAll(async () => {
    real = await loadTemplates();
    lint = lintTemplates();
    dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-shellcheck-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const { kind, shellcheckArgs, cases } of SHELL_RENDERINGS) {
    it(`${kind}, over ${cases.length} inputs`, async () => {
      const files: string[] = [];
      for (const [name, render] of cases) {
        const linted = render(lint);
        // What shellcheck sees is what c2v writes, but for the directive lines.
        expect(linted.replace(/^[ \t]*# shellcheck .*\n/gm, ''), name).toBe(render(real));
        const file = path.join(dir, `${kind}-${name}`);
        writeFileSync(file, linted);
        files.push(file);
      }
      const result = await exec('shellcheck', ['--format=gcc', ...shellcheckArgs, ...files]).then(
        () => '',
        (e: { stdout?: string; message: string }) => e.stdout || e.message,
      );
      expect(result).toBe('');
    });
  }
});

if (!shellcheck) {
  it.skip('shell templates pass shellcheck: skipped, the shellcheck binary is not installed (Debian: apt-get install shellcheck; scripts/install-host-deps installs it)', () => {});
}
