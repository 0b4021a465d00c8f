#!/bin/sh
{{! Installed as /usr/local/lib/c2v/grow-root; c2v-guest.service and /etc/init.d/c2v-guest run it before the agent. }}
# c2v-grow-root: when the disk is larger than its partition table says (grown in vSphere, or by qemu-img resize),
# moves the backup GPT to the disk's end, grows the root partition into the new space, tells the kernel, and grows
# the mounted ext4 online. Written by c2v; runs at every boot, and says nothing when there is nothing to do.
# Only the layout c2v makes is grown: a GPT disk whose last partition is the root.
#
# For the host tests only: C2V_ROOT prefixes /proc and /sys, with C2V_DRY_RUN=1 (required with it) saying what it
# would run; C2V_GROW_TEST_DISK=FILE C2V_GROW_TEST_PART=N runs the partition-table steps alone, on an image file.
set -u

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL

ROOT=${C2V_ROOT:-}
DRY=${C2V_DRY_RUN:-0}
# The space that must be free after the root before it is worth growing: 1 MiB, and the backup GPT's 33 sectors.
MIN_FREE=$((2048 + 33))

log() {
  # stderr is the journal under systemd, which c2v forwards to the serial port, and the console under OpenRC.
  printf 'c2v-grow-root: %s\n' "$*" >&2
  [ -z "$ROOT" ] && [ "${C2V_NO_JOURNAL:-0}" = 1 ] || return 0
  # OpenRC keeps no journal: the line goes to the kernel's log (dmesg), which shows it on every console unless
  # the console log level hides notices (procps sets 4); then to the serial port, where one exists, directly.
  { printf '<5>c2v-grow-root: %s\n' "$*" >/dev/kmsg; } 2>/dev/null || :
  if [ "$(cut -f1 /proc/sys/kernel/printk 2>/dev/null)" -le 5 ] 2>/dev/null && [ "$(cat /sys/class/tty/ttyS0/type 2>/dev/null)" -gt 0 ] 2>/dev/null; then
    { printf 'c2v-grow-root: %s\r\n' "$*" >/dev/ttyS0; } 2>/dev/null || :
  fi
  return 0
}

case $DRY:${ROOT:+root} in 0: | 1:root) ;; *)
  log "C2V_ROOT and C2V_DRY_RUN=1 go together (host tests only)"
  exit 2
  ;;
esac

# A failed tool's own last words, on one line.
why() { printf '%s\n' "$1" | sed '/^[[:space:]]*$/d' | tail -n 1; }

mib() { echo "$(($1 / 2048)) MiB"; }
human() { if [ $(($1 % 2097152)) = 0 ]; then echo "$(($1 / 2097152)) GiB"; else mib "$1"; fi; }

# The partition-table steps, on a disk or an image file: the backup GPT to the end, then partition N to the end.
grow_table() { # disk partno
  if [ "$DRY" = 1 ]; then
    log "dry run: would run: sfdisk --relocate gpt-bak-std $1"
    log "dry run: would run: echo ', +' | sfdisk --no-reread --no-tell-kernel --force -N $2 $1"
    return 0
  fi
  label=$(sfdisk --dump "$1" 2>/dev/null | sed -n 's/^label: *//p')
  if [ "$label" != gpt ]; then
    if [ -n "$label" ]; then label="a $label partition table"; else label='no partition table sfdisk reads'; fi
    log "$1 has $label, not GPT: not growing"
    return 1
  fi
  if ! out=$(sfdisk --no-reread --no-tell-kernel --relocate gpt-bak-std "$1" 2>&1); then
    log "moving the backup GPT of $1 to its end failed: $(why "$out")"
    return 1
  fi
  # An empty start keeps the partition's own; '+' is as far as the free space goes.
  if ! out=$(echo ', +' | sfdisk --no-reread --no-tell-kernel --force -N "$2" "$1" 2>&1); then
    log "growing partition $2 of $1 failed: $(why "$out")"
    return 1
  fi
}

if [ -n "${C2V_GROW_TEST_DISK:-}" ]; then
  grow_table "$C2V_GROW_TEST_DISK" "${C2V_GROW_TEST_PART:?with C2V_GROW_TEST_DISK}" || exit 1
  log "grew partition $C2V_GROW_TEST_PART of $C2V_GROW_TEST_DISK to the end of the file"
  exit 0
fi

# The root's device number and file system type, from the last mount on / (the one in effect).
root=$(awk '$5 == "/" { mm = $3; fs = ""; for (i = 7; i < NF; i++) if ($i == "-") { fs = $(i + 1); break } } END { print mm, fs }' "$ROOT/proc/self/mountinfo" 2>/dev/null)
majmin=${root%% *} fstype=${root#* }
if [ -z "$majmin" ]; then
  log "no / in /proc/self/mountinfo: not growing"
  exit 0
fi
# sysfs names, not string surgery on /dev names: sda3, vda3 and nvme0n1p3 alike.
part=$(cd -P "$ROOT/sys/dev/block/$majmin" 2>/dev/null && pwd -P) || part=''
if [ -z "$part" ] || [ ! -r "$part/partition" ]; then
  # A root on a whole disk, an overlay or a network: nothing c2v made, so nothing to grow.
  exit 0
fi
disk=${part%/*}
devname() { # sysfs dir -> /dev path
  dn=$(sed -n 's/^DEVNAME=//p' "$1/uevent" 2>/dev/null)
  echo "/dev/${dn:-${1##*/}}"
}
partno=$(cat "$part/partition")
start=$(cat "$part/start")
size=$(cat "$part/size")
disk_size=$(cat "$disk/size")
free=$((disk_size - start - size))
[ "$free" -ge "$MIN_FREE" ] || exit 0

part_dev=$(devname "$part")
disk_dev=$(devname "$disk")
for p in "$disk"/*/partition; do
  [ -r "$p" ] || continue
  if [ "$(cat "${p%/partition}/start")" -gt "$start" ]; then
    log "$disk_dev has $(mib "$free") unused, but the root ($part_dev) is not its last partition: not growing"
    exit 0
  fi
done
case $fstype in ext2 | ext3 | ext4) ;; *)
  log "$disk_dev has $(mib "$free") unused, but the root ($part_dev) is $fstype, not ext4: not growing"
  exit 0
  ;;
esac
# Every tool first: a table grown without the rest would leave the file system behind until someone noticed.
for t in sfdisk partx resize2fs; do
  if [ "$DRY" != 1 ] && ! command -v "$t" >/dev/null; then
    log "$disk_dev has $(mib "$free") unused, but $t is not installed: not growing the root"
    exit 0
  fi
done

grow_table "$disk_dev" "$partno" || exit 1
if [ "$DRY" = 1 ]; then
  log "dry run: would run: partx --update --nr $partno $disk_dev"
  log "dry run: would run: resize2fs $part_dev"
  log "would grow $part_dev from $(mib "$size") to the end of the disk ($(human "$disk_size"))"
  exit 0
fi
if ! out=$(partx --update --nr "$partno" "$disk_dev" 2>&1); then
  log "grew partition $partno of $disk_dev, but the kernel was not told (partx: $(why "$out")): it sees the new size at the next boot"
  exit 1
fi
if ! out=$(resize2fs "$part_dev" 2>&1); then
  log "grew $part_dev, but not its file system (resize2fs: $(why "$out"))"
  exit 1
fi
log "grew $part_dev from $(mib "$size") to $(mib "$(cat "$part/size")") (disk $(human "$disk_size"))"
