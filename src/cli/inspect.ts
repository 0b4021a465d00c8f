import type { Argv } from 'yargs';
import { C2vError } from '../errors.js';
import { formatSize } from '../config/size.js';
import os from 'node:os';
import { backendsFor } from '../adapters/backends.js';
import { classifyInput } from '../stages/input.js';
import { inspectImage } from '../commands/inspect.js';
import { JsonReporter } from './reporters.js';
import type { GlobalFlags } from './global.js';
import { imageFlags, parseImageFlags } from './image-flags.js';

export function inspectCommand(y: Argv<GlobalFlags>) {
  return y.command(
    'inspect <image>',
    'Show what c2v sees in an image (distribution, kernel, init, app command, ports) and what convert would add',
    (b) =>
      imageFlags(b)
        .positional('image', { type: 'string', describe: 'An image, in any form convert takes (REF, docker-archive:FILE, oci:DIR, docker://REF, ...)' })
        .strict(),
    async (argv) => {
      const flags = parseImageFlags(argv);
      const input = await classifyInput(argv.image as string, { pull: false });
      if (input.kind !== 'image') throw new C2vError('usage', `c2v inspect looks at images, and ${argv.image} is a Dockerfile: build it first, or convert it`);
      const backends = await backendsFor(input, { platform: flags.platform, insecureRegistries: flags.insecureRegistries, workParent: os.tmpdir() });
      let r;
      try {
        r = await inspectImage(backends.source, input.ref, flags.init);
      } finally {
        await backends.close?.();
      }
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
