/**
 * The text files c2v writes into guests are real files under templates/; this renders them with the values c2v
 * computes. Deliberately tiny and strict: a name or filter it does not know is an error, never an empty string,
 * and in a shell template every value must go through `sh` (quoted), `word` (checked to need no quoting) or
 * `comment` (checked to stay inside its comment line), so nothing reaches a shell unquoted by accident.
 *
 *   {{ name }}  {{ item.key | sh }}        a value; filters apply left to right
 *   {{#if name}} ... {{else}} ... {{/if}}  a boolean, or a string (true when not empty)
 *   {{#each list as item}} ... {{/each}}   once per element, `item` naming it
 *   {{! why }}                             a comment for readers of the template
 *
 * A line holding nothing but one block or comment tag disappears whole, newline included, so blocks can sit on
 * their own lines without leaving blank ones behind. Tags do not span lines. A `{{! shellcheck disable=... }}`
 * comment is a lint directive kept out of the guest's bytes: test/host/templates-shell.test.ts renders with such
 * comments turned into `# shellcheck` lines.
 */
import { C2vError } from '../errors.js';

/** Every file c2v writes into a guest, by role: where it is under templates/ and whether it is POSIX shell. */
export const TEMPLATE_FILES = {
  appRun: { file: 'app/app-run.sh', shell: true },
  systemdUnit: { file: 'app/c2v-app.service', shell: false },
  openrcScript: { file: 'app/c2v-app.openrc', shell: true },
  interfaces: { file: 'network/interfaces', shell: false },
  packagesScript: { file: 'packages/c2v-packages.sh', shell: true },
  packagesStage: { file: 'packages/Dockerfile', shell: false },
  grubConfig: { file: 'boot/grub.cfg', shell: false },
  grubEarlyConfig: { file: 'boot/grub-early.cfg', shell: false },
  fstab: { file: 'boot/fstab', shell: false },
  journaldSerial: { file: 'boot/journald-serial.conf', shell: false },
  guestAgent: { file: 'guest/c2v-guest.sh', shell: true },
  guestNetwork: { file: 'guest/network.sh', shell: true },
  ovfEnvAwk: { file: 'guest/ovf-env.awk', shell: false },
  growRoot: { file: 'guest/grow-root.sh', shell: true },
  guestConf: { file: 'guest/guest.conf', shell: true },
  guestUnit: { file: 'guest/c2v-guest.service', shell: false },
  guestOpenrc: { file: 'guest/c2v-guest.openrc', shell: true },
  netbootScript: { file: 'netboot/c2v-boot.sh', shell: true },
  netbootFstab: { file: 'netboot/fstab', shell: false },
  netbootIpxe: { file: 'netboot/boot.ipxe', shell: false },
  netbootGrub: { file: 'netboot/grub.cfg', shell: false },
  netbootReadme: { file: 'netboot/README.txt', shell: false },
} as const satisfies Record<string, { file: string; shell: boolean }>;

export type TemplateName = keyof typeof TEMPLATE_FILES;

export type TemplateValue = string | number | boolean | readonly TemplateValue[] | { readonly [key: string]: TemplateValue };
export type TemplateValues = { readonly [key: string]: TemplateValue };

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'value'; path: string[]; filters: string[]; line: number }
  | { kind: 'if'; path: string[]; then: Node[]; otherwise: Node[]; line: number }
  | { kind: 'each'; path: string[]; as: string; body: Node[]; line: number };

export interface Template {
  readonly name: string;
  readonly nodes: readonly Node[];
}

export type Templates = Readonly<Record<TemplateName, Template>>;

/** Single-quotes a word for POSIX sh; the only character that needs care inside single quotes is the quote. */
export function shQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const FILTERS: Record<string, (v: TemplateValue, fail: (why: string) => never) => TemplateValue> = {
  // A list is an argv: each word quoted, separated by spaces.
  sh: (v, fail) => (Array.isArray(v) ? v.map((w) => shQuote(asText(w, fail))).join(' ') : shQuote(asText(v, fail))),
  word: (v, fail) => {
    const s = asText(v, fail);
    if (!/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) fail(`${JSON.stringify(s)} is not a plain shell word: use | sh`);
    return s;
  },
  // Verbatim, for the rest of a `#` comment line (checked when parsing): only a newline could end the comment.
  comment: (v, fail) => {
    const s = asText(v, fail);
    if (s.includes('\n')) fail(`${JSON.stringify(s)} would break out of its comment line`);
    return s;
  },
};
const SHELL_SAFE_FILTERS = new Set(['sh', 'word', 'comment']);

const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PATH_RE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const TAG_RE = /\{\{(.*?)\}\}/g;

function asText(v: TemplateValue, fail: (why: string) => never): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return fail(`expected a string, got ${Array.isArray(v) ? 'a list' : typeof v}`);
}

function templateError(name: string, line: number, why: string): never {
  throw new C2vError('internal', `template ${name}, line ${line}: ${why}`);
}

/** Parses a template once; syntax errors and, in shell templates, unquoted values show up here, not at render. */
export function parseTemplate(name: string, text: string, opts: { shell: boolean }): Template {
  const root: Node[] = [];
  const open: { node: Extract<Node, { kind: 'if' | 'each' }>; inElse: boolean }[] = [];
  const target = (): Node[] => {
    const top = open[open.length - 1];
    if (!top) return root;
    if (top.node.kind === 'each') return top.node.body;
    return top.inElse ? top.node.otherwise : top.node.then;
  };
  const addText = (text: string, fail: (why: string) => never) => {
    if (text.includes('{{')) fail('a {{ without its }}');
    if (text) target().push({ kind: 'text', text });
  };
  const addTag = (tag: string, line: number, lineText: string, fail: (why: string) => never) => {
    let m: RegExpExecArray | null;
    if (tag.startsWith('!')) return;
    if ((m = /^#if\s+(\S+)$/.exec(tag))) {
      const node = { kind: 'if' as const, path: parsePath(m[1], fail), then: [], otherwise: [], line };
      target().push(node);
      open.push({ node, inElse: false });
    } else if ((m = /^#each\s+(\S+)\s+as\s+(\S+)$/.exec(tag))) {
      if (!IDENT_RE.test(m[2])) fail(`bad loop variable ${JSON.stringify(m[2])}`);
      const node = { kind: 'each' as const, path: parsePath(m[1], fail), as: m[2], body: [], line };
      target().push(node);
      open.push({ node, inElse: false });
    } else if (tag === 'else') {
      const top = open[open.length - 1];
      if (top?.node.kind !== 'if' || top.inElse) fail('{{else}} outside an {{#if}}');
      top.inElse = true;
    } else if ((m = /^\/(if|each)$/.exec(tag))) {
      if (open.pop()?.node.kind !== m[1]) fail(`{{/${m[1]}}} closes nothing`);
    } else if (isBlockTag(tag)) {
      fail(`unknown tag {{${tag}}}`);
    } else {
      const [head, ...filters] = tag.split('|').map((s) => s.trim());
      for (const f of filters) if (!Object.hasOwn(FILTERS, f)) fail(`unknown filter ${JSON.stringify(f)}`);
      if (opts.shell && !SHELL_SAFE_FILTERS.has(filters[filters.length - 1] ?? '')) fail(`{{${tag}}} in a shell template must end in | sh, | word or | comment`);
      if (filters.includes('comment') && !/^\s*#/.test(lineText)) fail(`| comment outside a # comment line`);
      target().push({ kind: 'value', path: parsePath(head, fail), filters, line });
    }
  };
  text.split(/(?<=\n)/).forEach((raw, i) => {
    const line = i + 1;
    const fail = (why: string): never => templateError(name, line, why);
    const body = raw.endsWith('\n') ? raw.slice(0, -1) : raw;
    const tags = [...body.matchAll(TAG_RE)];
    const only = tags.length === 1 ? tags[0] : undefined;
    if (only && isBlockTag(only[1].trim()) && /^[ \t]*$/.test(body.slice(0, only.index) + body.slice(only.index + only[0].length))) {
      addTag(only[1].trim(), line, body, fail);
      return;
    }
    let at = 0;
    for (const m of tags) {
      addText(body.slice(at, m.index), fail);
      addTag(m[1].trim(), line, body, fail);
      at = m.index + m[0].length;
    }
    addText(raw.slice(at), fail);
  });
  const unclosed = open.pop();
  if (unclosed) templateError(name, unclosed.node.line, `{{#${unclosed.node.kind}}} is never closed`);
  return { name, nodes: root };
}

/** Tags that make no output of their own: a line holding only one of them disappears. */
function isBlockTag(tag: string): boolean {
  return /^[#/!]/.test(tag) || tag === 'else';
}

function parsePath(s: string, fail: (why: string) => never): string[] {
  if (!PATH_RE.test(s)) fail(`bad name ${JSON.stringify(s)}`);
  return s.split('.');
}

type Scope = ReadonlyMap<string, TemplateValue>;

function lookup(scope: Scope, path: string[], fail: (why: string) => never): TemplateValue {
  let v: TemplateValue | undefined = scope.get(path[0]);
  for (let i = 1; v !== undefined && i < path.length; i++) {
    v = typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, path[i]) ? (v as Record<string, TemplateValue>)[path[i]] : undefined;
  }
  if (v === undefined) fail(`no value named ${path.join('.')}`);
  return v as TemplateValue;
}

export function renderTemplate(template: Template, values: TemplateValues): string {
  const out: string[] = [];
  const walk = (nodes: readonly Node[], scope: Scope): void => {
    for (const n of nodes) {
      if (n.kind === 'text') {
        out.push(n.text);
        continue;
      }
      const fail = (why: string): never => templateError(template.name, n.line, why);
      const v = lookup(scope, n.path, fail);
      if (n.kind === 'value') {
        out.push(asText(n.filters.reduce((acc, f) => FILTERS[f](acc, fail), v), fail));
      } else if (n.kind === 'if') {
        if (typeof v !== 'boolean' && typeof v !== 'string') fail(`{{#if ${n.path.join('.')}}} needs a boolean or a string`);
        walk(v ? n.then : n.otherwise, scope);
      } else {
        if (!Array.isArray(v)) fail(`{{#each ${n.path.join('.')}}} needs a list`);
        for (const item of v as readonly TemplateValue[]) walk(n.body, new Map(scope).set(n.as, item));
      }
    }
  };
  walk(template.nodes, new Map(Object.entries(values)));
  return out.join('');
}
