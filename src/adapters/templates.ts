import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { C2vError } from '../errors.js';
import { parseTemplate, TEMPLATE_FILES, type TemplateName, type Templates } from '../plan/template.js';

/** templates/ at the package root, from src/adapters or dist/adapters alike. */
export const TEMPLATES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../templates');

/** Reads and parses every guest file template, so a broken or missing one stops c2v before any work. */
export async function loadTemplates(dir: string = TEMPLATES_DIR): Promise<Templates> {
  const entries = await Promise.all(
    (Object.entries(TEMPLATE_FILES) as [TemplateName, (typeof TEMPLATE_FILES)[TemplateName]][]).map(async ([name, { file, shell }]) => {
      const full = path.join(dir, file);
      let text: string;
      try {
        text = await readFile(full, 'utf8');
      } catch (e) {
        throw new C2vError('internal', `c2v's template ${full} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): the installation is incomplete, reinstall c2v`, { cause: e });
      }
      return [name, parseTemplate(file, text, { shell })] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<TemplateName, ReturnType<typeof parseTemplate>>;
}
