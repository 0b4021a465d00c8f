import yargs, { type Argv } from 'yargs';
import { C2vError } from '../errors.js';

export interface GlobalFlags {
  json: boolean;
  debug: boolean;
  verbose: boolean;
}

/** Flags every command takes; main.ts also peeks at --json and --debug before yargs runs. */
export const GLOBAL_OPTIONS = {
  json: { type: 'boolean', default: false, describe: 'Print progress and the result as JSON lines on stdout' },
  debug: { type: 'boolean', default: false, describe: 'Show debug logs and stack traces' },
  verbose: { alias: 'v', type: 'boolean', default: false, describe: 'Show build and tool output' },
} as const;

/** Help is wrapped at this width when stdout is not a terminal, so README.md can hold the exact text. */
export const HELP_WIDTH = 100;

/** The parser every command is registered on; the README's usage test builds its help from it too. */
export function createParser(args: readonly string[]): Argv<GlobalFlags> {
  return yargs([...args])
    .scriptName('c2v')
    .usage('$0 <command> [options]')
    .options(GLOBAL_OPTIONS)
    .strict()
    .demandCommand(1, 'say what to do: c2v convert <Dockerfile | context dir | image>')
    .recommendCommands()
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? HELP_WIDTH))
    .fail((msg, err) => {
      // Throwing is what stops yargs: a fail handler that returns lets the command run anyway.
      throw err ?? new C2vError('usage', `${msg}; see c2v --help`);
    });
}
