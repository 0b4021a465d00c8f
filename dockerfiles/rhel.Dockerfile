# c2v appliance layer for RHEL-like distributions: RHEL, Rocky, Alma, CentOS Stream, Fedora
# (untested here: no RPM mirror is reachable from c2v's CI).
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
      mkdir -p /etc/dracut.conf.d; \
      printf 'hostonly="no"\nadd_drivers+=" vmw_pvscsi vmxnet3 mptspi ahci virtio_blk virtio_scsi virtio_net "\n' > /etc/dracut.conf.d/c2v.conf; \
      pkgs="$pkgs kernel-core dracut"; \
    fi; \
    case "$C2V_INIT" in systemd) pkgs="$pkgs systemd" ;; esac; \
    if [ "$C2V_NETWORK" = 1 ]; then pkgs="$pkgs NetworkManager open-vm-tools"; fi; \
    if [ "$C2V_SSH" = 1 ]; then pkgs="$pkgs openssh-server"; fi; \
    if [ -n "$pkgs" ]; then (dnf -y install $pkgs || yum -y install $pkgs); (dnf clean all || yum clean all); fi; \
    if [ "$C2V_KERNEL" = 1 ]; then for k in /lib/modules/*; do dracut -f "/boot/initramfs-$(basename "$k").img" "$(basename "$k")"; done; fi; \
    sh /tmp/c2v/setup.sh; \
    rm -rf /tmp/c2v
