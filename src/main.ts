import createDebug from 'debug';
import { hideBin } from 'yargs/helpers';
import { C2vError, isC2vError } from './errors.js';
import { drainCleanups, drainCleanupsSync } from './adapters/cleanup.js';
import { convertCommand } from './cli/convert.js';
import { verifyCommand } from './cli/verify.js';
import { inspectCommand } from './cli/inspect.js';
import { prepareCommand } from './cli/prepare.js';
import { JsonReporter } from './cli/reporters.js';
import { createParser } from './cli/global.js';

const argvList = hideBin(process.argv);
const wantsDebug = argvList.includes('--debug');
const wantsJson = argvList.includes('--json');
if (wantsDebug) createDebug.enable(process.env.DEBUG ? `${process.env.DEBUG},c2v:*` : 'c2v:*');

/** The one place that decides what the user sees and which exit code follows. */
function report(e: unknown): number {
  const code = (e as NodeJS.ErrnoException)?.code;
  const err = isC2vError(e)
    ? e
    : code === 'ENOSPC' || code === 'EDQUOT'
      ? new C2vError('space', `out of disk space (${(e as Error).message}): free space where the output and --workdir are`, { cause: e })
      : new C2vError('internal', `internal error: ${(e as Error)?.message ?? String(e)} (run with --debug for details)`, { cause: e });
  if (wantsJson) JsonReporter.emit({ event: 'error', code: err.code, message: err.message });
  process.stderr.write(`c2v: ${err.message}\n`);
  if (wantsDebug) {
    if (err.detail) process.stderr.write(`${err.detail}\n`);
    const cause = err.cause ?? err;
    process.stderr.write(`${(cause as Error)?.stack ?? String(cause)}\n`);
  }
  return err.exitCode;
}

let interrupted = false;
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(code);
    interrupted = true;
    process.stderr.write(`\nc2v: interrupted (${signal}); cleaning up\n`);
    void drainCleanups().finally(() => process.exit(code));
  });
}
process.on('exit', () => drainCleanupsSync());

async function main(): Promise<number> {
  const parser = createParser(argvList);
  convertCommand(parser);
  verifyCommand(parser);
  inspectCommand(parser);
  prepareCommand(parser);
  try {
    await parser.parseAsync();
  } catch (e) {
    return report(e);
  }
  return 0;
}

main().then(
  async (code) => {
    await drainCleanups();
    process.exitCode = code;
  },
  (e) => {
    process.exitCode = report(e);
  },
);
