import type { Argv } from 'yargs';
import { z } from 'zod';
import { C2vError } from '../errors.js';
import { formatIssues } from '../config/schema.js';
import { formatSize, parseSize } from '../config/size.js';
import { verifyOva, type VerifyResult } from '../commands/verify.js';
import { JsonReporter } from './reporters.js';
import type { GlobalFlags } from './global.js';

/** `--property KEY=VALUE`, repeatable; the value may hold anything, `=` included. */
const properties = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    for (const p of list) {
      const key = /^([^=\s]+)=/.exec(p)?.[1];
      if (!key) ctx.addIssue({ code: 'custom', message: `--property must be KEY=VALUE, like app.PORT=8080 (got ${JSON.stringify(p)})` });
      else if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `--property ${key} is given twice: give each property once` });
      else seen.add(key);
    }
  })
  .transform((list) => Object.fromEntries(list.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)])));

export const verifySchema = z
  .object({
    ova: z.string().min(1),
    firmware: z.enum(['bios', 'efi', 'both'], { message: '--firmware must be one of: bios, efi, both' }).default('both'),
    http: z
      .string()
      .regex(/^\d{1,5}(:.*)?$/, '--http must be PORT or PORT:TEXT, like 8080 or 8080:hello')
      .transform((v) => {
        const i = v.indexOf(':');
        return i < 0 ? { port: Number(v) } : { port: Number(v.slice(0, i)), text: v.slice(i + 1) || undefined };
      })
      .refine((h) => h.port >= 1 && h.port <= 65535, '--http port must be 1-65535')
      .optional(),
    timeout: z.coerce.number({ message: '--timeout must be a number of seconds' }).int().min(10, '--timeout must be at least 10 (seconds)').default(600),
    ovfEnv: z.string({ message: '--ovf-env must name one file' }).min(1, '--ovf-env must name an OVF environment file (ovf-env.xml)').optional(),
    property: properties.optional(),
    growDisk: z
      .string({ message: '--grow-disk must be given once, as a size like 2G' })
      .transform((v) => parseSize(v) ?? NaN)
      .refine((b) => Number.isFinite(b) && b > 0, '--grow-disk must be a size like 2G or 512M')
      .refine((b) => !Number.isFinite(b) || b % 512 === 0, '--grow-disk must be a whole number of 512-byte sectors, like 2G or 512M')
      .optional(),
  })
  .strict()
  .refine((o) => o.ovfEnv === undefined || o.property === undefined, {
    message: "--ovf-env and --property do not go together: give the whole environment as a file, or values for the OVA's properties",
  });

export type VerifyOptions = z.output<typeof verifySchema>;

/** The flags as the schema takes them: only those given, under the schema's names. */
export function verifyInput(argv: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const given = { ova: argv.ova, firmware: argv.firmware, http: argv.http, timeout: argv.timeout, ovfEnv: argv['ovf-env'], property: argv.property, growDisk: argv['grow-disk'] };
  return Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
}

export function parseVerifyOptions(argv: Readonly<Record<string, unknown>>): VerifyOptions {
  const parsed = verifySchema.safeParse(verifyInput(argv));
  if (!parsed.success) throw new C2vError('usage', formatIssues(parsed.error));
  return parsed.data;
}

function describeResult(r: VerifyResult): string {
  const env = r.ovfEnvironment;
  const extras = [
    env ? `with an OVF environment of ${env.properties} propert${env.properties === 1 ? 'y' : 'ies'}${env.file ? ` (${env.file})` : ''} on a CD-ROM` : '',
    r.disk ? `on the disk grown by ${formatSize(r.disk.grownBy)} to ${formatSize(r.disk.bytes)}` : '',
    r.secureBoot ? 'with Secure Boot enforced (Microsoft keys) and reported on by the kernel' : '',
  ].filter(Boolean);
  const { manifest, files, signedBy } = r.integrity;
  const integrity = manifest ? `; ${files} files match the ${manifest.toUpperCase()} manifest${signedBy ? `, signed by ${signedBy}` : ''}` : '';
  return (
    `✔ ${r.firmware.toUpperCase()} boot (${r.bus} disk, ${r.nic} NIC, ${r.accel.toUpperCase()})${extras.length ? ` ${extras.join(', ')}` : ''}: default target in ${r.bootSeconds.toFixed(1)} s` +
    (r.httpBody !== undefined ? `; HTTP answered after ${r.httpSeconds?.toFixed(1)} s more: ${r.httpBody.trim().slice(0, 80)}` : '') +
    integrity
  );
}

export function verifyCommand(y: Argv<GlobalFlags>) {
  return y.command(
    'verify <ova>',
    'Boot an OVA in QEMU on the hardware its OVF declares and check that it comes up',
    (b) =>
      b
        .positional('ova', { type: 'string', describe: 'The OVA to check' })
        .options({
          firmware: { type: 'string', describe: 'bios | efi | both [default: both]' },
          http: { type: 'string', describe: 'Also require the guest PORT to answer HTTP (with TEXT in the body): PORT[:TEXT]' },
          timeout: { type: 'number', describe: 'Seconds each boot may take [default: 600]' },
          'ovf-env': { type: 'string', describe: 'Hand the guest this OVF environment document (ovf-env.xml) on a CD-ROM, as vSphere does' },
          property: { type: 'string', describe: "KEY=VALUE for one of the OVA's properties (the rest keep their defaults), handed to the guest on a CD-ROM; repeat for more" },
          'grow-disk': { type: 'string', describe: 'Boot a copy of the disk grown by SIZE (like 2G), as when an admin enlarges it in vSphere' },
        })
        .strict(),
    async (argv) => {
      const o = parseVerifyOptions(argv);
      const firmware = o.firmware === 'both' ? (['bios', 'efi'] as const) : ([o.firmware] as const);
      const results = await verifyOva({
        ova: o.ova,
        firmware: [...firmware],
        http: o.http,
        timeoutSeconds: o.timeout,
        ovfEnvFile: o.ovfEnv,
        properties: o.property,
        growBytes: o.growDisk,
        onLine: argv.verbose ? (l) => process.stderr.write(`  | ${l}\n`) : undefined,
      });
      for (const r of results) {
        // The console log is for programmatic callers (JSON drops an undefined member); --verbose streams it.
        if (argv.json) JsonReporter.emit({ event: 'verified', ...r, serial: undefined });
        else process.stderr.write(`${describeResult(r)}\n`);
      }
    },
  );
}
