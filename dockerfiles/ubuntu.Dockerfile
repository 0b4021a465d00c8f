# c2v appliance layer for Ubuntu (untested here: no Ubuntu mirror is reachable from c2v's CI).
ARG C2V_BASE
FROM ${C2V_BASE}
USER root
ARG C2V_KERNEL=0
ARG C2V_INIT=none
ARG C2V_NETWORK=0
ARG C2V_SSH=0
ARG DEBIAN_FRONTEND=noninteractive
COPY c2v /tmp/c2v
RUN set -eu; \
    pkgs=""; \
    if [ "$C2V_KERNEL" = 1 ]; then \
      mkdir -p /etc/initramfs-tools; \
      printf '%s\n' vmw_pvscsi vmxnet3 mptspi mptsas ahci virtio_pci virtio_blk virtio_scsi virtio_net >> /etc/initramfs-tools/modules; \
      pkgs="$pkgs linux-image-virtual initramfs-tools"; \
    fi; \
    case "$C2V_INIT" in systemd) pkgs="$pkgs systemd systemd-sysv udev dbus" ;; esac; \
    if [ "$C2V_NETWORK" = 1 ]; then pkgs="$pkgs ifupdown isc-dhcp-client iproute2 open-vm-tools"; fi; \
    if [ "$C2V_SSH" = 1 ]; then pkgs="$pkgs openssh-server"; fi; \
    if [ -n "$pkgs" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $pkgs; \
      apt-get clean; rm -rf /var/lib/apt/lists/*; \
    fi; \
    sh /tmp/c2v/setup.sh; \
    rm -rf /tmp/c2v
