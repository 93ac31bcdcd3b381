#!/usr/bin/env bash
# Make this machine run linux/arm64 binaries: qemu-user-static with its binfmt handler enabled.
# Does nothing on an aarch64 machine or when the handler is already active. The handler does not survive a
# reboot, which is why every arm64 make target calls this script rather than a one-time setup step.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf '[arm64-emulation] %s\n' "$*" >&2; }
handler=/proc/sys/fs/binfmt_misc/qemu-aarch64

if [[ $(uname -m) == aarch64 ]]; then
  exit 0
fi
# "F" (fix-binary): the kernel opens the interpreter at registration, so it works inside containers whose
# filesystem has no qemu-aarch64-static.
handler_ready() { [[ -r $handler ]] && grep -qx enabled "$handler" && grep -q '^flags: .*F' "$handler"; }
if handler_ready; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "arm64 emulation is off and we are not root: run this script as root once (after every reboot)"
  exit 1
fi
if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v update-binfmts >/dev/null 2>&1; then
  warren_apt_install qemu-user-static binfmt-support
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
# Debian's package registers the handler with fix-binary; enabling it is all that is left.
update-binfmts --enable qemu-aarch64
if ! handler_ready; then
  log "the qemu-aarch64 binfmt handler is not enabled with the F flag:"
  cat "$handler" >&2 || true
  exit 1
fi
log "arm64 binaries now run under qemu-user"
