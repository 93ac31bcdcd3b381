#!/usr/bin/env bash
# Make a Docker engine answer on this machine. Does nothing when one already does.
# When none is installed and we are root on Debian/Ubuntu, installs Debian's docker.io and starts dockerd by
# hand: CI and fresh VMs boot without a running engine, and some have no working init system for it.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { printf '[container-engine] %s\n' "$*" >&2; }

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; }

if engine_answers; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  log "no Docker engine answers and we are not root: start one (e.g. 'sudo systemctl start docker') and retry"
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  warren_apt_install docker.io
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/warren-dockerd.log)"
  nohup dockerd >/var/log/warren-dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
  if engine_answers; then
    log "Docker engine is up"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; see /var/log/warren-dockerd.log"
exit 1
