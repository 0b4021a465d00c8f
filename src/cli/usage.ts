import { CONVERT_COMMAND, CONVERT_DESCRIPTION, convertBuilder } from './convert-flags.js';
import { createParser, HELP_WIDTH } from './global.js';

/** The text of `c2v convert --help` at a fixed width, as README.md shows it. */
export function convertHelp(width = HELP_WIDTH): Promise<string> {
  const parser = createParser([]).exitProcess(false).wrap(width).command(CONVERT_COMMAND, CONVERT_DESCRIPTION, convertBuilder);
  return new Promise((resolve, reject) => {
    void parser.parse(['convert', '--help'], {}, (err, _argv, output) => (err ? reject(err) : resolve(output)));
  });
}
