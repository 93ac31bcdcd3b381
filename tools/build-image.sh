#!/usr/bin/env bash
# Build the local Debian 12 systemd base image the Molecule scenarios and `make demo` run on.
# No container registry is reachable from CI, so the image is made with debootstrap and `docker import`.
# Skips the build when the image already exists. Users with a registry set WARREN_IMAGE to their own image
# (e.g. an openSUSE Leap systemd image) and never call this.
#
# `--arch arm64` builds the linux/arm64 image of the arm64 Molecule scenario; on an x86_64 machine it needs
# tools/ensure-arm64-emulation.sh first, and adds the workarounds qemu-user needs (see add_emulation_workarounds).
#
# Usage: build-image.sh [--arch amd64|arm64] [IMAGE]
#   default IMAGE: $WARREN_IMAGE or warren/debian12-systemd:latest (amd64),
#                  $WARREN_ARM64_IMAGE or warren/debian12-systemd-arm64:latest (arm64)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

arch=amd64
if [[ ${1:-} == --arch ]]; then
  arch=${2:?--arch needs amd64 or arm64}
  shift 2
fi
case $arch in
  amd64) image=${1:-${WARREN_IMAGE:-warren/debian12-systemd:latest}} ;;
  arm64) image=${1:-${WARREN_ARM64_IMAGE:-warren/debian12-systemd-arm64:latest}} ;;
  *)
    echo "[build-image] unknown --arch $arch (amd64 or arm64)" >&2
    exit 1
    ;;
esac
mirror=${WARREN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { printf '[build-image] %s\n' "$*" >&2; }

# Erlang's aarch64 JIT writes its code through a second (dual) mapping of the same memory, which qemu-user does
# not emulate: beam.smp dies with SIGSEGV. With a perf map the JIT keeps one mapping. It writes
# /tmp/perf-<pid>.map files (under 1 MB per CLI call); `+JPperf true` would also write 5-45 MB dumps.
emulated_erl_flags='+JPperf map'

# Changes for running an arm64 image under qemu-user on another architecture. They exist only in this test
# image, never in what the roles install: real Arm64 hosts need none of them.
add_emulation_workarounds() {
  local root=$1 unit
  # systemd cannot set up unit credentials under qemu-user ("Failed to set up credentials: Invalid argument",
  # 243/CREDENTIALS): sysusers, tmpfiles and sysctl would fail and the system end up degraded. These units only
  # read optional credentials; turn LoadCredential= off for them.
  for unit in systemd-sysctl systemd-sysusers systemd-tmpfiles-setup systemd-tmpfiles-clean \
    systemd-tmpfiles-setup-dev; do
    mkdir -p "$root/etc/systemd/system/$unit.service.d"
    printf '# qemu-user cannot set up unit credentials (tools/build-image.sh)\n[Service]\nLoadCredential=\n' \
      >"$root/etc/systemd/system/$unit.service.d/qemu-no-credentials.conf"
  done
  # Every service (rabbitmq-server, also the start from its package's postinst) gets Erlang's flag.
  mkdir -p "$root/etc/systemd/system.conf.d"
  printf '# Erlang JIT under qemu-user (tools/build-image.sh)\n[Manager]\nDefaultEnvironment="ERL_FLAGS=%s"\n' \
    "$emulated_erl_flags" >"$root/etc/systemd/system.conf.d/10-qemu-erlang-jit.conf"
  # sudo (Ansible's become) resets the environment: keep the flag for rabbitmqctl run by become tasks.
  printf '# Erlang JIT under qemu-user (tools/build-image.sh)\nDefaults env_keep += "ERL_FLAGS"\n' \
    >"$root/etc/sudoers.d/qemu-erl-flags"
  chmod 0440 "$root/etc/sudoers.d/qemu-erl-flags"
  # qemu-user cannot create an IPC namespace ("Failed to set up IPC namespacing", 226/NAMESPACE): the worker
  # units start without PrivateIPC here. The role's unit keeps it; this drop-in is read when the role installs it.
  mkdir -p "$root/etc/systemd/system/warren-worker@.service.d"
  printf '# qemu-user cannot create IPC namespaces (tools/build-image.sh)\n[Service]\nPrivateIPC=no\n' \
    >"$root/etc/systemd/system/warren-worker@.service.d/qemu-no-private-ipc.conf"
}

# Docker 20.10 records `docker import --platform linux/arm64` images as amd64, and `docker run --platform
# linux/arm64` then looks for the image in a registry. Rewrite the architecture in the image config.
record_arm64_architecture() {
  local image=$1 dir
  dir=$(mktemp -d /var/tmp/warren-image.XXXXXX)
  docker save "$image" | tar -C "$dir" -x
  python3 - "$dir" <<'PY'
import hashlib, json, os, sys
os.chdir(sys.argv[1])
manifest = json.load(open("manifest.json"))
old = manifest[0]["Config"]
config = json.load(open(old))
config.update(architecture="arm64", variant="v8")
data = json.dumps(config, separators=(",", ":")).encode()
new = hashlib.sha256(data).hexdigest() + ".json"
open(new, "wb").write(data)
os.remove(old)
manifest[0]["Config"] = new
json.dump(manifest, open("manifest.json", "w"))
PY
  docker rmi "$image" >/dev/null
  tar -C "$dir" -c . | docker load >/dev/null
  rm -rf "$dir"
}

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
  warren_apt_install debootstrap
fi

work=$(mktemp -d /var/tmp/warren-rootfs.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

log "debootstrap bookworm ($arch) into $rootfs (about a minute; three under emulation)"
debootstrap --arch="$arch" --variant=minbase \
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
emulated=false
if [[ $arch == arm64 && $(uname -m) != aarch64 ]]; then
  emulated=true
  add_emulation_workarounds "$rootfs"
fi
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*

log "importing as $image"
import_options=(-c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker')
# The image ENV reaches `docker exec` (Ansible's docker connection, rabbitmqctl run by hand); services get the
# same flag from systemd's DefaultEnvironment (add_emulation_workarounds).
if [[ $emulated == true ]]; then
  import_options+=(-c "ENV ERL_FLAGS=\"$emulated_erl_flags\"")
fi
tar -C "$rootfs" -c . | docker import "${import_options[@]}" - "$image" >/dev/null
if [[ $arch == arm64 ]]; then
  record_arm64_architecture "$image"
fi
log "built $image ($(docker image inspect -f '{{.Os}}/{{.Architecture}}{{with .Variant}}/{{.}}{{end}}' "$image"))"
