import type { Argv } from 'yargs';
import { C2vError } from '../errors.js';
import { formatSize } from '../config/size.js';
import { CONVERT_SETTINGS } from '../config/settings.js';
import { convertSchema, formatIssues } from '../config/schema.js';
import { DockerEngine } from '../adapters/docker.js';
import { inspectImage } from '../commands/inspect.js';
import { JsonReporter } from './reporters.js';
import type { GlobalFlags } from './global.js';
import { flagOption } from './flags.js';

export function inspectCommand(y: Argv<GlobalFlags>) {
  return y.command(
    'inspect <image>',
    'Show what c2v sees in an image (distribution, kernel, init, app command, ports) and what convert would add',
    (b) =>
      b
        .positional('image', { type: 'string', describe: 'A local image reference' })
        .option('init', flagOption(CONVERT_SETTINGS.init))
        .strict(),
    async (argv) => {
      const init = convertSchema.shape.init.safeParse(argv.init);
      if (!init.success) throw new C2vError('usage', formatIssues(init.error));
      const engine = new DockerEngine();
      await engine.ping();
      const r = await inspectImage(engine, argv.image as string, init.data);
      if (argv.json) {
        JsonReporter.emit({ event: 'inspect', ...r });
        return;
      }
      const adds = Array.isArray(r.adds) ? (r.adds.length ? r.adds.join(', ') : 'nothing (already a VM image)') : `cannot convert: ${r.adds.error}`;
      const rows: [string, string][] = [
        ['image', `${r.image} (${r.id.slice(0, 19)}, ${r.architecture}, ${formatSize(r.sizeBytes)})`],
        ['distribution', `${r.distribution} [${r.family}]`],
        ['kernel', r.kernel ? 'yes' : 'no'],
        ['init', r.init],
        ['command', r.command.length ? JSON.stringify(r.command) : '(none)'],
        ['app service', r.appService ? 'yes' : 'no (an init or a bare shell)'],
        ['user / workdir', `${r.user} / ${r.workingDir}`],
        ['exposed ports', r.exposedPorts.join(', ') || '(none)'],
        ['convert adds', adds],
      ];
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(15)} ${v}\n`);
    },
  );
}
