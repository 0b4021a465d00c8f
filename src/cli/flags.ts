import type { Options, PositionalOptions } from 'yargs';
import type { Setting, SettingsTable } from '../config/settings.js';

/** `[default: …]` as a person would type it: quoted only when it holds a space. */
export function defaultText(value: string | number | boolean): string {
  return typeof value === 'string' && /\s/.test(value) ? JSON.stringify(value) : String(value);
}

function describe(s: Setting): string {
  return s.choices ? `${s.describe}: ${s.choices.join(' | ')}` : s.describe;
}

type FlagOption<S extends Setting> = { type: S['type']; describe: string; alias?: string; defaultDescription?: string };

export type FlagOptions<T extends SettingsTable> = {
  -readonly [K in keyof T as T[K] extends { positional: true } ? never : K]: FlagOption<T[K]>;
};

/**
 * A setting as a yargs option. yargs gets the default only as help text and never the choices: it
 * would reject a bad choice alone and in its own words, where the schema reports every problem at once.
 */
export function flagOption<S extends Setting>(s: S): FlagOption<S> {
  const o: FlagOption<S> = { type: s.type, describe: describe(s) };
  if (s.alias) o.alias = s.alias;
  if (s.default !== undefined) o.defaultDescription = defaultText(s.default);
  return o;
}

export function flagOptions<T extends SettingsTable>(table: T): FlagOptions<T> {
  const options: Record<string, Options> = {};
  for (const [flag, s] of Object.entries(table)) if (!s.positional) options[flag] = flagOption(s);
  return options as FlagOptions<T>;
}

export function positionalOption(s: Setting): PositionalOptions {
  return { type: s.type, describe: describe(s) };
}
