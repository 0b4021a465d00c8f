import { describe, expect, it } from 'vitest';
import { convertSchema, formatIssues } from '../../src/config/schema.js';
import { formatSize, parseSize } from '../../src/config/size.js';

describe('sizes', () => {
  it('parses binary units', () => {
    expect(parseSize('8G')).toBe(8 * 1024 ** 3);
    expect(parseSize('512MiB')).toBe(512 * 1024 ** 2);
    expect(parseSize('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('8 parsecs')).toBeUndefined();
    expect(parseSize('-1G')).toBeUndefined();
    expect(formatSize(1536 * 1024 ** 2)).toBe('1.50 GiB');
  });
});

describe('convert settings', () => {
  it('fills defaults', () => {
    const o = convertSchema.parse({ input: 'myapp:1.4' });
    expect(o).toMatchObject({ format: 'ova', boot: 'hybrid', cpus: 1, memory: 1024, diskSize: 'auto', network: 'VM Network', scsi: 'pvscsi', nic: 'vmxnet3', hwVersion: 14, compressLevel: 5, pull: true });
  });

  it('rounds disk sizes up to whole MiB', () => {
    expect(convertSchema.parse({ input: 'x', diskSize: '1000000000' }).diskSize).toBe(954 * 1024 ** 2);
    expect(convertSchema.parse({ input: 'x', diskSize: '2G' }).diskSize).toBe(2 * 1024 ** 3);
  });

  it('reports every problem at once, each naming its flag', () => {
    const r = convertSchema.safeParse({ input: 'x', format: 'zip', boot: 'floppy', cpus: 0, diskSize: 'big', name: '-bad', colour: 'red' });
    expect(r.success).toBe(false);
    const text = formatIssues(r.error!);
    expect(text).toContain('--format must be one of: ova, ovf, vmdk, raw, qcow2');
    expect(text).toContain('--boot must be one of: hybrid, bios, efi');
    expect(text).toContain('--cpus must be at least 1');
    expect(text).toContain('"big" is not a size');
    expect(text).toContain('--name must be');
    expect(text).toContain('unknown setting(s): colour');
  });
});
