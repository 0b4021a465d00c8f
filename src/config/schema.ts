import { z } from 'zod';
import { parseSize } from './size.js';
import { DEFAULT_COMPRESS_LEVEL } from '../formats/vmdk.js';

/**
 * Every `convert` setting, declared once: the CLI flags, their help and defaults, and a config file all
 * go through this schema, so a bad value gets the same message wherever it came from.
 */
const MiB = 1024 * 1024;

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

export const FORMATS = ['ova', 'ovf', 'vmdk', 'raw'] as const;
export const BOOT_MODES = ['hybrid', 'bios', 'efi'] as const;
export const SCSI_CONTROLLERS = ['pvscsi', 'lsilogic', 'lsilogicsas'] as const;
export const NICS = ['vmxnet3', 'e1000e'] as const;

export const convertSchema = z
  .object({
    input: z.string().min(1, 'say what to convert: a Dockerfile, a build context directory or an image reference'),
    output: z.string().min(1).optional(),
    format: z.enum(FORMATS, { message: `--format must be one of: ${FORMATS.join(', ')}` }).default('ova'),
    boot: z.enum(BOOT_MODES, { message: `--boot must be one of: ${BOOT_MODES.join(', ')}` }).default('hybrid'),
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, '--name must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit')
      .optional(),
    cpus: z.coerce.number({ message: '--cpus must be a number' }).int('--cpus must be a whole number').min(1, '--cpus must be at least 1').max(128, '--cpus must be at most 128').default(1),
    memory: z.coerce.number({ message: '--memory must be a number of MiB' }).int('--memory must be a whole number of MiB').min(128, '--memory must be at least 128 (MiB)').max(1048576, '--memory must be at most 1048576 (MiB)').default(1024),
    diskSize: sizeOrAuto.default('auto'),
    network: z.string().min(1, '--network must not be empty').default('VM Network'),
    scsi: z.enum(SCSI_CONTROLLERS, { message: `--scsi must be one of: ${SCSI_CONTROLLERS.join(', ')}` }).default('pvscsi'),
    nic: z.enum(NICS, { message: `--nic must be one of: ${NICS.join(', ')}` }).default('vmxnet3'),
    hwVersion: z.coerce.number({ message: '--hw-version must be a number' }).int().min(10, '--hw-version must be 10 or newer (vmx-10 = ESXi 5.5)').max(21, '--hw-version must be 21 or older').default(14),
    compressLevel: z.coerce.number({ message: '--compress-level must be a number' }).int().min(1, '--compress-level must be 1-9').max(9, '--compress-level must be 1-9').default(DEFAULT_COMPRESS_LEVEL),
    pull: z.boolean().default(true),
    init: z.enum(['auto', 'systemd', 'openrc'], { message: '--init must be one of: auto, systemd, openrc' }).default('auto'),
    appService: z.boolean().default(true),
    cmd: z
      .string()
      .min(1, '--cmd must not be empty')
      .transform((v, ctx) => {
        const argv = parseCommand(v);
        if (!argv) {
          ctx.addIssue({ code: 'custom', message: '--cmd must be a JSON array of strings (["app","--port","80"]) or words separated by spaces' });
          return z.NEVER;
        }
        return argv;
      })
      .optional(),
    sshKey: z.string().min(1, '--ssh-key must name a public key file').optional(),
    rootPasswordHash: z
      .string()
      .regex(/^\$[0-9a-z]+\$[^\s:]+$/, '--root-password-hash must be a crypt(3) hash such as the output of `openssl passwd -6`')
      .optional(),
    workdir: z.string().optional(),
    keepWorkdir: z.boolean().default(false),
  })
  .strict();

export type ConvertInput = z.input<typeof convertSchema>;
export type ConvertOptions = z.output<typeof convertSchema>;

/** One line per problem, each naming the setting, so a person can fix them all at once. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') return `unknown setting(s): ${i.keys.join(', ')}`;
      const key = i.path.join('.');
      return i.message.includes(`--`) || !key ? i.message : `${key}: ${i.message}`;
    })
    .join('; ');
}

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
