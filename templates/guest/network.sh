{{! Installed as /usr/local/lib/c2v/network.sh and sourced by c2v-guest: the network properties, written for }}
{{! the networking c2v installed (ifupdown, or NetworkManager on RHEL-likes). It uses c2v-guest's helpers. }}
{{! shellcheck shell=sh }}
{{! shellcheck disable=SC2154 # ROOT, WORK, C2V_NETWORK and PV are c2v-guest's, which sources this file }}
# Part of c2v's guest agent (/usr/local/lib/c2v/c2v-guest), which sources it.

is_cidr() {
  case $1 in */*/* | */ | /*) return 1 ;; */*) ;; *) return 1 ;; esac
  case ${1#*/} in [1-9] | [12][0-9] | 3[0-2]) ;; *) return 1 ;; esac
  is_ipv4 "${1%/*}"
}

# NICs with a device behind them (lo and virtual ones have none), in name order; eth0 when none has appeared yet.
nics() {
  nc_found=''
  for d in "$ROOT"/sys/class/net/*; do
    if [ -e "$d/device" ] || [ -L "$d/device" ]; then nc_found="$nc_found ${d##*/}"; fi
  done
  echo "${nc_found:-eth0}"
}

# The first adapter of the environment, by MAC, else the first NIC.
static_nic() {
  sn_mac=$(head -n 1 "$ROOT$WORK/macs" 2>/dev/null)
  for n in $1; do
    if [ -n "$sn_mac" ] && [ "$(tr 'A-F' 'a-f' <"$ROOT/sys/class/net/$n/address" 2>/dev/null)" = "$sn_mac" ]; then
      echo "$n"
      return
    fi
  done
  for n in $1; do echo "$n"; return; done
}

apply_network() {
  word c2v.ipv4; ip=$PV
  word c2v.gateway; gw=$PV
  word c2v.dns; dns=$PV
  word c2v.search; search=$PV
  case $C2V_NETWORK in ifupdown | networkmanager) ;; *)
    [ -z "$ip$gw$dns$search" ] || log "network properties set, but c2v does not manage this image's network (it brought its own): left as it is"
    return 0
    ;;
  esac
  if [ -n "$ip" ] && ! is_cidr "$ip"; then refuse c2v.ipv4 "not an IPv4 address with a prefix length, like 192.168.10.20/24: DHCP instead"; ip=''; fi
  if [ -n "$gw" ] && ! is_ipv4 "$gw"; then refuse c2v.gateway "not an IPv4 address"; gw=''; fi
  if [ -n "$gw" ] && [ -z "$ip" ]; then refuse c2v.gateway "a gateway needs a static address (c2v.ipv4); DHCP gives its own"; gw=''; fi
  words c2v.dns || refuse c2v.dns "not addresses separated by spaces or commas"
  dns=$PV
  words c2v.search || refuse c2v.search "not domain names separated by spaces or commas"
  search=$PV
  v4dns='' v6dns='' alldns=''
  for a in $dns; do
    if is_ipv4 "$a"; then v4dns="$v4dns $a"; elif is_ipv6 "$a"; then v6dns="$v6dns $a"; else
      refuse c2v.dns "not an IPv4 or IPv6 address: DNS left to DHCP"
      v4dns='' v6dns='' alldns=''
      break
    fi
    alldns="${alldns:+$alldns }$a"
  done
  for a in $search; do is_hostname "$a" || { refuse c2v.search "not a domain name"; search=''; break; }; done
  all_nics=$(nics)
  nic=$(static_nic "$all_nics")
  if [ "$C2V_NETWORK" = networkmanager ]; then network_nm; else network_ifupdown; fi
  [ -z "$ip" ] || applied c2v.ipv4
  [ -z "$gw" ] || applied c2v.gateway
  [ -z "$v4dns$v6dns" ] || applied c2v.dns
  [ -z "$search" ] || applied c2v.search
}

network_ifupdown() {
  text="# Written by c2v-guest at every boot from the OVF properties c2v.ipv4 and c2v.gateway; DHCP where none is set.
auto lo
iface lo inet loopback"
  for n in $all_nics; do
    text="$text

allow-hotplug $n"
    if [ -n "$ip" ] && [ "$n" = "$nic" ]; then
      text="$text
iface $n inet static
	address $ip${gw:+
	gateway $gw}"
    else
      text="$text
iface $n inet dhcp"
    fi
  done
  write_file /etc/network/interfaces 0644 "$text"
  if [ -n "$search" ] && [ -z "$v4dns$v6dns" ]; then refuse c2v.search "with ifupdown, search domains go into resolv.conf with the servers of c2v.dns"; search=''; fi
  [ -n "$v4dns$v6dns" ] || return 0
  text="# Written by c2v-guest from the OVF properties c2v.dns and c2v.search."
  for a in $alldns; do text="$text
nameserver $a"; done
  [ -z "$search" ] || text="$text
search $search"
  # systemd-resolved's stub stays: its own settings take the servers instead of a file it would not read.
  if [ -L "$ROOT/etc/resolv.conf" ]; then
    case $(readlink "$ROOT/etc/resolv.conf") in */run/systemd/resolve/*)
      write_file /etc/systemd/resolved.conf.d/c2v.conf 0644 "# Written by c2v-guest from the OVF properties c2v.dns and c2v.search.
[Resolve]
DNS=$alldns${search:+
Domains=$search}"
      return
      ;;
    esac
  fi
  write_file /etc/resolv.conf 0644 "$text"
}

nm_list() { for w in $1; do printf '%s;' "$w"; done; }

network_nm() {
  f=/etc/NetworkManager/system-connections/c2v-$nic.nmconnection
  for old in "$ROOT"/etc/NetworkManager/system-connections/c2v-*.nmconnection; do
    [ "$old" = "$ROOT$f" ] || rm -f "$old"
  done
  if [ -z "$ip$v4dns$v6dns$search" ]; then remove_file "$f"; return; fi
  # Without an address: DHCP, but with these servers instead of DHCP's.
  text="# Written by c2v-guest at every boot from the OVF properties c2v.ipv4, c2v.gateway, c2v.dns and c2v.search.
[connection]
id=c2v-$nic
type=ethernet
interface-name=$nic
autoconnect-priority=100

[ipv4]"
  if [ -n "$ip" ]; then text="$text
method=manual
address1=$ip${gw:+
gateway=$gw}"; else text="$text
method=auto${v4dns:+
ignore-auto-dns=true}"; fi
  [ -z "$v4dns" ] || text="$text
dns=$(nm_list "$v4dns")"
  [ -z "$search" ] || text="$text
dns-search=$(nm_list "$search")"
  text="$text

[ipv6]
method=auto${v6dns:+
dns=$(nm_list "$v6dns")}"
  write_file "$f" 0600 "$text"
}
