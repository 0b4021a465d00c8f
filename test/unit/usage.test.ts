import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { convertHelp } from '../../src/cli/usage.js';
import { CONVERT_SETTINGS } from '../../src/config/settings.js';
import { DEFAULT_HW_VERSION } from '../../src/plan/vsphere-hardware.js';
import { DEFAULT_COMPRESS_LEVEL } from '../../src/formats/vmdk.js';

const README = new URL('../../README.md', import.meta.url);

/** The text between the usage markers, without the code fence around it. */
function readmeBlock(name: string): string {
  const text = readFileSync(README, 'utf8');
  const m = new RegExp(`<!-- usage:${name} -->\\n\`\`\`\\n([\\s\\S]*?)\\n\`\`\`\\n<!-- /usage:${name} -->`).exec(text);
  if (!m) throw new Error(`README.md has no <!-- usage:${name} --> block holding one code fence`);
  return m[1];
}

describe('c2v convert --help', () => {
  it('is what README.md shows (regenerate the block from `c2v convert --help | cat` when it changes)', async () => {
    expect(readmeBlock('convert')).toBe((await convertHelp()).trimEnd());
  });

  it('lists every flag of the settings table, and the global ones', async () => {
    const help = await convertHelp();
    for (const [flag, s] of Object.entries(CONVERT_SETTINGS)) {
      if (!('positional' in s)) expect(help).toContain(`--${flag} `);
    }
    for (const flag of ['--json', '--debug', '-v, --verbose', '-o, --output']) expect(help).toContain(flag);
  });

  it('shows the defaults the schema applies, not hand-typed ones', async () => {
    const help = (await convertHelp(400)).split('\n');
    const line = (flag: string) => help.find((l) => new RegExp(`^ +(-\\w, )?--${flag} `).test(l)) ?? '';
    expect(line('hw-version')).toMatch(new RegExp(`\\[default: ${DEFAULT_HW_VERSION}\\]$`));
    expect(line('compress-level')).toMatch(new RegExp(`\\[default: ${DEFAULT_COMPRESS_LEVEL}\\]$`));
    expect(line('network')).toMatch(/\[default: "VM Network"\]$/);
    expect(line('format')).toMatch(/What to write: ova \| ovf \| vmdk \| raw \| qcow2 \| netboot +\[string\] \[default: ova\]$/);
    expect(line('pull')).toMatch(/\[boolean\] \[default: true\]$/);
    expect(line('cmd')).toMatch(/\[string\]$/);
    expect(line('timings')).toMatch(/\[boolean\]$/);
  });

  it('wraps at the width asked for', async () => {
    const narrow = await convertHelp(80);
    expect(Math.max(...narrow.split('\n').map((l) => l.length))).toBeLessThanOrEqual(80);
    expect(narrow).not.toBe(await convertHelp());
  });
});
