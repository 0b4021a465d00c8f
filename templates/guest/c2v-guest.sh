#!/bin/sh
{{! Installed as /usr/local/lib/c2v/c2v-guest; static text, the values c2v knew at conversion are in guest.conf. }}
# c2v-guest: applies this VM's deploy-time OVF properties at every boot (an admin may change them while the VM is
# off), before the network, SSH and the app start. Written by c2v; run by c2v-guest.service or /etc/init.d/c2v-guest.
# The values come from whoever deploys the VM: ovf-env.awk writes each to a file of its own, and this reads them
# back as data ("$(cat)"), checks them, and writes them into config files only checked or single-quoted.
#
# For the host tests only: C2V_ROOT prefixes every path read or written, C2V_DRY_RUN=1 (which goes with it) says
# what it would run instead of changing the running system, and C2V_OVF_ENV names the environment to read.
set -u

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LC_ALL=C
export PATH LC_ALL
umask 022

ROOT=${C2V_ROOT:-}
DRY=${C2V_DRY_RUN:-0}
# The tests run it with busybox's tools alone too, as an Alpine guest would.
[ -z "$ROOT" ] || PATH=${C2V_TEST_PATH:-$PATH}
LIB=/usr/local/lib/c2v
RUN=/run/c2v
# The environment and its parsed values, the clear-text password among them: removed before exiting.
WORK=$RUN/env
PROPS=$WORK/props
APP_ENV=$RUN/app.env
KEYS_BEGIN='# c2v deploy-time keys (OVF property c2v.ssh_keys): rewritten at every boot'
KEYS_END='# end of c2v deploy-time keys'

log() {
  # stderr is the journal under systemd, which c2v forwards to the serial port, and the console under OpenRC.
  printf 'c2v-guest: %s\n' "$*" >&2
  [ -z "$ROOT" ] && [ "${C2V_NO_JOURNAL:-0}" = 1 ] || return 0
  # OpenRC keeps no journal: the line goes to the kernel's log (dmesg), which shows it on every console unless
  # the console log level hides notices (procps sets 4); then to the serial port, where one exists, directly.
  { printf '<5>c2v-guest: %s\n' "$*" >/dev/kmsg; } 2>/dev/null || :
  if [ "$(cut -f1 /proc/sys/kernel/printk 2>/dev/null)" -le 5 ] 2>/dev/null && [ "$(cat /sys/class/tty/ttyS0/type 2>/dev/null)" -gt 0 ] 2>/dev/null; then
    { printf 'c2v-guest: %s\r\n' "$*" >/dev/ttyS0; } 2>/dev/null || :
  fi
  return 0
}

# Files are written under the prefix either way: a dry run without one would still rewrite /etc.
case $DRY:${ROOT:+root} in 0: | 1:root) ;; *)
  log "C2V_ROOT and C2V_DRY_RUN=1 go together (host tests only)"
  exit 2
  ;;
esac

{{! shellcheck disable=SC2034 # C2V_NETWORK is read by network.sh }}
C2V_APP_PROPERTIES='' C2V_APP_BOOLEANS='' C2V_APP_OWNER='' C2V_NETWORK=''
if [ -r "$ROOT/etc/c2v/guest.conf" ]; then
  {{! shellcheck source=/dev/null # c2v's own conversion-time data: see guest.conf }}
  . "$ROOT/etc/c2v/guest.conf"
fi

{{! shellcheck source=/dev/null # the network half of the agent, beside it }}
. "$ROOT$LIB/network.sh"

# In a dry run, says what it would run instead. The quiet one is for commands whose complaints the caller's
# own log line says better.
run() { if [ "$DRY" = 1 ]; then log "dry run: would run: $*"; else "$@"; fi; }
run_quiet() { if [ "$DRY" = 1 ]; then run "$@"; else "$@" 2>/dev/null; fi; }

exists() { [ -e "$ROOT$1" ] || { [ -n "$ROOT" ] && [ -L "$ROOT$1" ]; }; }

find_bin() {
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    if exists "$d/$1"; then echo "$d/$1" && return 0; fi
  done
  return 1
}

# Atomic: a crash never leaves half a config file. The content gets a final newline.
write_file() { # path mode content
  wf_tmp="$ROOT$1.c2v-new"
  if mkdir -p "$ROOT${1%/*}" && printf '%s\n' "$3" >"$wf_tmp" && chmod "$2" "$wf_tmp" && mv -f "$wf_tmp" "$ROOT$1"; then return 0; fi
  rm -f "$wf_tmp"
  log "cannot write $1"
  return 1
}

remove_file() { if [ -e "$ROOT$1" ] || [ -L "$ROOT$1" ]; then rm -f "$ROOT$1"; fi; }

APPLIED='' REFUSED=''
applied() { APPLIED="$APPLIED $1"; }
refuse() { # key why
  REFUSED="$REFUSED $1"
  log "$1: not applied: $2"
}

# A property's value, exactly: the x keeps the trailing newlines that $(...) would drop. Empty when unset.
prop() {
  PV=''
  [ -f "$ROOT$PROPS/$1" ] || return 1
  PV=$(cat "$ROOT$PROPS/$1" && printf x)
  PV=${PV%x}
}

# Settings of one word: blanks around them are a typing slip, not part of the value.
word() {
  prop "$1"
  PV=${PV#"${PV%%[![:space:]]*}"}
  PV=${PV%"${PV##*[![:space:]]}"}
}

# Lists (DNS servers, domains, NTP servers) are words separated by spaces, commas or line breaks.
words() { # key -> PV as space-separated words; 1 (and PV empty) when it holds a character none of them has
  prop "$1"
  PV=$(printf '%s' "$PV" | tr ',\t\r\n' '    ' | tr -s ' ')
  case $PV in *[!A-Za-z0-9.:\ -]*) PV='' && return 1 ;; esac
  PV=${PV# } && PV=${PV% }
}

# --- What a value may be ----------------------------------------------------------------------------------------

is_hostname() { # RFC 1123: dot-separated labels of letters, digits and inner hyphens, 63 each, 253 in all
  case $1 in '' | *[!A-Za-z0-9.-]* | .* | *. | *..*) return 1 ;; esac
  [ ${#1} -le 253 ] || return 1
  ih_rest=$1
  while :; do
    ih_label=${ih_rest%%.*}
    [ ${#ih_label} -le 63 ] || return 1
    case $ih_label in -* | *-) return 1 ;; esac
    [ "$ih_rest" != "$ih_label" ] || return 0
    ih_rest=${ih_rest#*.}
  done
}

is_ipv4() { # four decimal octets, no leading zeros (some tools read those as octal)
  case $1 in '' | *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
  i4_rest=$1 i4_n=0
  while [ -n "$i4_rest" ]; do
    case ${i4_rest%%.*} in [0-9] | [1-9][0-9] | 1[0-9][0-9] | 2[0-4][0-9] | 25[0-5]) ;; *) return 1 ;; esac
    i4_n=$((i4_n + 1))
    case $i4_rest in *.*) i4_rest=${i4_rest#*.} ;; *) i4_rest='' ;; esac
  done
  [ "$i4_n" = 4 ]
}

# Loose, but nothing that would break a config line gets through.
is_ipv6() {
  case $1 in *:*) ;; *) return 1 ;; esac
  case $1 in *[!0-9A-Fa-f:.]* | *:::*) return 1 ;; esac
  [ ${#1} -le 45 ]
}


# --- Finding the OVF environment -------------------------------------------------------------------------------

ENV_FILE='' SOURCE=''

from_guestinfo() {
  if tool=$(find_bin vmware-rpctool); then
    name=vmware-rpctool && set -- "$tool" 'info-get guestinfo.ovfEnv'
  elif tool=$(find_bin vmtoolsd); then
    name=vmtoolsd && set -- "$tool" --cmd 'info-get guestinfo.ovfEnv'
  else
    log "guestinfo: open-vm-tools is not installed (no vmware-rpctool or vmtoolsd), so guestinfo.ovfEnv was not read" && return 1
  fi
  # Off VMware the backdoor call fails at once; the timeout is for a hypervisor that never answers.
  if find_bin timeout >/dev/null; then set -- timeout 10 "$@"; fi
  out=$ROOT$WORK/ovf-env.xml
  if run_quiet "$@" >"$out" && [ "$DRY" != 1 ] && grep -q '<' "$out"; then
    ENV_FILE=$out SOURCE="guestinfo ($name)" && return 0
  fi
  rm -f "$out"
  log "guestinfo: asked open-vm-tools ($name) for guestinfo.ovfEnv: none (not on VMware, or no properties)"
  return 1
}

cdrom_nodes() {
  for n in "$ROOT"/dev/sr[0-9]*; do
    if [ -b "$n" ] || { [ -n "$ROOT" ] && [ -e "$n" ]; }; then printf '%s\n' "${n#"$ROOT"}"; fi
  done
}

# A SCSI device of type 5 is a CD-ROM whose sr node may not be there yet.
cdrom_expected() {
  for t in "$ROOT"/sys/bus/scsi/devices/*/type; do
    [ -r "$t" ] && [ "$(cat "$t")" = 5 ] && return 0
  done
  return 1
}

from_cdrom() {
  if find_bin modprobe >/dev/null; then
    run_quiet modprobe -q sr_mod
    run_quiet modprobe -q isofs
  fi
  # Waits only while a CD-ROM is plausible: 5 s for one the SCSI layer reports, 1 s once for a probe still running.
  waited=0
  while [ "$DRY" != 1 ] && [ -z "$(cdrom_nodes)" ]; do
    if cdrom_expected; then limit=5; else limit=1; fi
    [ "$waited" -lt "$limit" ] || break
    sleep 1
    waited=$((waited + 1))
  done
  nodes=$(cdrom_nodes)
  if [ -z "$nodes" ]; then return 1; fi
  mnt=$RUN/cdrom tried=''
  for dev in $nodes; do
    tried="${tried:+$tried }$dev"
    mkdir -p "$ROOT$mnt" || return 1
    if run_quiet mount -t iso9660 -o ro "$dev" "$ROOT$mnt"; then
      for f in ovf-env.xml OVF-ENV.XML ovf_env.xml OVF_ENV.XML; do
        if [ -f "$ROOT$mnt/$f" ] && cp "$ROOT$mnt/$f" "$ROOT$WORK/ovf-env.xml"; then
          ENV_FILE=$ROOT$WORK/ovf-env.xml SOURCE="iso ($dev)" && break
        fi
      done
      run_quiet umount "$ROOT$mnt" || log "cannot unmount $dev from $mnt"
    fi
    rmdir "$ROOT$mnt" 2>/dev/null
    [ -z "$ENV_FILE" ] || return 0
  done
  log "iso: no ovf-env.xml on $tried"
  return 1
}

find_env() {
  if [ -n "${C2V_OVF_ENV:-}" ]; then ENV_FILE=$C2V_OVF_ENV SOURCE="file ($C2V_OVF_ENV)" && return 0; fi
  from_guestinfo || from_cdrom
}

parse_env() {
  mkdir -p "$ROOT$PROPS" && : >"$ROOT$WORK/macs" || return 1
  C2V_PROPS=$ROOT$PROPS C2V_MACS=$ROOT$WORK/macs awk -f "$ROOT$LIB/ovf-env.awk" "$ENV_FILE" >"$ROOT$WORK/awk.log" 2>&1
  pe_rc=$?
  while IFS= read -r l; do log "$SOURCE: $l"; done <"$ROOT$WORK/awk.log"
  [ "$pe_rc" = 0 ]
}

# --- Applying -----------------------------------------------------------------------------------------------------

host_keys() {
  exists /usr/sbin/sshd || return 0
  for k in "$ROOT"/etc/ssh/ssh_host_*_key; do [ ! -e "$k" ] || return 0; done
  if run ssh-keygen -A; then log "generated this VM's SSH host keys (ssh-keygen -A)"; else log "ssh-keygen -A failed: sshd will not start without host keys"; fi
}

apply_hostname() {
  word c2v.hostname
  [ -n "$PV" ] || return 0
  if ! is_hostname "$PV"; then
    refuse c2v.hostname "not a host name (RFC 1123: labels of letters, digits and inner hyphens, up to 63 each and 253 in all): kept the image's"; return
  fi
  # /etc/hostname holds the first label, as Debian and systemd advise; /etc/hosts maps both names.
  short=${PV%%.*}
  names=$short
  [ "$PV" = "$short" ] || names="$PV $short"
  hosts=''
  [ ! -f "$ROOT/etc/hosts" ] || hosts=$(awk '$1 != "127.0.1.1"' "$ROOT/etc/hosts")
  case $hosts in *127.0.0.1*) ;; *) hosts="127.0.0.1 localhost${hosts:+
$hosts}" ;; esac
  write_file /etc/hostname 0644 "$short" && write_file /etc/hosts 0644 "$hosts
127.0.1.1 $names" || return
  if [ "$DRY" = 1 ]; then run hostname "$short"; elif ! { find_bin hostname >/dev/null && hostname "$short"; } 2>/dev/null && ! { printf '%s\n' "$short" >/proc/sys/kernel/hostname; } 2>/dev/null; then
    log "c2v.hostname: written to /etc/hostname, but could not be set now"
  fi
  applied c2v.hostname
}

apply_ntp() {
  td=/etc/systemd/timesyncd.conf.d/c2v.conf cs=/etc/chrony/sources.d/c2v.sources
  words c2v.ntp || { refuse c2v.ntp "not host names or addresses separated by spaces or commas"; return; }
  if [ -z "$PV" ]; then remove_file "$td"; remove_file "$cs"; return; fi
  servers=$PV
  for s in $servers; do is_hostname "$s" || is_ipv4 "$s" || is_ipv6 "$s" || { refuse c2v.ntp "not a host name or address"; return; }; done
  client=''
  if exists /lib/systemd/systemd-timesyncd || exists /usr/lib/systemd/systemd-timesyncd; then
    write_file "$td" 0644 "# Written by c2v-guest from the OVF property c2v.ntp.
[Time]
NTP=$servers" && client=timesyncd
  fi
  if [ -d "$ROOT/etc/chrony" ]; then
    text="# Written by c2v-guest from the OVF property c2v.ntp."
    for s in $servers; do text="$text
server $s iburst"; done
    write_file "$cs" 0644 "$text" && client=chrony
  fi
  if [ -n "$client" ]; then applied c2v.ntp; else refuse c2v.ntp "no NTP client in the image (systemd-timesyncd or chrony)"; fi
}

# c2v's block between the markers is replaced; every other line (build-time keys among them) stays.
apply_ssh_keys() {
  f=/root/.ssh/authorized_keys
  prop c2v.ssh_keys
  keys=$(printf '%s\n' "$PV" | tr -d '\r\000' | awk 'NF && $1 !~ /^#/')
  if [ -z "$keys" ] && { [ ! -f "$ROOT$f" ] || ! grep -qxF "$KEYS_BEGIN" "$ROOT$f"; }; then return 0; fi
  kept=''
  [ ! -f "$ROOT$f" ] || kept=$(awk -v b="$KEYS_BEGIN" -v e="$KEYS_END" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$ROOT$f")
  if [ -z "$kept$keys" ]; then remove_file "$f"; return; fi
  if ! { mkdir -p "$ROOT/root/.ssh" && chmod 0700 "$ROOT/root/.ssh"; }; then log "cannot make /root/.ssh"; return; fi
  write_file "$f" 0600 "$kept${kept:+${keys:+
}}${keys:+$KEYS_BEGIN
$keys
$KEYS_END}" || return
  [ "$DRY" = 1 ] || chown -R 0:0 "$ROOT/root/.ssh" 2>/dev/null
  [ -z "$keys" ] || applied c2v.ssh_keys
}

apply_password() {
  prop c2v.root_password
  [ -n "$PV" ] || return 0
  case $PV in *'
'*) refuse c2v.root_password "it holds a line break"; return ;; esac
  find_bin chpasswd >/dev/null || { refuse c2v.root_password "chpasswd is not in the image"; return; }
  # printf is a shell builtin: the password is in no process's argv, only on chpasswd's stdin.
  if [ "$DRY" = 1 ]; then
    log "dry run: would run: chpasswd, reading root:PASSWORD ($(printf 'root:%s\n' "$PV" | wc -c | tr -d ' ') bytes) on its stdin"
  elif ! printf 'root:%s\n' "$PV" | chpasswd; then
    refuse c2v.root_password "chpasswd failed"
    return
  fi
  applied c2v.root_password
}

apply_app() {
  tmp=$ROOT$APP_ENV.c2v-new
  (umask 077 && : >"$tmp") || { log "cannot write $APP_ENV"; return; }
  n=0
  set -f
  for name in $C2V_APP_PROPERTIES; do
    case $name in [A-Za-z_]*) ;; *) continue ;; esac
    case $name in *[!A-Za-z0-9_]*) continue ;; esac
    [ -f "$ROOT$PROPS/app.$name" ] || continue
    # vSphere writes booleans True and False; the app gets them as the OVF's default spells them, true and false.
    case " $C2V_APP_BOOLEANS " in
      *" $name "*)
        case $(cat "$ROOT$PROPS/app.$name") in
          [Tt][Rr][Uu][Ee]) printf true >"$ROOT$PROPS/app.$name" ;;
          [Ff][Aa][Ll][Ss][Ee]) printf false >"$ROOT$PROPS/app.$name" ;;
        esac
        ;;
    esac
    # Single-quoted, each quote written '\'': nothing in the value expands. sed keeps a missing last newline missing.
    {
      printf "export %s='" "$name"
      sed "s/'/'\\\\''/g" "$ROOT$PROPS/app.$name"
      printf "'\n"
    } >>"$tmp"
    applied "app.$name"
    n=$((n + 1))
  done
  set +f
  # None set: the app runs with the environment its image gives it.
  if [ "$n" = 0 ]; then rm -f "$tmp"; remove_file "$APP_ENV"; return; fi
  mv -f "$tmp" "$ROOT$APP_ENV" || { log "cannot write $APP_ENV"; return; }
  if [ -n "$C2V_APP_OWNER" ] && ! run_quiet chown "$C2V_APP_OWNER" "$ROOT$APP_ENV"; then
    log "cannot give $APP_ENV to $C2V_APP_OWNER: left it root's, so the app runs with its image's defaults"
  fi
}

# --- Main ---------------------------------------------------------------------------------------------------------

cleanup() { rm -rf "$ROOT$WORK" "$ROOT$APP_ENV.c2v-new"; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
cleanup
if ! { mkdir -p "$ROOT$RUN" && chmod 0755 "$ROOT$RUN" && (umask 077 && mkdir "$ROOT$WORK"); }; then
  log "cannot make $WORK"
  exit 1
fi

host_keys
# Without an environment: DHCP and the image's app settings again, but keys, time servers and host name stay as
# the last one left them: a tools hiccup must not lock the admin out.
if ! find_env || ! parse_env; then
  if [ -n "$SOURCE" ]; then log "the OVF environment from $SOURCE is unreadable: keeping the image's hostname and DHCP"; else log "no OVF environment: keeping the image's hostname and DHCP"; fi
  rm -rf "$ROOT$PROPS"
  apply_network
  apply_app
  exit 0
fi
apply_hostname
apply_network
apply_ntp
apply_ssh_keys
apply_password
apply_app
log "OVF environment from $SOURCE: applied${APPLIED:- nothing (no property set)}${REFUSED:+; not applied:$REFUSED}"
exit 0
