#!/usr/bin/env bash
# The seed's way, as plain commands, for comparison with `c2v convert` on the same image and disk size:
# docker export | tar -x into a folder, mke2fs -d from the folder into the root partition's byte range of a
# sparse disk, zerofree, qemu-img's streamOptimized VMDK, sha256sum for the manifest, an OVF, and tar.
# No GPT, ESP or GRUB (those take well under a second in either pipeline). Needs root (tar -x keeps owners).
# Usage: seed-pipeline.sh IMAGE WORKDIR DISK_BYTES
set -euo pipefail
image=$1 dir=$2 disk_bytes=$3
MiB=$((1024 * 1024))
root_offset=$((66 * MiB))                       # c2v's layout: 1 MiB gap, 1 MiB BIOS boot, 64 MiB ESP
root_bytes=$((disk_bytes - root_offset - 33 * 512))
mkdir -p "$dir/rootfs"
cid=$(docker create "$image" /bin/true)
trap 'docker rm -f "$cid" >/dev/null 2>&1 || true' EXIT
docker export "$cid" | tar -x -C "$dir/rootfs" --numeric-owner -p
rm -f "$dir/rootfs/.dockerenv"
truncate -s "$disk_bytes" "$dir/disk.raw"
mke2fs -F -q -t ext4 -L root -E "offset=$root_offset" -d "$dir/rootfs" "$dir/disk.raw" "$((root_bytes / 1024))k"
zerofree "$dir/disk.raw?offset=$root_offset"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$dir/disk.raw" "$dir/seed-disk1.vmdk"
size=$(stat -c %s "$dir/seed-disk1.vmdk")
cat > "$dir/seed.ovf" <<OVF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="seed-disk1.vmdk" ovf:id="file1" ovf:size="$size"/></References>
  <DiskSection><Info>disk</Info><Disk ovf:capacity="$disk_bytes" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="seed"><Info>A virtual machine</Info></VirtualSystem>
</Envelope>
OVF
(cd "$dir" && for f in seed.ovf seed-disk1.vmdk; do echo "SHA256($f)= $(sha256sum "$f" | cut -d' ' -f1)"; done > seed.mf)
tar -C "$dir" -cf "$dir/seed.ova" seed.ovf seed.mf seed-disk1.vmdk
