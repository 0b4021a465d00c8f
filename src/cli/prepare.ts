import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { backendsFor } from '../adapters/backends.js';
import { loadTemplates } from '../adapters/templates.js';
import { prepareContext } from '../stages/prepare.js';
import type { Platform } from '../formats/oci/manifest.js';
import { classifyInput } from '../stages/input.js';
import { JsonReporter } from './reporters.js';
import type { GlobalFlags } from './global.js';
import { imageFlags, parseImageFlags } from './image-flags.js';

export function prepareCommand(y: Argv<GlobalFlags>) {
  return y.command(
    'prepare <input>',
    "Write a build context that adds what a VM needs (kernel, init, networking) to a Dockerfile's image or an image, for any builder",
    (b) =>
      imageFlags(b)
        .positional('input', { type: 'string', describe: 'A Dockerfile, a build context directory, or a registry image reference' })
        .option('output', { alias: 'o', type: 'string', demandOption: 'say where to write the context: -o DIR', describe: 'The folder to write (new, or empty)' })
        .option('ssh', { type: 'boolean', default: false, describe: 'Also install an SSH server (for convert --ssh-key)' })
        .option('cloud-init', { type: 'boolean', default: false, describe: 'Also install cloud-init (for convert --cloud-init)' })
        .option('secure-boot', { type: 'boolean', default: false, describe: "Also install the distribution's signed shim and GRUB (for convert --secure-boot)" })
        .option('guest-agent', { type: 'boolean', default: false, describe: 'Also install the QEMU guest agent (for convert --guest-agent)' })
        .option('netboot', { type: 'boolean', default: false, describe: 'Also install busybox, which the network boot step runs in the initramfs (for convert --format netboot)' })
        .strict(),
    async (argv) => {
      const flags = parseImageFlags(argv);
      const input = await classifyInput(argv.input as string, { pull: false });
      const result = await prepareContext({
        input,
        output: argv.output as string,
        init: flags.init,
        ssh: Boolean(argv.ssh),
        cloudInit: Boolean(argv.cloudInit),
        secureBoot: Boolean(argv.secureBoot),
        guestAgent: Boolean(argv.guestAgent),
        netboot: Boolean(argv.netboot),
        templates: await loadTemplates(),
        userOf: (ref) => imageUser(ref, flags.platform, flags.insecureRegistries),
      });
      const dir = result.dir;
      const tar = `${dir.replace(/\/+$/, '')}.tar`;
      const commands = {
        kaniko: `/kaniko/executor --context dir://${dir} --dockerfile ${path.join(dir, 'Dockerfile')} --no-push --destination c2v.invalid/appliance:latest --tar-path ${tar}`,
        buildah: `buildah bud -f ${path.join(dir, 'Dockerfile')} -t appliance ${dir} && buildah push appliance docker-archive:${tar}`,
        convert: `c2v convert docker-archive:${tar}`,
      };
      if (argv.json) {
        JsonReporter.emit({ event: 'prepared', ...result, commands });
        return;
      }
      process.stderr.write(
        [
          `Wrote ${dir}: its Dockerfile adds c2v's packages stage after ${input.kind === 'dockerfile' ? `the stage ${result.base}` : result.base}, as USER ${result.user} afterwards (${result.userFrom}).`,
          'Build it with any builder, then convert the result without one:',
          `  ${commands.kaniko}`,
          `  ${commands.buildah}`,
          `  ${commands.convert}`,
          '',
        ].join('\n'),
      );
    },
  );
}

/**
 * The USER of an image outside the Dockerfile, when the engine holds it. A registry is not asked: that would
 * download the image, and prepare is meant to be quick and to work offline. Undefined when the engine cannot say;
 * the caller then says the app runs as root (most images do), and a USER line in the Dockerfile settles it.
 */
async function imageUser(ref: string, platform: Platform, insecureRegistries: string[]): Promise<string | undefined> {
  const input = await classifyInput(`docker-daemon:${ref}`, { pull: false }).catch(() => undefined);
  if (!input || input.kind !== 'image') return undefined;
  const backends = await backendsFor(input, { platform, insecureRegistries, workParent: os.tmpdir() }).catch(() => undefined);
  if (!backends) return undefined;
  try {
    return (await backends.source.inspect(input.ref).catch(() => undefined))?.config.user;
  } finally {
    await backends.close?.();
  }
}
