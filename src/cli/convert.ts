import type { Argv } from 'yargs';
import { C2vError } from '../errors.js';
import { convertSchema, formatIssues, BOOT_MODES, FORMATS, NICS, SCSI_CONTROLLERS, type ConvertInput } from '../config/schema.js';
import { formatSize } from '../config/size.js';
import { DockerEngine } from '../adapters/docker.js';
import { convert } from '../pipeline.js';
import type { Reporter } from '../progress.js';
import { JsonReporter, PlainReporter, SpinnerReporter } from './reporters.js';
import type { GlobalFlags } from './global.js';

/** The flags of `convert`, as data: name, type, help. Defaults live in the zod schema alone. */
const FLAGS = {
  output: { alias: 'o', type: 'string', describe: 'Output path (default: <name>.ova, or <name>/ for --format ovf)' },
  format: { type: 'string', describe: `What to write: ${FORMATS.join(' | ')} [default: ova]` },
  boot: { type: 'string', describe: `Boot code to install: ${BOOT_MODES.join(' | ')}; the OVF declares EFI firmware unless bios [default: hybrid]` },
  name: { type: 'string', describe: 'VM name (default: from the image or build context)' },
  cpus: { type: 'number', describe: 'Virtual CPUs [default: 1]' },
  memory: { type: 'number', describe: 'Memory in MiB [default: 1024]' },
  'disk-size': { type: 'string', describe: 'Virtual disk size, like 8G, or auto (content plus headroom) [default: auto]' },
  network: { type: 'string', describe: 'Name of the network the NIC connects to [default: "VM Network"]' },
  scsi: { type: 'string', describe: `Disk controller: ${SCSI_CONTROLLERS.join(' | ')} [default: pvscsi]` },
  nic: { type: 'string', describe: `Network adapter: ${NICS.join(' | ')} [default: vmxnet3]` },
  'hw-version': { type: 'number', describe: 'Virtual hardware version (vmx-NN; 14 = ESXi 6.7) [default: 14]' },
  'compress-level': { type: 'number', describe: 'Deflate level of the VMDK grains, 1-9 (higher: smaller, slower) [default: 5]' },
  pull: { type: 'boolean', describe: 'Pull the image when it is not present locally (--no-pull to refuse) [default: true]' },
  init: { type: 'string', describe: 'Init system when c2v adds one: auto | systemd | openrc [default: auto]' },
  'app-service': { type: 'boolean', describe: "Run the image's ENTRYPOINT/CMD as a boot service (--no-app-service to skip) [default: true]" },
  cmd: { type: 'string', describe: 'Command for the app service instead of ENTRYPOINT+CMD: a JSON array or words' },
  'ssh-key': { type: 'string', describe: 'Public key file to authorize for root over SSH (adds openssh-server)' },
  'root-password-hash': { type: 'string', describe: 'crypt(3) hash for root (root stays locked without it)' },
  workdir: { type: 'string', describe: 'Where to stage temporary files (default: beside the output)' },
  'keep-workdir': { type: 'boolean', describe: 'Keep the staging folder, for debugging' },
  timings: { type: 'boolean', describe: 'Print how long each stage took' },
} as const;

export function convertCommand(y: Argv<GlobalFlags>) {
  return y.command(
    'convert <input>',
    'Convert a Dockerfile, build context or image into a bootable OVA',
    (b) =>
      b
        .positional('input', { type: 'string', describe: 'A Dockerfile, a build context directory, or an image reference' })
        .options(FLAGS)
        .strict()
        .example('$0 convert ./Dockerfile', 'build and convert')
        .example('$0 convert myapp:1.4 -o dist/myapp.ova --cpus 2 --memory 2048', 'convert a local image'),
    async (argv) => {
      const raw: ConvertInput = {
        input: argv.input as string,
        output: argv.output,
        format: argv.format as ConvertInput['format'],
        boot: argv.boot as ConvertInput['boot'],
        name: argv.name,
        cpus: argv.cpus,
        memory: argv.memory,
        diskSize: argv['disk-size'],
        network: argv.network,
        scsi: argv.scsi as ConvertInput['scsi'],
        nic: argv.nic as ConvertInput['nic'],
        hwVersion: argv['hw-version'],
        compressLevel: argv['compress-level'],
        pull: argv.pull,
        init: argv.init as ConvertInput['init'],
        appService: argv['app-service'],
        cmd: argv.cmd,
        sshKey: argv['ssh-key'],
        rootPasswordHash: argv['root-password-hash'],
        workdir: argv.workdir,
        keepWorkdir: argv['keep-workdir'],
      };
      const parsed = convertSchema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
      if (!parsed.success) throw new C2vError('usage', formatIssues(parsed.error));
      const reporter: Reporter = argv.json ? new JsonReporter() : process.stderr.isTTY ? new SpinnerReporter(argv.verbose) : new PlainReporter(argv.verbose);
      const engine = new DockerEngine();
      await engine.ping();
      const result = await convert(parsed.data, engine, reporter);
      if (argv.json) {
        JsonReporter.emit({ event: 'result', ...result });
        return;
      }
      process.stderr.write(`Wrote ${result.output} (${formatSize(result.artifactBytes)}; disk ${formatSize(result.diskBytes)}; kernel ${result.kernel})\n`);
      if (argv.timings) {
        const total = result.timings.reduce((s, t) => s + t.seconds, 0);
        process.stderr.write('Stage timings:\n');
        for (const t of result.timings) process.stderr.write(`  ${t.stage.padEnd(11)} ${t.seconds.toFixed(2).padStart(8)} s\n`);
        process.stderr.write(`  ${'total'.padEnd(11)} ${total.toFixed(2).padStart(8)} s\n`);
      }
    },
  );
}
