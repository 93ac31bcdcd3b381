# Shell functions shared by the tools' scripts (demo, benchmarks, ensure-*). Source it; it runs nothing by itself.

WARREN_IMAGE=${WARREN_IMAGE:-warren/debian12-systemd:latest}
WARREN_ARM64_IMAGE=${WARREN_ARM64_IMAGE:-warren/debian12-systemd-arm64:latest}
WARREN_TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Print, one per line, the `docker run` options and command of the systemd container that Molecule's scenarios
# describe in .config/molecule/config.yml (tools/container_platform.py), so that the demo and the benchmarks
# start the same container.
warren_container_run_args() {
  python3 "$WARREN_TOOLS/container_platform.py"
}

# Start a systemd container NAME from IMAGE (default $WARREN_IMAGE) unless it already runs, and wait until
# systemd is up.
warren_start_container() {
  local name=$1 image=${2:-$WARREN_IMAGE} state
  local -a run_args
  if [[ $(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null) == true ]]; then
    return 0
  fi
  mapfile -t run_args < <(warren_container_run_args)
  ((${#run_args[@]} > 1)) || return 1
  docker rm -f "$name" >/dev/null 2>&1 || true
  # run_args ends with the command, which goes after the image.
  docker run -d --name "$name" --hostname "$name" "${run_args[@]:0:${#run_args[@]}-1}" \
    "$image" "${run_args[-1]}" >/dev/null
  for _ in $(seq 1 60); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case $state in
      running | degraded) return 0 ;;
    esac
    sleep 1
  done
  echo "container $name: systemd did not come up (state: ${state:-unknown})" >&2
  return 1
}

# Write an inventory for container NAME in DIR that reuses inventory/local's group_vars.
warren_container_inventory() {
  local name=$1 dir=$2 project=$3
  mkdir -p "$dir"
  ln -sfn "$project/inventory/local/group_vars" "$dir/group_vars"
  cat >"$dir/hosts.yml" <<INVENTORY
all:
  children:
    rabbitmq:
      hosts:
        $name:
    workers:
      hosts:
        $name:
INVENTORY
}

# Install the Debian packages named as arguments, for the ensure-* scripts on a fresh machine. Fails with a
# message naming them when we are not root or have no apt-get: then the user installs them their own way.
warren_apt_install() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install $* (Debian's package names; your distribution's equivalent elsewhere) as root, and retry" >&2
    return 1
  fi
  echo "installing Debian's $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}
