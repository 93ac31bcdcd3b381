#!/usr/bin/env bash
# Build the local Debian 12 systemd base image the Molecule scenarios and `make demo` run on.
# No container registry is reachable from CI, so the image is made with debootstrap and `docker import`.
# Skips the build when the image already exists. Users with a registry set WARREN_IMAGE to their own image
# (e.g. an openSUSE Leap systemd image) and never call this.
#
# Usage: build-image.sh [IMAGE]     (default: $WARREN_IMAGE or warren/debian12-systemd:latest)
set -euo pipefail

image=${1:-${WARREN_IMAGE:-warren/debian12-systemd:latest}}
mirror=${WARREN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '[build-image] %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  log "$image exists; nothing to build"
  exit 0
fi
if [[ $image != warren/* ]]; then
  log "$image is not in the local engine and only warren/* images are built here: pull or build it yourself"
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  log "debootstrap needs root"
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/warren-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

log "debootstrap bookworm into $rootfs (about a minute)"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
# The images are rebuilt rarely; an old Release file must not break apt inside them.
echo 'Acquire::Check-Valid-Until "false";' >"$rootfs/etc/apt/apt.conf.d/99warren-no-check-valid-until"
echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/99warren-no-recommends"
# Every container gets its own machine-id at boot; units that only make sense on real hardware stay off.
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
for unit in systemd-firstboot.service systemd-remount-fs.service getty@tty1.service console-getty.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*

log "importing as $image"
tar -C "$rootfs" -c . | docker import -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' - "$image" >/dev/null
log "built $image"
