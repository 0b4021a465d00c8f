import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './env.js';

/**
 * The DMTF OVF 1.1.1 envelope schema is DMTF's file, not ours, so the project does not carry it: it comes from
 * C2V_OVF_SCHEMA_DIR, else ../shared/ovf-schema/ beside the project (where CI has it). Where neither holds it,
 * only the schema assertions are skipped, each saying so; every other check of the same tests still runs.
 */
export const OVF_SCHEMA_DIR = process.env.C2V_OVF_SCHEMA_DIR ? path.resolve(process.env.C2V_OVF_SCHEMA_DIR) : path.resolve(PROJECT_ROOT, '../shared/ovf-schema');
export const OVF_SCHEMA = path.join(OVF_SCHEMA_DIR, 'dsp8023_1.1.1.xsd');
export const OVF_SCHEMA_PRESENT = existsSync(OVF_SCHEMA);
export const NO_SCHEMA_REASON = `the DMTF OVF schema is not at ${OVF_SCHEMA} (set C2V_OVF_SCHEMA_DIR to the folder holding dsp8023_1.1.1.xsd)`;

let told = false;

/** xmllint's verdict on a file, or undefined (after one line on stderr) when the schema is not here. */
export function validateOvfFile(file: string): { ok: boolean; stderr: string } | undefined {
  if (!OVF_SCHEMA_PRESENT) {
    if (!told) process.stderr.write(`skipping the OVF schema assertion: ${NO_SCHEMA_REASON}\n`);
    told = true;
    return undefined;
  }
  const r = spawnSync('xmllint', ['--noout', '--nonet', '--schema', OVF_SCHEMA, file], { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { ok: r.status === 0 && r.stderr.includes(`${file} validates`), stderr: r.stderr };
}

/** Throws with xmllint's complaint when the file does not validate; skips (saying so) without the schema. */
export function assertOvfValid(file: string): void {
  const v = validateOvfFile(file);
  if (v && !v.ok) throw new Error(`${file} does not validate against the OVF schema: ${v.stderr.trim()}`);
}
