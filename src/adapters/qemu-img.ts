import { run } from './exec.js';

/** The disk's size as its guest sees it, from `qemu-img info`. */
export async function virtualSize(file: string, format?: string): Promise<number> {
  const r = await run('qemu-img', ['info', '--output=json', ...(format ? ['-f', format] : []), file]);
  return (JSON.parse(String(r.stdout)) as { 'virtual-size': number })['virtual-size'];
}

/**
 * A writable qcow2 copy of a VMDK, grown by `bytes` at its end, as when an admin enlarges the disk in vSphere:
 * the partitions stay as they were and the guest finds free space after them. Returns the new virtual size.
 */
export async function growCopy(vmdk: string, out: string, bytes: number): Promise<number> {
  await run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'qcow2', vmdk, out]);
  await run('qemu-img', ['resize', '-f', 'qcow2', out, `+${bytes}`]);
  return virtualSize(out, 'qcow2');
}
