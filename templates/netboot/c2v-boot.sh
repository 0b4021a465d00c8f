{{! shellcheck shell=sh }}
# c2v netboot: /scripts/c2v, appended by c2v with the modules it needs (/c2v/modules) to the image's own initrd.
# initramfs-tools' init sources it for boot=c2v (as /scripts/nfs for boot=nfs) and calls mount_top, mount_premount,
# mountroot and mount_bottom. It fetches the squashfs root image c2v.root= names, checks it against c2v.sha256=,
# and mounts an overlay of it and a tmpfs at ${rootmnt}, all under /run, which init moves into the system.
#   c2v.root=http://HOST[:PORT]/PATH       downloaded into RAM (busybox wget)
#   c2v.root=/dev/NAME                     the device is the image (a CD, a virtual disk)
#   c2v.root=nfs:SERVER-IP:/DIR/FILE       DIR mounted read-only over NFSv3 (klibc nfsmount: an address, no name)
# Needs busybox in the initramfs (wget, sha256sum, insmod, mount -o loop): Debian adds it once it is installed.
# Names start with c2v_: this file runs in init's shell, whose own variables must survive it.

C2V_DIR=/run/c2v-root

# No hook folders of our own to run, but init calls these, and must not get another boot script's.
mount_top() { :; }
mount_premount() { :; }
mount_bottom() { :; }

# One line, then panic's rescue shell. panic returns when that shell exits: ask again, unless the user mounted the
# root by hand, and then the boot goes on with it.
c2v_fail() {
	[ "${quiet?}" = y ] || echo "failed."
	# panic writes to /dev/console, the last console= only (tty0 on c2v's command line); the other consoles, the
	# serial port an operator or a test watches included, get the line here. /dev/console's has C in its flags.
	while read -r c2v_con c2v_flags; do
		case ${c2v_flags#*(} in *C*) ;; *) { echo "c2v-netboot: $*" >"/dev/$c2v_con"; } 2>/dev/null ;; esac
	done </proc/consoles
	while ! c2v_is_mounted "${rootmnt?}"; do
		panic "c2v-netboot: $*"
	done
	return 1
}

c2v_is_mounted() {
	while read -r _ c2v_m _; do [ "$c2v_m" = "$1" ] && return 0; done </proc/mounts
	return 1
}

# init reads only the names it knows, and c2v.* are no shell names it could export: read them here.
c2v_parse_cmdline() {
	C2V_ROOT='' C2V_SHA256=''
	read -r c2v_cmdline </proc/cmdline
	set -f
	for c2v_arg in $c2v_cmdline; do
		case $c2v_arg in
		c2v.root=*) C2V_ROOT=${c2v_arg#c2v.root=} ;;
		c2v.sha256=*) C2V_SHA256=$(echo "${c2v_arg#c2v.sha256=}" | tr A-F a-f) ;;
		esac
	done
	set +f
}

# NN- orders the files by dependency; a module already loaded, or built in, has /sys/module/NAME.
c2v_load_modules() {
	for c2v_ko in /c2v/modules/*.ko; do
		[ -f "$c2v_ko" ] || continue
		c2v_mod=${c2v_ko##*/}
		c2v_mod=${c2v_mod%.ko}
		case $c2v_mod in [0-9]*-*) c2v_mod=${c2v_mod#*-} ;; esac
		[ -d "/sys/module/$(echo "$c2v_mod" | tr - _)" ] && continue
		# A failure shows as the mount that needed the module failing, with its own message.
		insmod "$c2v_ko" || log_warning_msg "c2v-netboot: could not load $c2v_ko"
	done
}

c2v_fetch() {
	log_begin_msg "Downloading $C2V_ROOT"
	mkdir -p "$C2V_DIR/img"
	# A tmpfs of its own: /run is RUNSIZE, 10% of RAM, too small for a root image.
	mount -t tmpfs -o mode=0700 c2v-img "$C2V_DIR/img" || c2v_fail "cannot mount a tmpfs for the root image" || return
	C2V_FILE=$C2V_DIR/img/root.squashfs
	# No -T: Debian's busybox before 1.36.1-5 has no wget timeouts, and crashes (SIGSEGV) when given one.
	for c2v_try in 1 2 3; do
		rm -f "$C2V_FILE"
		c2v_err=$(wget -q -O "$C2V_FILE" "$C2V_ROOT" 2>&1) && c2v_err= && break
		c2v_err=$(echo "${c2v_err:-wget failed}" | tail -n 1)
		[ "$c2v_try" = 3 ] || sleep 2
	done
	[ -z "$c2v_err" ] || c2v_fail "cannot download the root image $C2V_ROOT ($c2v_err):" \
		"check that the server is up and serves that file, and that the VM has the RAM to hold it" || return
	log_end_msg
}

c2v_nfs() {
	c2v_srv=${C2V_ROOT#nfs:}
	c2v_path=${c2v_srv#*:}
	c2v_srv=${c2v_srv%%:*}
	log_begin_msg "Mounting $c2v_srv:${c2v_path%/*} over NFS"
	mkdir -p "$C2V_DIR/nfs"
	nfsmount -o ro,nolock "$c2v_srv:${c2v_path%/*}" "$C2V_DIR/nfs" ||
		c2v_fail "cannot mount ${c2v_srv}:${c2v_path%/*} (from c2v.root=$C2V_ROOT) read-only over NFSv3:" \
			"check the server's address (an IP address), its exports, and that it is reachable" || return
	C2V_FILE=$C2V_DIR/nfs/${c2v_path##*/}
	[ -f "$C2V_FILE" ] || c2v_fail "the NFS export ${c2v_srv}:${c2v_path%/*} has no ${c2v_path##*/}" || return
	log_end_msg
}

c2v_wait_device() {
	log_begin_msg "Waiting for $C2V_ROOT"
	c2v_n=0
	while [ ! -b "$C2V_ROOT" ] && [ "$c2v_n" -lt "${ROOTDELAY:-30}" ]; do sleep 1; c2v_n=$((c2v_n + 1)); done
	[ -b "$C2V_ROOT" ] || c2v_fail "c2v.root=$C2V_ROOT is not a block device (after ${c2v_n}s):" \
		"attach the root image as a disk or CD, or name the right device" || return
	C2V_FILE=$C2V_ROOT
	log_end_msg
}

c2v_check() {
	[ -n "$C2V_SHA256" ] || return 0
	log_begin_msg "Checking the sha256 of $C2V_ROOT"
	c2v_sum=$(sha256sum <"$C2V_FILE")
	c2v_sum=${c2v_sum%% *}
	[ "$c2v_sum" = "$C2V_SHA256" ] || c2v_fail "root image $C2V_ROOT has sha256 $c2v_sum, but c2v.sha256 is" \
		"$C2V_SHA256: serve the root.squashfs that came with this boot.ipxe (or fix c2v.sha256)" || return
	log_end_msg
}

c2v_mount() {
	log_begin_msg "Mounting an overlay of $C2V_ROOT and a tmpfs on ${rootmnt?}"
	mkdir -p "$C2V_DIR/lower" "$C2V_DIR/rw"
	c2v_opts=ro
	[ -b "$C2V_FILE" ] || c2v_opts=ro,loop
	mount -t squashfs -o "$c2v_opts" "$C2V_FILE" "$C2V_DIR/lower" ||
		c2v_fail "cannot mount $C2V_ROOT as squashfs: is it c2v's root.squashfs, and are the squashfs and" \
			"loop modules in /c2v/modules or the kernel?" || return
	mount -t tmpfs -o mode=0755 c2v-rw "$C2V_DIR/rw" && mkdir -p "$C2V_DIR/rw/upper" "$C2V_DIR/rw/work" &&
		mount -t overlay -o "lowerdir=$C2V_DIR/lower,upperdir=$C2V_DIR/rw/upper,workdir=$C2V_DIR/rw/work" \
			overlay "$rootmnt" ||
		c2v_fail "cannot mount the overlay on $rootmnt: is the overlay module in /c2v/modules or the kernel?" ||
		return
	log_end_msg
}

# The kernel log shows the line on every console (unless quiet), and keeps it for the system's journal, where
# journalctl -t c2v-netboot finds it; when quiet hides it there, /dev/console still gets it.
c2v_say() {
	{ echo "<5>$*" >/dev/kmsg; } 2>/dev/null
	c2v_level=$(cut -f1 /proc/sys/kernel/printk 2>/dev/null)
	[ "${c2v_level:-0}" -gt 5 ] || echo "$*"
}

mountroot() {
	for c2v_cmd in wget sha256sum insmod; do
		command -v "$c2v_cmd" >/dev/null 2>&1 ||
			{ c2v_fail "this initramfs has no $c2v_cmd: install busybox in the image and run update-initramfs"; return; }
	done
	c2v_parse_cmdline
	[ -n "$C2V_ROOT" ] || { c2v_fail "no c2v.root= on the kernel command line (an http:// URL, /dev/NAME" \
		"or nfs:SERVER-IP:/PATH of the root.squashfs)"; return; }
	log_begin_msg "Loading the modules c2v added"
	c2v_load_modules
	log_end_msg
	c2v_sum=
	case $C2V_ROOT in
	/dev/*) c2v_wait_device || return ;;
	*)
		# In a subshell: bookworm's configure_networking ends by sourcing /run/net-*.conf, which is missing when
		# DHCP got no answer, and that kills the shell, init with it, in a kernel panic that says nothing.
		(configure_networking) || { c2v_fail "no network for c2v.root=$C2V_ROOT: DHCP got no answer" \
			"(ip=$IP); check the VM's NIC and the DHCP server"; return; }
		case $C2V_ROOT in nfs:*) c2v_nfs ;; *) c2v_fetch ;; esac || return
		;;
	esac
	c2v_check && c2v_mount || return
	c2v_sum=$(echo "${c2v_sum:-not checked}" | cut -c1-12)
	c2v_say "c2v-netboot: / is an overlay of $C2V_ROOT (sha256 $c2v_sum) and a RAM upper layer"
}
