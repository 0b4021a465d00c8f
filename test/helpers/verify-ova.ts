import { writeFileSync } from 'node:fs';
import { buildOvf } from '../../src/plan/ovf.js';
import type { OvfProperty } from '../../src/plan/properties.js';
import { ovaBytes } from './ova-writer.js';

const prop = (key: string, type: OvfProperty['type'], value: string, password = false): OvfProperty => ({ key, type, value, password, label: key, description: key, category: 'Test' });

/** c2v's own OVF for a small VM with four properties: a string, a password, an int and a boolean. */
export const PROPERTIES_OVF = buildOvf({
  name: 'app',
  disk: { fileName: 'app-disk1.vmdk', fileBytes: 1024, capacityBytes: 2 ** 30 },
  cpus: 1,
  memoryMiB: 512,
  firmware: 'bios',
  os: { cimId: 96, vmwOsType: 'debian11_64Guest', description: 'Debian GNU/Linux 12 (bookworm)' },
  vmxVersion: 14,
  properties: [prop('c2v.hostname', 'string', ''), prop('c2v.root_password', 'string', '', true), prop('app.PORT', 'int', '8080'), prop('app.DEBUG', 'boolean', 'false')],
});

export function writeOva(file: string, disk: Buffer, ovf = PROPERTIES_OVF): string {
  writeFileSync(file, ovaBytes([{ name: 'app.ovf', data: Buffer.from(ovf) }, { name: 'app-disk1.vmdk', data: disk }]));
  return file;
}
