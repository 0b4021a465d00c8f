import type { Argv } from 'yargs';
import { C2vError } from '../errors.js';
import { convertSchema, formatIssues } from '../config/schema.js';
import { formatSize } from '../config/size.js';
import { backendsFor } from '../adapters/backends.js';
import { convert, planConvert } from '../pipeline.js';
import type { Reporter } from '../progress.js';
import { JsonReporter, PlainReporter, SpinnerReporter } from './reporters.js';
import type { GlobalFlags } from './global.js';
import { CONVERT_COMMAND, CONVERT_DESCRIPTION, convertBuilder, convertInput } from './convert-flags.js';

export function convertCommand(y: Argv<GlobalFlags>) {
  return y.command(
    CONVERT_COMMAND,
    CONVERT_DESCRIPTION,
    convertBuilder,
    async (argv) => {
      const parsed = convertSchema.safeParse(convertInput(argv));
      if (!parsed.success) throw new C2vError('usage', formatIssues(parsed.error));
      const reporter: Reporter = argv.json ? new JsonReporter() : process.stderr.isTTY ? new SpinnerReporter(argv.verbose) : new PlainReporter(argv.verbose);
      if (parsed.data.plan) {
        const plan = await planConvert(parsed.data, backendsFor, reporter);
        if (argv.json) JsonReporter.emit({ event: 'plan', plan });
        else process.stdout.write(`${JSON.stringify(plan, null, 2)}\n`);
        return;
      }
      const result = await convert(parsed.data, backendsFor, reporter);
      if (argv.json) {
        JsonReporter.emit({ event: 'result', ...result });
        return;
      }
      const disk = result.format === 'netboot' ? `root image ${formatSize(result.diskBytes)}` : `disk ${formatSize(result.diskBytes)}`;
      process.stderr.write(`Wrote ${result.output} (${formatSize(result.artifactBytes)}; ${disk}; kernel ${result.kernel})\n`);
      if (argv.timings) {
        const total = result.timings.reduce((s, t) => s + t.seconds, 0);
        process.stderr.write('Stage timings:\n');
        for (const t of result.timings) process.stderr.write(`  ${t.stage.padEnd(11)} ${t.seconds.toFixed(2).padStart(8)} s\n`);
        process.stderr.write(`  ${'total'.padEnd(11)} ${total.toFixed(2).padStart(8)} s\n`);
      }
    },
  );
}
