/**
 * The files c2v writes into guests end up in images and disks whose hashes must not move: each rendering from
 * templates/ must equal, byte for byte, what c2v wrote before the text left the TypeScript (the fixtures in
 * test/fixtures/templates were recorded from the string-building functions, over test/helpers/template-matrix.ts).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTemplates } from '../../src/adapters/templates.js';
import { appWrapper, openrcScript, systemdUnit } from '../../src/plan/app-service.js';
import { ifupdownInterfaces, planAppliance } from '../../src/plan/appliance.js';
import { fstab, grubConfig, grubEarlyConfig } from '../../src/plan/boot-config.js';
import type { Templates } from '../../src/plan/template.js';
import { PROJECT_ROOT } from '../helpers/env.js';
import { parseGolden } from '../helpers/golden.js';
import { APPLIANCES, ARGVS, COMMANDS, FSTABS, GRUBS, SOURCES, USERS, UUIDS } from '../helpers/template-matrix.js';

let templates: Templates;
beforeAll(async () => {
  templates = await loadTemplates();
});

function golden(file: string): Map<string, string> {
  return parseGolden(readFileSync(path.join(PROJECT_ROOT, 'test/fixtures/templates', file)));
}

/** Every recorded case is rendered, and every rendered case was recorded. */
function expectGolden(file: string, render: () => [name: string, content: string][]): void {
  const want = golden(file);
  const got = new Map(render());
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, content] of got) expect(content, `${file}: ${name}`).toBe(want.get(name));
}

function planSummary(run: () => ReturnType<typeof planAppliance>): string {
  let plan;
  try {
    plan = run();
  } catch {
    return 'throws\n';
  }
  if (!plan) return 'nothing to add\n';
  const line = (name: string, mode: number, content: string) => `${name} ${mode.toString(8)} ${Buffer.byteLength(content)} ${createHash('sha256').update(content).digest('hex')}\n`;
  const args = Object.entries(plan.buildArgs).map(([k, v]) => `${k}=${v}`).join(' ');
  return `${args}\n${line('Dockerfile', 0o644, plan.dockerfile)}${plan.files.map((f) => line(f.path, f.mode, f.content)).join('')}`;
}

describe('guest files rendered from templates/ match the recorded bytes', () => {
  it('app-run wrapper', () =>
    expectGolden('app-run.golden', () => COMMANDS.flatMap((c) => ARGVS.flatMap((a) => SOURCES.map((s): [string, string] => [`${c.name}/${a.name}/${s.name}`, appWrapper(c.input, a.input, s.input, templates)])))));

  it('systemd unit', () =>
    expectGolden('c2v-app.service.golden', () =>
      USERS.flatMap((u) => SOURCES.map((s): [string, string] => [`${u.name}/${s.name}`, systemdUnit({ ...COMMANDS[0].input, user: u.input }, s.input, templates)])),
    ));

  it('OpenRC script', () =>
    expectGolden('c2v-app.openrc.golden', () =>
      USERS.flatMap((u) => SOURCES.map((s): [string, string] => [`${u.name}/${s.name}`, openrcScript({ ...COMMANDS[0].input, user: u.input }, s.input, templates)])),
    ));

  it('/etc/network/interfaces', () => expectGolden('interfaces.golden', () => [['default', ifupdownInterfaces(templates)]]));


  it('grub.cfg', () => expectGolden('grub.cfg.golden', () => GRUBS.map((c) => [c.name, grubConfig(c.input, templates)])));

  it('the early GRUB config', () => expectGolden('grub-early.cfg.golden', () => UUIDS.map((c) => [c.name, grubEarlyConfig(c.input, templates)])));

  it('fstab', () => expectGolden('fstab.golden', () => FSTABS.map((c) => [c.name, fstab(c.input, templates)])));

  it("the appliance plan's build context files", () =>
    expectGolden('appliance-plan.golden', () => APPLIANCES.map((c) => [c.name, planSummary(() => planAppliance({ ...c.input, templates }))])));
});
