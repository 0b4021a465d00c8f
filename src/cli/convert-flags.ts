import type { Argv } from 'yargs';
import { CONVERT_SETTINGS, settingsInput } from '../config/settings.js';
import { flagOptions, positionalOption } from './flags.js';
import type { GlobalFlags } from './global.js';

/**
 * The `convert` command's declaration without its handler, so `--help` can be produced (for README.md's
 * usage test) without loading the pipeline and the engine.
 */
export const CONVERT_COMMAND = 'convert <input>';
export const CONVERT_DESCRIPTION = 'Convert a Dockerfile, build context or image into a bootable OVA';

export const convertFlags = flagOptions(CONVERT_SETTINGS);

/** Parsed flags -> the schema's input: camelCase keys, only the flags that were given. */
export function convertInput(argv: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return settingsInput(CONVERT_SETTINGS, argv);
}

export function convertBuilder(b: Argv<GlobalFlags>) {
  return b
    .positional('input', positionalOption(CONVERT_SETTINGS.input))
    .options(convertFlags)
    .strict()
    .example('$0 convert ./Dockerfile', 'build and convert')
    .example('$0 convert myapp:1.4 -o dist/myapp.ova --cpus 2 --memory 2048', 'convert a local image');
}
