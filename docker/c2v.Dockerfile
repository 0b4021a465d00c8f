# c2v's own image: the CLI and the host tools `c2v convert` and `c2v prepare` run, nothing else (no Docker, no
# QEMU: `c2v verify` stays on hosts that have them). Built by scripts/make-c2v-image from a staging folder that
# holds a pruned production copy of the project, because the npm registry may be out of reach inside a build.
#
# Trixie, because its own packages are new enough: Node 20.19 (c2v's minimum) and e2fsprogs 1.47.2 (mke2fs -d
# reads a tar from 1.47.1 on; bookworm needs backports for it).
ARG BASE=debian:trixie
FROM ${BASE}

# What c2v runs (src/adapters/exec.ts TOOL_PACKAGES and the stages): mke2fs and filefrag (e2fsprogs); libarchive,
# which mke2fs loads at run time to read a tar for -d (e2fsprogs only Suggests it, and without it mke2fs fails with
# "Operation not permitted while populating file system"); mkfs.vfat (dosfstools); mmd and mcopy (mtools);
# grub-mkimage with the i386-pc and x86_64-efi module folders; zstd for zstd layers; CA certificates for registries
# over HTTPS. No recommends (grub-common's would pull os-prober and more), and no documentation, manual pages or
# translations. The mke2fs line after the install proves it reads a tar here.
RUN printf 'path-exclude=/usr/share/%s/*\n' doc man info locale > /etc/dpkg/dpkg.cfg.d/c2v-nodoc \
 && apt-get update \
 && apt-get install -y --no-install-recommends nodejs e2fsprogs libarchive13t64 dosfstools mtools \
      grub-common grub-pc-bin grub-efi-amd64-bin zstd ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && tar -C /etc -cf - hostname | mke2fs -q -t ext4 -d - /tmp/probe.img 8M && rm /tmp/probe.img \
 && test -f /usr/lib/grub/i386-pc/boot.img -a -f /usr/lib/grub/x86_64-efi/linux.mod

# A fixed non-root uid/gid, so that runAsUser/fsGroup in a pod and `--user` on the engine can name it. /work is
# the only place c2v writes: a volume in practice (the root filesystem may be read-only); its image copy is
# owned by c2v so that a plain `docker run` without a volume works too.
RUN groupadd --system --gid 10001 c2v \
 && useradd --system --uid 10001 --gid 10001 --home-dir /work --no-create-home --shell /usr/sbin/nologin c2v \
 && install -d -o 10001 -g 10001 -m 0755 /work

COPY --chown=root:root app/ /opt/c2v/
RUN ln -s /opt/c2v/bin/c2v.js /usr/local/bin/c2v && c2v --version

# HOME and TMPDIR on the work volume: os.tmpdir() (inspect, prepare's look-ups) and registry credentials
# (~/.docker/config.json) land there. A conversion stages its files beside -o, or in --workdir.
ENV HOME=/work TMPDIR=/work
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["c2v"]
CMD ["--help"]
