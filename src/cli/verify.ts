import type { Argv } from 'yargs';
import { z } from 'zod';
import { C2vError } from '../errors.js';
import { formatIssues } from '../config/schema.js';
import { verifyOva } from '../commands/verify.js';
import { JsonReporter } from './reporters.js';
import type { GlobalFlags } from './global.js';

const verifySchema = z
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
  })
  .strict();

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
        })
        .strict(),
    async (argv) => {
      const parsed = verifySchema.safeParse(Object.fromEntries(Object.entries({ ova: argv.ova, firmware: argv.firmware, http: argv.http, timeout: argv.timeout }).filter(([, v]) => v !== undefined)));
      if (!parsed.success) throw new C2vError('usage', formatIssues(parsed.error));
      const o = parsed.data;
      const firmware = o.firmware === 'both' ? (['bios', 'efi'] as const) : ([o.firmware] as const);
      const results = await verifyOva({
        ova: o.ova,
        firmware: [...firmware],
        http: o.http,
        timeoutSeconds: o.timeout,
        onLine: argv.verbose ? (l) => process.stderr.write(`  | ${l}\n`) : undefined,
      });
      for (const r of results) {
        if (argv.json) JsonReporter.emit({ event: 'verified', ...r });
        else
          process.stderr.write(
            `✔ ${r.firmware.toUpperCase()} boot (${r.bus} disk, ${r.nic} NIC, ${r.accel.toUpperCase()}): default target in ${r.bootSeconds.toFixed(1)} s` +
              (r.httpBody !== undefined ? `; HTTP answered after ${r.httpSeconds?.toFixed(1)} s more: ${r.httpBody.trim().slice(0, 80)}` : '') +
              '\n',
          );
      }
    },
  );
}
