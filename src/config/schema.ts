import { z } from 'zod';
import { CONVERT_SETTINGS, schemaShape } from './settings.js';

/**
 * The `convert` settings as one zod schema, derived from CONVERT_SETTINGS: the CLI flags and a config
 * file both go through it, so a bad value gets the same message wherever it came from.
 */
export const convertSchema = z.object(schemaShape(CONVERT_SETTINGS)).strict();

export type ConvertInput = z.input<typeof convertSchema>;
export type ConvertOptions = z.output<typeof convertSchema>;

/** One line per problem, each naming the setting, so a person can fix them all at once. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') return `unknown setting(s): ${i.keys.join(', ')}`;
      const key = i.path.join('.');
      return i.message.includes(`--`) || !key ? i.message : `${key}: ${i.message}`;
    })
    .join('; ');
}
