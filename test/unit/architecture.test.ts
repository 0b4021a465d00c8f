import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/env.js';

/** Every .ts file below a folder of src/, with its text. */
function sources(dir: string): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts')) out.push({ file: path.relative(PROJECT_ROOT, p), text: readFileSync(p, 'utf8') });
    }
  };
  walk(path.join(PROJECT_ROOT, 'src', dir));
  return out;
}

function importsOf(text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1] ?? m[2]);
}

describe('the layout of the code', () => {
  it('keeps plan/ and formats/ pure: no files, processes, threads or engine code', () => {
    const banned = /^(node:)?(fs|fs\/promises|child_process|worker_threads)$|^dockerode$|^execa$|\/adapters\/|\/stages\/|\/commands\/|\/cli\/|\/pipeline/;
    const offenders = [...sources('plan'), ...sources('formats')].flatMap(({ file, text }) => importsOf(text).filter((i) => banned.test(i)).map((i) => `${file} imports ${i}`));
    expect(offenders).toEqual([]);
  });

  it('points dependencies one way: stages and adapters never import the pipeline or the CLI', () => {
    const offenders = [...sources('stages'), ...sources('adapters'), ...sources('commands')].flatMap(({ file, text }) =>
      importsOf(text)
        .filter((i) => /\/cli\/|\/pipeline(\.js)?$/.test(i))
        .map((i) => `${file} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });

  it('has no file in src/ over about 400 lines', () => {
    const long = sources('.')
      .map(({ file, text }) => ({ file, lines: text.split('\n').length }))
      .filter((f) => f.lines > 420);
    expect(long).toEqual([]);
  });

  it('the guards above see real imports (a module known to import node:fs)', () => {
    const ws = sources('adapters').find((s) => s.file.endsWith('workspace.ts'))!;
    expect(importsOf(ws.text)).toContain('node:fs/promises');
  });
});
