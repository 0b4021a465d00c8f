#!/bin/sh
# c2v-packages: the packages step of a c2v appliance build. It runs in whatever builder makes the image (Docker,
# kaniko, buildah) with nothing from the image's config, so it finds out here, at build time, which distribution
# it is in and what the image already has, installs only what is missing, and records that in /etc/c2v/packages,
# which c2v reads back from the built image. The app service, SSH keys and root password are written by c2v later.
#
# Environment (the stage's build args): C2V_INIT = auto | systemd | openrc; C2V_SSH = 0 | 1; C2V_CLOUD_INIT = 0 | 1;
# C2V_SECURE_BOOT = 0 | 1 (the distribution's signed shim and GRUB, which c2v copies onto the ESP);
# C2V_GUEST_AGENT = 0 | 1 (the QEMU guest agent, for KVM and Proxmox);
# C2V_NETBOOT = 0 | 1 (busybox in the initramfs: c2v's network boot step fetches, checks and mounts the root with it).
# For the host tests only: C2V_ROOT prefixes every path inspected or written, and C2V_DRY_RUN=1 prints what would
# be installed, run and written instead of doing it.
set -eu

# The base image's ENV may leave the sbin directories (rc-update, dracut, sshd) out of PATH.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

ROOT=${C2V_ROOT:-}
DRY=${C2V_DRY_RUN:-0}
WANT_INIT=${C2V_INIT:-auto}
SSH=${C2V_SSH:-0}
CLOUD=${C2V_CLOUD_INIT:-0}
SECURE=${C2V_SECURE_BOOT:-0}
QGA=${C2V_GUEST_AGENT:-0}
NETBOOT=${C2V_NETBOOT:-0}
# Where the stage copies this script and the files it installs.
CTX=/tmp/c2v
RECORD=/etc/c2v/packages
SERIAL_GETTY=/usr/local/lib/c2v/serial-getty

say() { printf 'c2v-packages: %s\n' "$*"; }
die() {
  printf 'c2v-packages: %s\n' "$*" >&2
  exit 1
}

case $WANT_INIT in auto | systemd | openrc) ;; *) die "C2V_INIT must be auto, systemd or openrc, not '$WANT_INIT'" ;; esac
case $SSH in 0 | 1) ;; *) die "C2V_SSH must be 0 or 1, not '$SSH'" ;; esac
case $CLOUD in 0 | 1) ;; *) die "C2V_CLOUD_INIT must be 0 or 1, not '$CLOUD'" ;; esac
case $SECURE in 0 | 1) ;; *) die "C2V_SECURE_BOOT must be 0 or 1, not '$SECURE'" ;; esac
case $QGA in 0 | 1) ;; *) die "C2V_GUEST_AGENT must be 0 or 1, not '$QGA'" ;; esac
case $NETBOOT in 0 | 1) ;; *) die "C2V_NETBOOT must be 0 or 1, not '$NETBOOT'" ;; esac
case $DRY in 0 | 1) ;; *) die "C2V_DRY_RUN must be 0 or 1, not '$DRY'" ;; esac
# Package managers and systemctl would still act on /, whatever the prefix says.
if [ -n "$ROOT" ] && [ "$DRY" != 1 ]; then die "C2V_ROOT is only for dry runs (C2V_DRY_RUN=1)"; fi

# --- Looking at the image -------------------------------------------------------------------------------------

exists() {
  [ -e "$ROOT$1" ] && return 0
  # Under a prefix, absolute symlinks (Debian's /sbin/init -> /lib/systemd/systemd) point out of the tree: the link
  # is all there is to see. Without one a dangling link is a leftover, not the file.
  [ -n "$ROOT" ] && [ -L "$ROOT$1" ]
}

find_bin() {
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    if exists "$d/$1"; then
      printf '%s\n' "$d/$1"
      return 0
    fi
  done
  return 1
}

have_bin() { find_bin "$1" >/dev/null; }

# Alpine's busybox carries an ifup applet, but today's appliances get ifupdown-ng together with c2v's interfaces
# file and the networking service; an app image's busybox ifup must not make us skip all three.
is_busybox_applet() {
  [ -L "$ROOT$1" ] || return 1
  case $(readlink "$ROOT$1") in *busybox) return 0 ;; esac
  return 1
}

has_kernel() {
  exists /vmlinuz && return 0
  for k in "$ROOT"/boot/vmlinuz*; do
    if [ -e "$k" ] || { [ -n "$ROOT" ] && [ -L "$k" ]; }; then return 0; fi
  done
  return 1
}

# The same tests as c2v's own probe (src/stages/probe.ts), so that the two agree on what an image has.
present_init() {
  if exists /sbin/openrc || exists /usr/sbin/openrc || exists /sbin/openrc-init || exists /usr/sbin/openrc-init; then
    echo openrc
  elif { exists /sbin/init || exists /usr/sbin/init; } && { exists /lib/systemd/systemd || exists /usr/lib/systemd/systemd; }; then
    echo systemd
  else
    echo none
  fi
}

# Where c2v's probe looks too: sshd somewhere else would be installed here and still not be found by c2v.
has_sshd() { exists /usr/sbin/sshd || exists /sbin/sshd; }

# Where c2v's probe looks for the QEMU guest agent too.
has_qga() { exists /usr/sbin/qemu-ga || exists /usr/bin/qemu-ga; }

# Where c2v's probe looks for busybox, whose wget, sha256sum and mount the network boot step runs in the initramfs.
has_busybox() { exists /usr/bin/busybox || exists /bin/busybox; }

# The signed chain where src/plan/secure-boot.ts takes it from (Ubuntu names its current shim .latest).
has_signed_boot() {
  { exists /usr/lib/shim/shimx64.efi.signed || exists /usr/lib/shim/shimx64.efi.signed.latest; } && exists /usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
}

has_network() { # [any: let busybox's ifup count]
  if [ "$NET" = networkmanager ]; then
    have_bin NetworkManager
    return
  fi
  ifup=$(find_bin ifup) || return 1
  if [ "${1:-}" != any ] && is_busybox_applet "$ifup"; then return 1; fi
  have_bin dhclient || have_bin dhcpcd || have_bin udhcpc
}

osr=$ROOT/etc/os-release
[ -e "$osr" ] || osr=$ROOT/usr/lib/os-release
[ -r "$osr" ] || die "no /etc/os-release, so no way to tell the distribution: c2v supports Debian, Ubuntu, Alpine and RHEL-likes"

# os-release is data here: read the fields rather than sourcing the file as root.
os_field() {
  v=$(sed -n "s/^[[:space:]]*$1=//p" "$osr" | tail -n 1)
  case $v in
    \"*\")
      v=${v#\"}
      v=${v%\"}
      ;;
    \'*\')
      v=${v#\'}
      v=${v%\'}
      ;;
  esac
  printf '%s' "$v"
}

PRETTY=$(os_field PRETTY_NAME)
VERSION_ID=$(os_field VERSION_ID)
# Lower-cased, and anything but an ID's characters made a separator, which also keeps globs out of the loop below.
IDS=$(printf '%s %s' "$(os_field ID)" "$(os_field ID_LIKE)" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9._-' ' ')
FIRST=
for w in $IDS; do
  FIRST=$w
  break
done
has_id() {
  for w in $IDS; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# As in src/plan/os-release.ts: Ubuntu derivatives name debian too, but Ubuntu's packages are what they install.
if [ "$FIRST" = ubuntu ] || { [ "$FIRST" != debian ] && has_id ubuntu; }; then
  FAMILY=ubuntu
elif has_id debian; then
  FAMILY=debian
elif has_id alpine; then
  FAMILY=alpine
elif has_id rhel || has_id fedora || has_id centos || has_id rocky || has_id almalinux || has_id ol; then
  FAMILY=rhel
else
  # Not fatal yet: an image that lacks nothing needs no package manager we know.
  FAMILY=''
fi
PRETTY=${PRETTY:-${FIRST:-a distribution whose os-release names none}}
LABEL="${FIRST:-${FAMILY:-unknown}}${VERSION_ID:+ $VERSION_ID}"
[ -z "$FAMILY" ] || [ "$FIRST" = "$FAMILY" ] || LABEL="$LABEL ($FAMILY family)"

# --- What each family installs (the package lists of the former dockerfiles/<family>.Dockerfile) ---------------

PK_KERNEL='' PK_SYSTEMD='' PK_OPENRC='' PK_NET='' PK_VMTOOLS='' PK_SSH='' PK_GROW='' PK_CLOUD='' PK_SECURE='' PK_NETBOOT='' NET='' DEFAULT_INIT=''
# Every family calls the QEMU guest agent the same.
PK_QGA=qemu-guest-agent
case $FAMILY in
  debian)
    PK_KERNEL="linux-image-amd64 initramfs-tools"
    PK_SYSTEMD="systemd systemd-sysv udev dbus"
    PK_OPENRC="openrc sysvinit-core udev"
    PK_NET="ifupdown isc-dhcp-client iproute2"
    PK_VMTOOLS="open-vm-tools"
    PK_SSH="openssh-server"
    PK_GROW="fdisk e2fsprogs"
    PK_CLOUD="cloud-init cloud-guest-utils"
    # shim-signed brings MokManager (shim-helpers-amd64-signed); its postinst only warns without EFI variables.
    PK_SECURE="shim-signed grub-efi-amd64-signed"
    # initramfs-tools copies an installed busybox, with every applet, into the initramfs it builds; busybox's
    # package triggers update-initramfs, so a kernel's initramfs made before it is made again.
    PK_NETBOOT="busybox"
    NET=ifupdown DEFAULT_INIT=systemd
    ;;
  ubuntu)
    PK_KERNEL="linux-image-virtual initramfs-tools"
    PK_SYSTEMD="systemd systemd-sysv udev dbus"
    PK_NET="ifupdown isc-dhcp-client iproute2"
    PK_VMTOOLS="open-vm-tools"
    PK_SSH="openssh-server"
    PK_GROW="fdisk e2fsprogs"
    PK_CLOUD="cloud-init cloud-guest-utils"
    PK_SECURE="shim-signed grub-efi-amd64-signed"
    # initramfs-tools copies an installed busybox, with every applet, into the initramfs it builds; busybox's
    # package triggers update-initramfs, so a kernel's initramfs made before it is made again.
    PK_NETBOOT="busybox"
    NET=ifupdown DEFAULT_INIT=systemd
    ;;
  alpine)
    PK_KERNEL="linux-virt mkinitfs e2fsprogs"
    PK_OPENRC="openrc busybox-openrc busybox-mdev-openrc"
    PK_NET="ifupdown-ng"
    PK_VMTOOLS="open-vm-tools open-vm-tools-openrc"
    PK_SSH="openssh-server openssh-server-openrc"
    PK_GROW="sfdisk partx e2fsprogs-extra"
    PK_CLOUD="cloud-init"
    NET=ifupdown DEFAULT_INIT=openrc
    ;;
  rhel)
    PK_KERNEL="kernel-core dracut"
    PK_SYSTEMD="systemd"
    PK_NET="NetworkManager"
    PK_VMTOOLS="open-vm-tools"
    PK_SSH="openssh-server"
    PK_GROW="util-linux e2fsprogs"
    PK_CLOUD="cloud-init cloud-utils-growpart"
    NET=networkmanager DEFAULT_INIT=systemd
    ;;
esac

# --- Deciding ------------------------------------------------------------------------------------------------

say "$PRETTY: family ${FAMILY:-unknown to c2v}"

if [ -n "$FAMILY" ] && [ "$WANT_INIT" = openrc ] && [ -z "$PK_OPENRC" ]; then
  die "C2V_INIT=openrc is not available for $PRETTY: OpenRC is packaged for Debian and Alpine only; use systemd or auto"
fi
if [ -n "$FAMILY" ] && [ "$WANT_INIT" = systemd ] && [ -z "$PK_SYSTEMD" ]; then
  die "C2V_INIT=systemd is not available for $PRETTY: Alpine has no systemd; use openrc or auto"
fi

FOUND_INIT=$(present_init)
# auto keeps whatever init the image runs, even one its family would not get from us.
if [ "$WANT_INIT" = auto ]; then
  case $FOUND_INIT in systemd | openrc) INIT=$FOUND_INIT ;; *) INIT=$DEFAULT_INIT ;; esac
else
  INIT=$WANT_INIT
fi
if [ "$INIT" = systemd ]; then PK_INIT=$PK_SYSTEMD; else PK_INIT=$PK_OPENRC; fi

ADD_KERNEL=0 ADD_INIT=0 ADD_NET=0 ADD_VMTOOLS=0 ADD_SSH=0 ADD_GROW=0 ADD_CLOUD=0 ADD_SECURE=0 ADD_QGA=0 ADD_NETBOOT=0
if has_kernel; then say "kernel: present"; else
  ADD_KERNEL=1
  say "kernel: missing"
fi
if [ "$FOUND_INIT" = "$INIT" ]; then say "init: $INIT present"; else
  ADD_INIT=1
  say "init: ${INIT:-an init} wanted (C2V_INIT=$WANT_INIT), the image has $FOUND_INIT"
fi
if [ "$SSH" = 0 ]; then say "ssh: not asked for"; elif has_sshd; then say "ssh: sshd present"; else
  ADD_SSH=1
  say "ssh: sshd missing"
fi
if [ "$CLOUD" = 0 ]; then say "cloud-init: not asked for"; elif exists /usr/bin/cloud-init; then say "cloud-init: present"; else
  ADD_CLOUD=1
  say "cloud-init: missing"
fi
if [ "$SECURE" = 0 ]; then say "secureboot: not asked for"; elif has_signed_boot; then say "secureboot: signed shim and GRUB present"; else
  ADD_SECURE=1
  say "secureboot: signed shim or GRUB missing"
  if [ -n "$FAMILY" ] && [ -z "$PK_SECURE" ]; then die "C2V_SECURE_BOOT=1: $PRETTY packages no Microsoft-signed shim c2v knows; c2v takes it from Debian and Ubuntu"; fi
fi
if [ "$QGA" = 0 ]; then say "guest-agent: not asked for"; elif has_qga; then say "guest-agent: qemu-ga present"; else
  ADD_QGA=1
  say "guest-agent: qemu-ga missing"
fi
if [ "$NETBOOT" = 1 ] && [ -n "$FAMILY" ] && [ -z "$PK_NETBOOT" ]; then
  die "C2V_NETBOOT=1: c2v's network boot step runs in initramfs-tools (Debian, Ubuntu), and $PRETTY boots with another initramfs"
fi
if [ "$NETBOOT" = 0 ]; then say "netboot: not asked for"; elif has_busybox; then say "netboot: busybox present"; else
  ADD_NETBOOT=1
  say "netboot: busybox missing"
fi
if [ -z "$FAMILY" ] && [ "$ADD_KERNEL$ADD_INIT$ADD_SSH$ADD_CLOUD$ADD_SECURE$ADD_QGA$ADD_NETBOOT" != 0000000 ]; then
  lacks=''
  [ "$ADD_KERNEL" = 0 ] || lacks="a kernel"
  [ "$ADD_INIT" = 0 ] || lacks="${lacks:+$lacks, }an init"
  [ "$ADD_SSH" = 0 ] || lacks="${lacks:+$lacks, }sshd"
  [ "$ADD_CLOUD" = 0 ] || lacks="${lacks:+$lacks, }cloud-init"
  [ "$ADD_SECURE" = 0 ] || lacks="${lacks:+$lacks, }a signed shim and GRUB"
  [ "$ADD_QGA" = 0 ] || lacks="${lacks:+$lacks, }the QEMU guest agent"
  [ "$ADD_NETBOOT" = 0 ] || lacks="${lacks:+$lacks, }busybox"
  die "cannot add $lacks to $PRETTY: c2v supports Debian, Ubuntu, Alpine and RHEL-likes; add them to the image yourself"
fi
# A kernel or an init to add means an app image is becoming a VM: it needs networking and VMware's tools too.
# An image that boots already keeps its own.
if [ "$ADD_KERNEL" = 1 ] || [ "$ADD_INIT" = 1 ]; then
  CONVERT=1
  if has_network; then say "network: present"; else
    ADD_NET=1
    say "network: $NET missing"
  fi
  if have_bin vmtoolsd; then say "vmtools: present"; else
    ADD_VMTOOLS=1
    say "vmtools: missing"
  fi
  # What c2v's guest agent grows the root with, when an admin enlarges the disk.
  if have_bin sfdisk && have_bin partx && have_bin resize2fs; then say "grow: present"; else
    ADD_GROW=1
    say "grow: sfdisk, partx or resize2fs missing"
  fi
else
  CONVERT=0
  say "network, vmtools, grow: left as they are (the image has a kernel and an init)"
fi

WORDS='' SUMMARY='' PKGS='' NOTES=''
add() { # record word, packages
  WORDS="$WORDS${WORDS:+
}$1"
  SUMMARY="$SUMMARY${SUMMARY:+, }$1"
  NOTES="$NOTES${NOTES:+
}# $1: $2"
  PKGS="$PKGS${PKGS:+ }$2"
}
[ "$ADD_KERNEL" = 0 ] || add kernel "$PK_KERNEL"
[ "$ADD_INIT" = 0 ] || add "init $INIT" "$PK_INIT"
[ "$ADD_NET" = 0 ] || add "network $NET" "$PK_NET"
[ "$ADD_VMTOOLS" = 0 ] || add vmtools "$PK_VMTOOLS"
[ "$ADD_GROW" = 0 ] || add grow "$PK_GROW"
[ "$ADD_SSH" = 0 ] || add ssh "$PK_SSH"
[ "$ADD_CLOUD" = 0 ] || add cloud-init "$PK_CLOUD"
[ "$ADD_SECURE" = 0 ] || add secureboot "$PK_SECURE"
[ "$ADD_QGA" = 0 ] || add guest-agent "$PK_QGA"
[ "$ADD_NETBOOT" = 0 ] || add netboot "$PK_NETBOOT"

if [ -n "$WORDS" ]; then
  say "$LABEL: adding $SUMMARY"
else
  say "$LABEL: nothing to add"
fi

# --- Doing (or, in a dry run, saying) ------------------------------------------------------------------------

run() {
  if [ "$DRY" = 1 ]; then
    say "dry run: would run: $*"
    return 0
  fi
  "$@" || die "failed: $*"
}

write_file() { # path mode content
  if [ "$DRY" = 1 ]; then
    printf '%s\n' "$3" | while IFS= read -r l; do say "dry run: would write $1: $l"; done
    return 0
  fi
  if ! { mkdir -p "$ROOT${1%/*}" && printf '%s\n' "$3" >"$ROOT$1" && chmod "$2" "$ROOT$1"; }; then die "cannot write $1"; fi
}

copy_file() { # source (in the build context) target mode
  if [ "$DRY" = 1 ]; then
    say "dry run: would install $1 as $2"
    return 0
  fi
  if ! { mkdir -p "$ROOT${2%/*}" && cp "$1" "$ROOT$2" && chmod "$3" "$ROOT$2"; }; then die "cannot install $1 as $2"; fi
}

# Appends LINE unless a line matching PATTERN is there already, so that a second run adds nothing.
append_once() { # path pattern line
  if [ -f "$ROOT$1" ] && grep -q -- "$2" "$ROOT$1"; then return 0; fi
  if [ "$DRY" = 1 ]; then
    say "dry run: would append to $1: $3"
    return 0
  fi
  if ! { mkdir -p "$ROOT${1%/*}" && printf '%s\n' "$3" >>"$ROOT$1"; }; then die "cannot append to $1"; fi
}

# sh has no local variables: the helpers below prefix theirs, so that a caller's loop variable survives the call.

# "a (or b) (or c)": the names a dry run would try, in order.
alternatives() { # name...
  al_out=$1
  shift
  for al_n in "$@"; do al_out="$al_out (or $al_n)"; done
  printf '%s' "$al_out"
}

# Enables the first unit systemctl accepts: unit names differ between distributions (ssh/sshd, open-vm-tools/vmtoolsd).
systemd_enable() { # unit...
  if [ "$DRY" = 1 ]; then
    say "dry run: would run: systemctl enable $(alternatives "$@")"
    return 0
  fi
  while [ $# -gt 1 ]; do
    if systemctl enable "$1" 2>/dev/null; then return 0; fi
    shift
  done
  # The last name's error is the one worth showing in the build log.
  systemctl enable "$1"
}

# Adds the first of the services that has an init script to RUNLEVEL, unless it is in it already.
rc_add() { # runlevel service...
  rc_lvl=$1
  shift
  for rc_s in "$@"; do
    if exists "/etc/runlevels/$rc_lvl/$rc_s"; then return 0; fi
  done
  for rc_s in "$@"; do
    if exists "/etc/init.d/$rc_s"; then
      run rc-update add "$rc_s" "$rc_lvl"
      return 0
    fi
  done
  # In a dry run the packages that bring the init scripts were never installed.
  if [ "$DRY" = 1 ]; then
    say "dry run: would run: rc-update add $(alternatives "$@") $rc_lvl"
    return 0
  fi
  return 1
}

case $FAMILY in
  debian | ubuntu) PM=apt-get ;;
  alpine) PM=apk ;;
  # dnf first, as before; yum on older releases, microdnf on minimal images (UBI minimal).
  rhel)
    PM=''
    for p in dnf yum microdnf; do
      if have_bin "$p"; then
        PM=$p
        break
      fi
    done
    ;;
esac
# Everything that can stop the build stops it here, before the image is touched.
if [ "$DRY" != 1 ] && [ -n "$PKGS" ]; then
  case $PM in
    '') die "neither dnf, yum nor microdnf is in the image, so nothing can be installed: add $PKGS yourself" ;;
    *) have_bin "$PM" || die "$PM is not in the image, so nothing can be installed: add $PKGS yourself" ;;
  esac
fi
if [ "$DRY" != 1 ] && [ "$ADD_NET" = 1 ] && [ "$NET" = ifupdown ] && [ ! -f "$CTX/interfaces" ]; then
  die "$CTX/interfaces is missing: the stage copies it from the build context"
fi
: "${PM:=dnf}"

# The initramfs must carry the VM's disk and NIC drivers; its generator reads these when the kernel package
# installs, so they go in first.
if [ "$ADD_KERNEL" = 1 ]; then
  case $FAMILY in
    debian | ubuntu)
      for m in vmw_pvscsi vmxnet3 mptspi mptsas ahci virtio_pci virtio_blk virtio_scsi virtio_net; do
        append_once /etc/initramfs-tools/modules "^$m\$" "$m"
      done
      ;;
    alpine) write_file /etc/mkinitfs/mkinitfs.conf 0644 'features="ata base ext4 scsi virtio"' ;;
    rhel) write_file /etc/dracut.conf.d/c2v.conf 0644 'hostonly="no"
add_drivers+=" vmw_pvscsi vmxnet3 mptspi ahci virtio_blk virtio_scsi virtio_net "' ;;
  esac
fi

install_apt() {
  DEBIAN_FRONTEND=noninteractive
  export DEBIAN_FRONTEND
  # Without systemd running, maintainer scripts would start sshd, vmtoolsd and dbus inside the build; unless the
  # image says otherwise already, tell them not to (exit 101: action forbidden) while we install.
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    if ! { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy"; }; then die "cannot write $policy"; fi
  fi
  apt-get update || die "apt-get update failed"
  # shellcheck disable=SC2086 # PKGS is a list of package names, one word each
  apt-get install -y --no-install-recommends $PKGS || die "apt-get install failed: $PKGS"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  [ -z "$policy" ] || rm -f "$policy"
}

install_apk() {
  # shellcheck disable=SC2086 # PKGS is a list of package names, one word each
  apk add --no-cache $PKGS || die "apk add failed: $PKGS"
}

install_rpm() {
  # shellcheck disable=SC2086 # PKGS is a list of package names, one word each
  "$PM" install -y $PKGS || die "$PM install failed: $PKGS"
  "$PM" clean all || die "$PM clean all failed"
}

# kernel-core leaves /boot to kernel-install, which a container build may skip, and its initramfs was made before
# our dracut settings could matter; so the kernel is put where c2v looks and its initramfs is made again.
rhel_boot_files() {
  if [ "$DRY" = 1 ]; then
    say "dry run: would run: dracut -f /boot/initramfs-VERSION.img VERSION, for each kernel VERSION in /lib/modules"
    return 0
  fi
  for m in /lib/modules/*; do
    v=${m##*/}
    [ -e "$m/vmlinuz" ] || [ -e "/boot/vmlinuz-$v" ] || continue
    if [ ! -e "/boot/vmlinuz-$v" ]; then
      install -m 0755 "$m/vmlinuz" "/boot/vmlinuz-$v" || die "cannot copy $m/vmlinuz to /boot"
    fi
    dracut -f "/boot/initramfs-$v.img" "$v" || die "dracut failed for kernel $v"
  done
}

if [ -n "$PKGS" ]; then
  if [ "$DRY" = 1 ]; then say "dry run: would install with $PM: $PKGS"; else
    say "installing with $PM: $PKGS"
    case $FAMILY in debian | ubuntu) install_apt ;; alpine) install_apk ;; rhel) install_rpm ;; esac
  fi
fi
if [ "$ADD_KERNEL" = 1 ] && [ "$FAMILY" = rhel ]; then rhel_boot_files; fi

# Without a kernel or the init the VM does not boot, and the build is the place to say so. The rest only warns:
# a check of ours gone wrong must not fail a build that would have worked.
if [ "$DRY" != 1 ]; then
  if [ "$ADD_KERNEL" = 1 ] && ! has_kernel; then die "installed $PK_KERNEL, but there is still no /boot/vmlinuz*"; fi
  if [ "$ADD_INIT" = 1 ] && [ "$(present_init)" != "$INIT" ]; then die "installed $PK_INIT, but $INIT is still not the init"; fi
  if [ "$ADD_NET" = 1 ] && ! has_network any; then say "warning: installed $PK_NET, but found no $NET networking"; fi
  if [ "$ADD_VMTOOLS" = 1 ] && ! have_bin vmtoolsd; then say "warning: installed $PK_VMTOOLS, but found no vmtoolsd"; fi
  if [ "$ADD_SSH" = 1 ] && ! has_sshd; then say "warning: installed $PK_SSH, but found no sshd"; fi
  if [ "$ADD_CLOUD" = 1 ] && ! exists /usr/bin/cloud-init; then die "installed $PK_CLOUD, but there is no /usr/bin/cloud-init"; fi
  if [ "$ADD_SECURE" = 1 ] && ! has_signed_boot; then die "installed $PK_SECURE, but found no signed shim and GRUB in /usr/lib"; fi
  if [ "$ADD_QGA" = 1 ] && ! has_qga; then say "warning: installed $PK_QGA, but found no qemu-ga"; fi
  if [ "$ADD_NETBOOT" = 1 ] && ! has_busybox; then die "installed $PK_NETBOOT, but found no busybox"; fi
fi

# --- Setting up what was installed (no part of it depends on the image's config) ------------------------------

if [ "$ADD_NET" = 1 ]; then
  if [ "$NET" = ifupdown ] && [ "$CLOUD" = 1 ]; then
    # cloud-init writes the NICs' stanzas into interfaces.d (its fallback is DHCP on the first NIC); c2v's own
    # DHCP file would declare them a second time.
    write_file /etc/network/interfaces 0644 '# Written by c2v: cloud-init configures the network adapters (interfaces.d/50-cloud-init).
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*'
    if [ "$INIT" = openrc ]; then rc_add boot networking || die "no networking service to add to the boot runlevel"; fi
  elif [ "$NET" = ifupdown ]; then
    copy_file "$CTX/interfaces" /etc/network/interfaces 0644
    if [ "$INIT" = openrc ]; then rc_add boot networking || die "no networking service to add to the boot runlevel"; fi
  else
    systemd_enable NetworkManager.service || die "cannot enable NetworkManager.service"
  fi
fi

if [ "$CONVERT" = 1 ]; then
  # A login prompt on the serial console, where vSphere's serial port and c2v's boot checks look, and only where
  # there is one: systemd's getty generator starts it for the kernel's console=ttyS0 when that port exists; an
  # inittab entry checks for a UART itself (type 0 is none), lest init respawn a failing getty forever.
  if [ "$INIT" != systemd ]; then
    # sysvinit keeps 127 characters of an inittab command, so the check for a UART lives in a script of its own.
    # shellcheck disable=SC2016 # the script's own text: it expands when init runs it
    write_file "$SERIAL_GETTY" 0755 '#!/bin/sh
# Written by c2v: init starts this from /etc/inittab. A getty on ttyS0 only where the port has a UART (type 0 is
# none): without one the getty would fail at once, and init would respawn it forever.
if [ "$(cat /sys/class/tty/ttyS0/type 2>/dev/null)" -gt 0 ] 2>/dev/null; then exec "$@"; fi
exec sleep 2147483647'
    if [ "$FAMILY" = alpine ]; then
      append_once /etc/inittab '^ttyS0:' "ttyS0::respawn:$SERIAL_GETTY /sbin/getty -L 115200 ttyS0 vt100"
    else
      append_once /etc/inittab '^T0:' "T0:2345:respawn:$SERIAL_GETTY /sbin/agetty -L 115200 ttyS0 vt100"
    fi
  fi
  # Alpine's container images start nothing at sysinit; a VM needs /dev populated and its drivers loaded.
  if [ "$INIT" = openrc ] && [ "$FAMILY" = alpine ]; then
    for s in devfs mdev hwdrivers; do rc_add sysinit "$s" || die "no $s service to add to the sysinit runlevel"; done
  fi
  # Tolerant, as before: a VM without the tools still runs, it only shows less in vSphere.
  if [ "$INIT" = systemd ]; then
    systemd_enable open-vm-tools.service vmtoolsd.service || say "vmtools: no open-vm-tools unit to enable"
  else
    rc_add default open-vm-tools || say "vmtools: no open-vm-tools service to enable"
  fi
fi

if [ "$ADD_SSH" = 1 ]; then
  if [ "$INIT" = systemd ]; then
    systemd_enable ssh.service sshd.service || die "cannot enable ssh.service or sshd.service"
  else
    rc_add default sshd ssh || die "no sshd or ssh service to add to the default runlevel"
  fi
fi

# systemd starts qemu-guest-agent.service when udev sees the agent's virtio port (the package's own rule), so a VM
# without the port runs no agent; OpenRC has no such trigger, so the service is added and waits for the port.
if [ "$ADD_QGA" = 1 ] && [ "$INIT" = openrc ]; then
  rc_add default qemu-guest-agent qemu-ga || say "guest-agent: no qemu-guest-agent service to enable"
fi

if [ "$CLOUD" = 1 ]; then
  # OVF reads the environment vSphere gives (guestinfo or the ISO), VMware the guestinfo keys Terraform and Packer
  # set, NoCloud a seed disk as KVM users make them; None lets the boot go on without any.
  write_file /etc/cloud/cloud.cfg.d/90-c2v-datasources.cfg 0644 '# Written by c2v (--cloud-init).
datasource_list: [ OVF, VMware, NoCloud, None ]'
  if [ "$FAMILY" = alpine ] && [ "$ADD_CLOUD" = 1 ]; then run setup-cloud-init; fi
fi

# c2v takes the file's presence to mean the image went through this step, and its words for what was added.
# An image can go through it twice (c2v prepare, then a conversion with an SSH key), and c2v reads words such as
# "network ifupdown" long after the pass that added them: so a record already there is added to, not replaced.
TEXT=''
rec() {
  TEXT="$TEXT${TEXT:+
}$1"
}
if [ -f "$ROOT$RECORD" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      '' | '#'*) ;;
      "init "*) [ "$ADD_INIT" = 1 ] || rec "$line" ;;
      "network "*) [ "$ADD_NET" = 1 ] || rec "$line" ;;
      *) case "
$WORDS
" in *"
$line
"*) ;; *) rec "$line" ;; esac ;;
    esac
  done <"$ROOT$RECORD"
fi
[ -z "$WORDS" ] || rec "$WORDS"
if [ -f "$ROOT$RECORD" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in '# nothing added'*) ;; '#'*) rec "$line" ;; esac
  done <"$ROOT$RECORD"
fi
[ -z "$NOTES" ] || rec "$NOTES"
write_file "$RECORD" 0644 "${TEXT:-# nothing added: the image had what c2v-packages looks for}"
