/**
 * How big the disk is: from the image's bytes before the root filesystem is written, and again from the measured
 * content when an image of many tiny files did not fit what its bytes suggested.
 */
import { C2vError } from '../errors.js';
import { formatSize } from '../config/size.js';
import { planLayout, type DiskLayout } from './layout.js';
import { autoRootBytes, measuredRootSize, minimumRootBytes, type MeasuredContent } from './rootfs.js';
import type { DiskIdentity } from './identity.js';

export type DiskSize = number | 'auto';

function guidsOf(identity: DiskIdentity) {
  return { disk: identity.diskGuid, biosBoot: identity.biosBootGuid, esp: identity.espGuid, root: identity.rootGuid };
}

export function rootPartition(layout: DiskLayout) {
  return layout.partitions.find((p) => p.role === 'root')!;
}

/** The layout for an image of `contentBytes`: `auto` adds headroom; an explicit size must hold the minimum. */
export function layoutForContent(contentBytes: number, diskSize: DiskSize, identity: DiskIdentity): DiskLayout {
  const guids = guidsOf(identity);
  if (diskSize === 'auto') return planLayout({ rootBytes: autoRootBytes(contentBytes), guids });
  const minimum = planLayout({ rootBytes: minimumRootBytes(contentBytes), guids });
  if (diskSize < minimum.diskBytes) {
    throw new C2vError(
      'input',
      `--disk-size ${formatSize(diskSize)} is too small for this image (${formatSize(contentBytes)} of content): use at least ${formatSize(minimum.diskBytes)}, or --disk-size auto`,
    );
  }
  return planLayout({ rootBytes: minimumRootBytes(contentBytes), diskBytes: diskSize, guids });
}

/**
 * The layout and inode count for content measured after it did not fit. `auto` grows the disk; an explicit size
 * is kept when the content fits it with more inodes, and refused with the size it needs when it does not.
 */
export function refitLayout(measured: MeasuredContent, diskSize: DiskSize, identity: DiskIdentity, current: DiskLayout): { layout: DiskLayout; inodes: number } {
  const guids = guidsOf(identity);
  const root = rootPartition(current);
  if (diskSize === 'auto') {
    const size = measuredRootSize(measured, { headroom: true });
    const rootBytes = Math.max(size.bytes, root.sizeBytes);
    return { layout: planLayout({ rootBytes, guids }), inodes: Math.max(size.inodes, Math.floor(rootBytes / 8192)) };
  }
  const need = measuredRootSize(measured, { headroom: false });
  if (need.bytes > root.sizeBytes) {
    const minimum = planLayout({ rootBytes: need.bytes, guids });
    throw new C2vError(
      'input',
      `the image content (${measured.entries} files and folders, ${formatSize(measured.blocks * 4096)} in 4 KiB blocks) does not fit --disk-size ${formatSize(diskSize)}: use at least ${formatSize(minimum.diskBytes)}, or --disk-size auto`,
    );
  }
  return { layout: current, inodes: Math.max(need.inodes, Math.floor(root.sizeBytes / 8192)) };
}
