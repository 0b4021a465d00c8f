# c2v appliance layer for Alpine (untested here: no Alpine mirror is reachable from c2v's CI).
ARG C2V_BASE
FROM ${C2V_BASE}
USER root
ARG C2V_KERNEL=0
ARG C2V_INIT=none
ARG C2V_NETWORK=0
ARG C2V_SSH=0
COPY c2v /tmp/c2v
RUN set -eu; \
    pkgs=""; \
    if [ "$C2V_KERNEL" = 1 ]; then \
      mkdir -p /etc/mkinitfs; \
      echo 'features="ata base ext4 scsi virtio"' > /etc/mkinitfs/mkinitfs.conf; \
      pkgs="$pkgs linux-virt mkinitfs e2fsprogs"; \
    fi; \
    case "$C2V_INIT" in openrc) pkgs="$pkgs openrc busybox-openrc busybox-mdev-openrc" ;; esac; \
    if [ "$C2V_NETWORK" = 1 ]; then pkgs="$pkgs ifupdown-ng open-vm-tools open-vm-tools-openrc"; fi; \
    if [ "$C2V_SSH" = 1 ]; then pkgs="$pkgs openssh-server openssh-server-openrc"; fi; \
    if [ -n "$pkgs" ]; then apk add --no-cache $pkgs; fi; \
    sh /tmp/c2v/setup.sh; \
    rm -rf /tmp/c2v
