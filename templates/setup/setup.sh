#!/bin/sh
{{! c2v/setup.sh: runs inside the derived image's build, after the dockerfiles/ template installed the packages. }}
# Written by c2v; runs once while the appliance image is built.
set -eu
cd /tmp/c2v

{{#if ifupdown}}
mkdir -p /etc/network
install -m 0644 interfaces /etc/network/interfaces
{{#if openrc}}
rc-update add networking boot
{{/if}}

{{/if}}
{{#if networkManager}}
{{#if systemd}}
systemctl enable NetworkManager
{{else}}
rc-update add NetworkManager default
{{/if}}

{{/if}}
{{! A login prompt on the serial console, where vSphere's serial port and our boot checks look. }}
{{#if systemd}}
systemctl enable serial-getty@ttyS0.service
{{else}}
{{#if alpine}}
grep -q '^ttyS0:' /etc/inittab || echo 'ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100' >> /etc/inittab
{{else}}
grep -q '^T0:' /etc/inittab || echo 'T0:2345:respawn:/sbin/agetty -L 115200 ttyS0 vt100' >> /etc/inittab
{{/if}}
{{/if}}
{{#if openrc}}
{{#if alpine}}
rc-update add devfs sysinit
rc-update add mdev sysinit
rc-update add hwdrivers sysinit
{{/if}}
{{/if}}
if [ -e /etc/init.d/open-vm-tools ] || [ -e /lib/systemd/system/open-vm-tools.service ] || [ -e /usr/lib/systemd/system/vmtoolsd.service ]; then
{{#if systemd}}
  systemctl enable open-vm-tools.service 2>/dev/null || systemctl enable vmtoolsd.service 2>/dev/null || true
{{else}}
  rc-update add open-vm-tools default 2>/dev/null || true
{{/if}}
fi

{{#if app}}
mkdir -p {{wrapperDir | sh}}
install -m 0755 app-run {{wrapperPath | sh}}
{{#if systemd}}
install -m 0644 {{serviceName | word}}.service /etc/systemd/system/{{serviceName | word}}.service
systemctl enable {{serviceName | word}}.service
{{else}}
install -m 0755 {{serviceName | word}}.openrc /etc/init.d/{{serviceName | word}}
rc-update add {{serviceName | word}} default
{{/if}}

{{/if}}
{{#if ssh}}
install -d -m 0700 /root/.ssh
install -m 0600 authorized_keys /root/.ssh/authorized_keys
{{#if systemd}}
(systemctl enable ssh.service 2>/dev/null || systemctl enable sshd.service)
{{else}}
rc-update add sshd default 2>/dev/null || rc-update add ssh default
{{/if}}

{{/if}}
{{! No default passwords: root stays locked unless the user hands us a hash. }}
{{#if rootPasswordHash}}
{{! shellcheck disable=SC2016 # a crypt hash: its $ signs must reach usermod as they are }}
usermod -p {{rootPasswordHash | sh}} root
{{else}}
passwd -l root >/dev/null 2>&1 || true
{{/if}}
