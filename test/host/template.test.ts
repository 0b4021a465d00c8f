import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { C2vError } from '../../src/errors.js';
import { loadTemplates, TEMPLATES_DIR } from '../../src/adapters/templates.js';
import { parseTemplate, renderTemplate, shQuote, TEMPLATE_FILES, type TemplateValues } from '../../src/plan/template.js';

const render = (text: string, values: TemplateValues, shell = false) => renderTemplate(parseTemplate('t', text, { shell }), values);

describe('the template renderer', () => {
  it('fills placeholders, with filters applied left to right', () => {
    expect(render('a={{ a }} b={{b}} n={{n}}\n', { a: 'x y', b: '', n: 0 })).toBe('a=x y b= n=0\n');
    expect(render('{{ v.key }}={{v.value | sh}}', { v: { key: 'K', value: "it's" } })).toBe(`K='it'\\''s'`);
  });

  it('repeats a block per element and drops the lines that hold only block tags', () => {
    const text = 'head\n{{#each nics as nic}}\n\nallow {{nic}}\n{{/each}}\ntail\n';
    expect(render(text, { nics: ['eth0', 'eth1'] })).toBe('head\n\nallow eth0\n\nallow eth1\ntail\n');
    expect(render(text, { nics: [] })).toBe('head\ntail\n');
  });

  it('chooses between branches, nested, on booleans and on strings being non-empty', () => {
    const text = '{{#if a}}\nA\n{{else}}\n  {{#if b}}\nB {{b}}\n  {{/if}}\n{{/if}}\nend';
    expect(render(text, { a: true, b: 'x' })).toBe('A\nend');
    expect(render(text, { a: false, b: 'x' })).toBe('B x\nend');
    expect(render(text, { a: '', b: '' })).toBe('end');
  });

  it('keeps inline block tags inline, and drops comments', () => {
    expect(render('x{{#if e}} {{e}}{{/if}}.\n{{! a note for readers }}\ny\n', { e: 'q' })).toBe('x q.\ny\n');
    expect(render('x{{#if e}} {{e}}{{/if}}.\n', { e: '' })).toBe('x.\n');
  });

  it('quotes for sh: a string as one word, a list as an argv', () => {
    expect(shQuote("a'b")).toBe(`'a'\\''b'`);
    expect(render('exec {{argv | sh}}', { argv: ['a b', '', "c'd", '$(x)'] })).toBe(`exec 'a b' '' 'c'\\''d' '$(x)'`);
    const script = render('#!/bin/sh\nprintf "%s|" {{argv | sh}}\n', { argv: ['a b', "it's", '$HOME', '`id`', 'new\nline', '\\'] }, true);
    expect(execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8', env: {} })).toBe("a b|it's|$HOME|`id`|new\nline|\\|");
  });

  it('in a shell template, refuses a value without | sh, | word or | comment', () => {
    expect(() => parseTemplate('t', 'echo {{x}}\n', { shell: true })).toThrow(/t, line 1: \{\{x\}\} in a shell template must end in \| sh/);
    expect(() => parseTemplate('t', 'echo {{x | sh | word}}\n', { shell: true })).not.toThrow();
    expect(render('svc {{x | word}}', { x: 'c2v-app.service' }, true)).toBe('svc c2v-app.service');
    expect(() => render('svc {{x | word}}', { x: 'a;b' }, true)).toThrow(/"a;b" is not a plain shell word/);
    expect(() => render('svc {{x | word}}', { x: '' }, true)).toThrow(/not a plain shell word/);
  });

  it('lets | comment out only on a comment line, and never past its end', () => {
    expect(render('# from {{s | comment}}\n', { s: "it's $(x)" }, true)).toBe("# from it's $(x)\n");
    expect(() => parseTemplate('t', 'echo {{s | comment}}\n', { shell: true })).toThrow(/\| comment outside a # comment line/);
    expect(() => render('# from {{s | comment}}\n', { s: 'a\nrm -rf /' }, true)).toThrow(/would break out of its comment line/);
  });

  it('is an error, not an empty string, for what it does not know', () => {
    expect(() => render('{{missing}}', {})).toThrow(C2vError);
    expect(() => render('{{missing}}', {})).toThrow(/no value named missing/);
    expect(() => render('{{a.b}}', { a: { c: 'x' } })).toThrow(/no value named a.b/);
    expect(() => render('{{a.b}}', { a: 'str' })).toThrow(/no value named a.b/);
    expect(() => render('{{a | upper}}', { a: 'x' })).toThrow(/unknown filter "upper"/);
    expect(() => render('{{a | toString}}', { a: 'x' })).toThrow(/unknown filter "toString"/);
    expect(() => render('{{#unless a}}{{/unless}}', { a: true })).toThrow(/unknown tag/);
    expect(() => render('{{#if a}}\nx\n', { a: true })).toThrow(/line 1: \{\{#if\}\} is never closed/);
    expect(() => render('x\n{{/each}}\n', {})).toThrow(/line 2: \{\{\/each\}\} closes nothing/);
    expect(() => render('{{#each a as x}}{{/if}}', { a: [] })).toThrow(/closes nothing/);
    expect(() => render('{{else}}', {})).toThrow(/outside an \{\{#if\}\}/);
    expect(() => render('{{#if a}}{{else}}{{else}}{{/if}}', { a: true })).toThrow(/outside an \{\{#if\}\}/);
    expect(() => render('x {{ a', { a: 'x' })).toThrow(/a \{\{ without its \}\}/);
    expect(() => render('{{ }}', {})).toThrow(/bad name/);
    expect(() => render('{{#each a as 1x}}{{/each}}', { a: [] })).toThrow(/bad loop variable/);
  });

  it('is an error for a value of the wrong kind', () => {
    expect(() => render('{{a}}', { a: ['x'] })).toThrow(/expected a string, got a list/);
    expect(() => render('{{a}}', { a: true })).toThrow(/expected a string, got boolean/);
    expect(() => render('{{#if a}}{{/if}}', { a: ['x'] })).toThrow(/needs a boolean or a string/);
    expect(() => render('{{#each a as x}}{{/each}}', { a: 'x' })).toThrow(/needs a list/);
  });

  it('scopes the loop variable to its loop', () => {
    expect(render('{{#each a as x}}{{x}}{{/each}}', { a: ['1', '2'], x: 'outer' })).toBe('12');
    expect(() => render('{{#each a as x}}{{/each}}{{x}}', { a: ['1'] })).toThrow(/no value named x/);
  });
});

describe('loading templates/', () => {
  it('reads and parses every template', async () => {
    const t = await loadTemplates();
    expect(Object.keys(t).sort()).toEqual(Object.keys(TEMPLATE_FILES).sort());
  });

  it('reports a missing or broken template as an internal error naming the file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'c2v-templates-'));
    try {
      cpSync(TEMPLATES_DIR, dir, { recursive: true });
      writeFileSync(path.join(dir, TEMPLATE_FILES.packagesScript.file), '#!/bin/sh\nusermod -p {{hash}} root\n');
      await expect(loadTemplates(dir)).rejects.toThrow(/template packages\/c2v-packages.sh, line 2: \{\{hash\}\} in a shell template/);
      rmSync(path.join(dir, TEMPLATE_FILES.fstab.file));
      const e = await loadTemplates(dir).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(C2vError);
      expect((e as C2vError).code).toBe('internal');
      expect((e as C2vError).message).toMatch(/boot\/fstab cannot be read \(ENOENT\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
