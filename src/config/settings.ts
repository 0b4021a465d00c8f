import { z } from 'zod';
import { parseSize } from './size.js';
import { DEFAULT_COMPRESS_LEVEL } from '../formats/vmdk.js';
import { MANIFEST_DIGESTS } from '../formats/manifest.js';
import { parsePropertyHelp, parsePropertySpec, PropertyError } from '../plan/properties.js';
import { DEFAULT_HW_VERSION, describeHardwareVersions, hardwareVersion, HARDWARE_VERSIONS } from '../plan/vsphere-hardware.js';

/**
 * Every `convert` setting, declared once, as data. The yargs options (and their help, with the real
 * default), the argv-to-settings mapping and the zod schema are all derived from CONVERT_SETTINGS, so a
 * flag, its default and its messages cannot drift apart. A bad value gets the same message wherever it
 * came from, because only the schema judges values: yargs is given neither defaults nor choices.
 */
export interface Setting {
  /** How yargs reads the flag; the schema still judges the value (yargs turns `--cpus abc` into null). */
  readonly type: 'string' | 'number' | 'boolean';
  /** Help text, without the default or the choices: those are appended from the data. */
  readonly describe: string;
  readonly alias?: string;
  /** A closed set: the schema becomes an enum whose message lists the choices. */
  readonly choices?: readonly [string, ...string[]];
  /** Filled in by the schema (not by yargs) when the flag is absent; shown in `--help`. */
  readonly default?: string | number | boolean;
  /** The value's type and refinements, without default or optionality; absent for choices and CLI-only flags. */
  readonly schema?: z.ZodType;
  /** A positional argument of the command: required, so neither optional nor defaulted. */
  readonly positional?: true;
  /** Shapes only what the CLI prints, so it is not a setting of the conversion (absent from the schema). */
  readonly cliOnly?: true;
}

/** Settings keyed by their kebab-case flag name. */
export type SettingsTable = Readonly<Record<string, Setting>>;

/** `disk-size` -> `diskSize`: the schema's key for a flag. */
export type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

export function camelCase<S extends string>(flag: S): CamelCase<S> {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase()) as CamelCase<S>;
}

export const FORMATS = ['ova', 'ovf', 'vmdk', 'raw', 'qcow2', 'netboot'] as const;
export const BOOT_MODES = ['hybrid', 'bios', 'efi'] as const;
export const SCSI_CONTROLLERS = ['pvscsi', 'lsilogic', 'lsilogicsas'] as const;
export const NICS = ['vmxnet3', 'e1000e'] as const;
export const INIT_SYSTEMS = ['auto', 'systemd', 'openrc'] as const;
export const BUILDERS = ['docker', 'kaniko'] as const;
/** `auto` lets the plan choose by --hw-version; the algorithms themselves are the manifest's. */
export const MANIFEST_DIGEST_CHOICES = ['auto', ...MANIFEST_DIGESTS] as const;

const MiB = 1024 * 1024;
/** The table's newest row decides the bounds; the plan then checks them against the chosen --hw-version. */
const NEWEST = HARDWARE_VERSIONS[HARDWARE_VERSIONS.length - 1];
const MAX_CPUS = NEWEST.maxCpus;
const MAX_MEMORY_MIB = NEWEST.maxMemoryGB * 1024;

const sizeOrAuto = z.union([z.literal('auto'), z.string(), z.number()]).transform((v, ctx) => {
  if (v === 'auto') return 'auto' as const;
  const bytes = typeof v === 'number' ? v : parseSize(v);
  if (bytes === undefined || bytes <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a size: use a number with a unit, like 4G or 2048M, or "auto"` });
    return z.NEVER;
  }
  // Disks are planned in whole MiB; round up so "1.5G" and byte counts both work.
  return Math.ceil(bytes / MiB) * MiB;
});

/** A JSON array of strings, or plain words separated by spaces (no shell quoting: use JSON for that). */
export function parseCommand(text: string): string[] | undefined {
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      const v: unknown = JSON.parse(t);
      return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
    } catch {
      return undefined;
    }
  }
  const words = t.split(/\s+/).filter(Boolean);
  return words.length ? words : undefined;
}

const command = z
  .string()
  .min(1, '--cmd must not be empty')
  .transform((v, ctx) => {
    const argv = parseCommand(v);
    if (!argv) {
      ctx.addIssue({ code: 'custom', message: '--cmd must be a JSON array of strings (["app","--port","80"]) or words separated by spaces' });
      return z.NEVER;
    }
    return argv;
  });

/** A repeatable flag: one value or several, each parsed; a parse error becomes the flag's message. */
function repeated<T>(parse: (text: string) => T) {
  return z.union([z.string(), z.array(z.string())]).transform((v, ctx) => {
    const out: T[] = [];
    for (const text of Array.isArray(v) ? v : [v]) {
      try {
        out.push(parse(text));
      } catch (e) {
        if (!(e instanceof PropertyError)) throw e;
        ctx.addIssue({ code: 'custom', message: e.message });
        return z.NEVER;
      }
    }
    return out;
  });
}

/** In `--help` order; the schema keeps the same order. */
export const CONVERT_SETTINGS = {
  input: {
    positional: true,
    type: 'string',
    describe:
      "A Dockerfile, a build context, or an image: REF (the engine's, pulled when missing; a registry's when no engine answers), docker-daemon:REF, docker://REF, docker-archive:FILE[:TAG], oci-archive:FILE[:NAME], oci:DIR[:NAME]",
    schema: z.string().min(1, 'say what to convert: a Dockerfile, a build context directory or an image reference'),
  },
  output: {
    alias: 'o',
    type: 'string',
    describe: 'Output path (default: <name>.ova, or the folder <name>/ for --format ovf, <name>-netboot/ for --format netboot)',
    schema: z.string().min(1),
  },
  format: { type: 'string', describe: 'What to write', choices: FORMATS, default: 'ova' },
  boot: { type: 'string', describe: 'Boot code to install (EFI firmware unless bios)', choices: BOOT_MODES, default: 'hybrid' },
  'secure-boot': {
    type: 'boolean',
    describe: "Boot EFI through the distribution's Microsoft-signed shim, signed GRUB and signed kernel (Debian, Ubuntu), with Secure Boot on in the OVF",
    default: false,
    schema: z.boolean(),
  },
  name: {
    type: 'string',
    describe: 'VM name (default: from the image or build context)',
    schema: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, '--name must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit'),
  },
  cpus: {
    type: 'number',
    describe: 'Virtual CPUs',
    default: 1,
    schema: z.coerce.number({ message: '--cpus must be a number' }).int('--cpus must be a whole number').min(1, '--cpus must be at least 1').max(MAX_CPUS, `--cpus must be at most ${MAX_CPUS} (what the newest hardware version allows)`),
  },
  memory: {
    type: 'number',
    describe: 'Memory in MiB',
    default: 1024,
    schema: z.coerce
      .number({ message: '--memory must be a number of MiB' })
      .int('--memory must be a whole number of MiB')
      .min(128, '--memory must be at least 128 (MiB)')
      .max(MAX_MEMORY_MIB, `--memory must be at most ${MAX_MEMORY_MIB} (MiB; what the newest hardware version allows)`),
  },
  'disk-size': { type: 'string', describe: 'Virtual disk size, like 8G, or auto (content plus headroom)', default: 'auto', schema: sizeOrAuto },
  network: { type: 'string', describe: 'Name of the network the NIC connects to', default: 'VM Network', schema: z.string().min(1, '--network must not be empty') },
  scsi: { type: 'string', describe: 'Disk controller', choices: SCSI_CONTROLLERS, default: 'pvscsi' },
  nic: { type: 'string', describe: 'Network adapter', choices: NICS, default: 'vmxnet3' },
  product: {
    type: 'string',
    describe: 'Product name the deploy wizard shows (default: the image label org.opencontainers.image.title, else --name)',
    schema: z.string().min(1, '--product must not be empty'),
  },
  vendor: { type: 'string', describe: 'Vendor the deploy wizard shows (default: the label org.opencontainers.image.vendor)', schema: z.string().min(1, '--vendor must not be empty') },
  'product-version': {
    type: 'string',
    describe: 'Version the deploy wizard shows (default: the label org.opencontainers.image.version)',
    schema: z.string().min(1, '--product-version must not be empty'),
  },
  'product-url': {
    type: 'string',
    describe: 'Product URL the deploy wizard shows (default: the label org.opencontainers.image.url)',
    schema: z.string().min(1, '--product-url must not be empty'),
  },
  eula: { type: 'string', describe: 'A text file of the license the deploy wizard makes the admin accept (an OVF EulaSection)', schema: z.string().min(1, '--eula must name a file') },
  serial: {
    type: 'boolean',
    describe: 'Add a serial port to the VM (not connected at power on: choose its backing, such as a network serial port, in vSphere)',
    default: false,
    schema: z.boolean(),
  },
  'hw-version': {
    type: 'number',
    describe: 'Virtual hardware version (vmx-NN)',
    default: DEFAULT_HW_VERSION,
    schema: z.coerce
      .number({ message: '--hw-version must be a number' })
      .refine((v) => hardwareVersion(v) !== undefined, `--hw-version must be an ESXi hardware version: ${describeHardwareVersions()} (12 and 16 are Workstation versions ESXi rejects)`),
  },
  'manifest-digest': {
    type: 'string',
    describe: 'Digest of the .mf manifest: auto (SHA1 below --hw-version 13, whose ESXi 5.5/6.0 clients reject SHA256; else SHA256)',
    choices: MANIFEST_DIGEST_CHOICES,
    default: 'auto',
  },
  sign: {
    type: 'string',
    describe: 'An RSA private key (PEM, unencrypted) to sign the OVA or OVF folder with: a .cert member vSphere checks on import; needs --cert',
    schema: z.string().min(1, '--sign must name a private key file'),
  },
  cert: {
    type: 'string',
    describe: "The --sign key's certificate (PEM), followed by any intermediate CA certificates, so vSphere can show the publisher",
    schema: z.string().min(1, '--cert must name a certificate file'),
  },
  'root-url': {
    type: 'string',
    describe: "--format netboot: the http:// URL the initramfs fetches root.squashfs from (default: http://<the server that gave out boot.ipxe>/root.squashfs)",
    schema: z
      .string()
      .regex(/^http:\/\/[^\s/$?#]+(\/[^\s$]*)?$/, '--root-url must be an http:// URL, like http://boot.lan/app/root.squashfs (the initramfs fetches it with busybox wget, which speaks plain HTTP; the digest on the kernel command line protects it)'),
  },
  'compress-level': {
    type: 'number',
    describe: 'Deflate level of the VMDK grains, 1-9 (higher: smaller, slower)',
    default: DEFAULT_COMPRESS_LEVEL,
    schema: z.coerce.number({ message: '--compress-level must be a number' }).int().min(1, '--compress-level must be 1-9').max(9, '--compress-level must be 1-9'),
  },
  pull: { type: 'boolean', describe: 'Pull the image when it is not present locally (--no-pull to refuse)', default: true, schema: z.boolean() },
  builder: {
    type: 'string',
    describe: 'What builds Dockerfiles and adds packages: the Docker engine, or kaniko run as a container of it (base images from registries only)',
    choices: BUILDERS,
    default: 'docker',
  },
  'kaniko-image': {
    type: 'string',
    describe: 'The kaniko executor image for --builder kaniko (default: $C2V_KANIKO_IMAGE, else gcr.io/kaniko-project/executor:v1.24.0)',
    schema: z.string().min(1, '--kaniko-image must name an image'),
  },
  platform: {
    type: 'string',
    describe: 'The image to take from a multi-platform index (registry, OCI layout), as os/architecture[/variant]',
    default: 'linux/amd64',
    schema: z.string().regex(/^[a-z0-9_-]+\/[a-z0-9_-]+(\/[a-z0-9_.-]+)?$/, '--platform must be os/architecture[/variant], like linux/amd64'),
  },
  'insecure-registry': {
    type: 'string',
    describe: 'A registry (host[:port]) to reach over plain HTTP; repeat for more (loopback ones always may)',
    schema: z
      .union([z.string(), z.array(z.string())])
      .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((h) => h.split(',')).map((h) => h.trim()).filter(Boolean))
      .refine((hosts) => hosts.every((h) => /^[A-Za-z0-9.-]+(:[0-9]+)?$|^\[[0-9a-fA-F:]+\](:[0-9]+)?$/.test(h)), '--insecure-registry takes host[:port], like registry.lan:5000'),
  },
  init: { type: 'string', describe: 'Init system when c2v adds one', choices: INIT_SYSTEMS, default: 'auto' },
  'app-service': { type: 'boolean', describe: "Run the image's ENTRYPOINT/CMD as a boot service (--no-app-service to skip)", default: true, schema: z.boolean() },
  cmd: { type: 'string', describe: 'Command for the app service instead of ENTRYPOINT+CMD: a JSON array or words', schema: command },
  'ssh-key': {
    type: 'string',
    describe: 'Public key file to authorize for root over SSH (adds openssh-server)',
    schema: z.string().min(1, '--ssh-key must name a public key file'),
  },
  ssh: { type: 'boolean', describe: "Install an SSH server, so that root's keys can be given at deploy time (implied by --ssh-key)", default: false, schema: z.boolean() },
  'guest-agent': {
    type: 'boolean',
    describe: 'Install the QEMU guest agent, for KVM and Proxmox (it starts only where the VM has its virtio port)',
    default: false,
    schema: z.boolean(),
  },
  'cloud-init': {
    type: 'boolean',
    describe: "Install cloud-init (OVF and VMware datasources) instead of c2v's guest agent: deploy-time settings then are cloud-init's OVF properties",
    default: false,
    schema: z.boolean(),
  },
  property: {
    type: 'string',
    describe: "A deploy-time setting for the app, NAME[:TYPE][=DEFAULT] (TYPE string, password, int or bool): an OVF property the app gets as $NAME; repeat for more",
    schema: repeated((t) => parsePropertySpec(t)),
  },
  'property-help': {
    type: 'string',
    describe: 'NAME=TEXT: the description the deploy wizard shows for a --property; repeat for more',
    schema: repeated(parsePropertyHelp),
  },
  'root-password-hash': {
    type: 'string',
    describe: 'crypt(3) hash for root (root stays locked without it)',
    schema: z.string().regex(/^\$[0-9a-z]+\$[^\s:]+$/, '--root-password-hash must be a crypt(3) hash such as the output of `openssl passwd -6`'),
  },
  workdir: { type: 'string', describe: 'Where to stage temporary files (default: beside the output)', schema: z.string() },
  'keep-workdir': { type: 'boolean', describe: 'Keep the staging folder, for debugging', default: false, schema: z.boolean() },
  plan: { type: 'boolean', describe: 'Print what c2v would do (the conversion plan) as JSON and write nothing', default: false, schema: z.boolean() },
  timings: { type: 'boolean', describe: 'Print how long each stage took', cliOnly: true },
} as const satisfies SettingsTable;

export type ConvertSettings = typeof CONVERT_SETTINGS;

type Validator<S extends Setting> = S extends { choices: infer C extends readonly [string, ...string[]] }
  ? z.ZodEnum<{ [V in C[number]]: V }>
  : S extends { schema: infer Z extends z.ZodType }
    ? Z
    : never;

type Field<S extends Setting> = S extends { default: unknown }
  ? z.ZodDefault<Validator<S>>
  : S extends { positional: true }
    ? Validator<S>
    : z.ZodOptional<Validator<S>>;

/** The zod object shape a table declares: camelCase keys, CLI-only flags left out. */
export type SchemaShape<T extends SettingsTable> = {
  -readonly [K in keyof T as T[K] extends { cliOnly: true } ? never : CamelCase<K & string>]: Field<T[K]>;
};

/** The value a setting's flag must have, before defaults; its message names the flag. */
export function validatorOf(flag: string, s: Setting): z.ZodType {
  if (s.choices) return z.enum(s.choices, { message: `--${flag} must be one of: ${s.choices.join(', ')}` });
  if (s.schema) return s.schema;
  throw new Error(`setting --${flag} declares neither choices nor a schema`);
}

/** A setting's schema field: its validator, defaulted or optional as declared. */
export function fieldOf(flag: string, s: Setting): z.ZodType {
  const v = validatorOf(flag, s);
  if (s.default !== undefined) return (v as z.ZodType<unknown>).default(s.default);
  return s.positional ? v : v.optional();
}

export function schemaShape<T extends SettingsTable>(table: T): SchemaShape<T> {
  const shape: Record<string, z.ZodType> = {};
  for (const [flag, s] of Object.entries(table)) {
    if (!s.cliOnly) shape[camelCase(flag)] = fieldOf(flag, s);
  }
  return shape as SchemaShape<T>;
}

/**
 * The schema's input from parsed flags: camelCase keys, and only the flags that were given, so the
 * schema alone fills in defaults (a config file could then sit between the two).
 */
export function settingsInput(table: SettingsTable, flags: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [flag, s] of Object.entries(table)) {
    if (!s.cliOnly && flags[flag] !== undefined) input[camelCase(flag)] = flags[flag];
  }
  return input;
}
