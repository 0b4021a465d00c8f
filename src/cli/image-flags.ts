import type { Argv } from 'yargs';
import { C2vError } from '../errors.js';
import { CONVERT_SETTINGS } from '../config/settings.js';
import { convertSchema, formatIssues } from '../config/schema.js';
import { parsePlatform, type Platform } from '../formats/oci/manifest.js';
import type { InitChoice } from '../plan/appliance.js';
import { flagOption } from './flags.js';

/** The flags of the commands besides convert that look at an image: which init, and how to reach it. */
export function imageFlags<T>(b: Argv<T>) {
  return b
    .option('init', flagOption(CONVERT_SETTINGS.init))
    .option('platform', flagOption(CONVERT_SETTINGS.platform))
    .option('insecure-registry', flagOption(CONVERT_SETTINGS['insecure-registry']));
}

/** Judged by convert's own schema, so the messages are the same. */
export function parseImageFlags(argv: Readonly<Record<string, unknown>>): { init: InitChoice; platform: Platform; insecureRegistries: string[] } {
  const flags = convertSchema.pick({ init: true, platform: true, insecureRegistry: true }).safeParse({ init: argv.init, platform: argv.platform, insecureRegistry: argv['insecure-registry'] });
  if (!flags.success) throw new C2vError('usage', formatIssues(flags.error));
  return { init: flags.data.init, platform: parsePlatform(flags.data.platform), insecureRegistries: flags.data.insecureRegistry ?? [] };
}
