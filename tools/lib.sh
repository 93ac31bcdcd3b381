# Shell functions shared by demo.sh and benchmark-converge.sh. Source it; it runs nothing by itself.

WARREN_IMAGE=${WARREN_IMAGE:-warren/debian12-systemd:latest}
WARREN_ARM64_IMAGE=${WARREN_ARM64_IMAGE:-warren/debian12-systemd-arm64:latest}
WARREN_MOLECULE_BASE_CONFIG=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.config/molecule/config.yml

# Print, one per line, the `docker run` options and command of the systemd container that Molecule's scenarios
# describe in .config/molecule/config.yml, so that the demo and the benchmarks start the same container.
# A key it does not know how to translate is an error rather than a silent difference.
warren_container_run_args() {
  python3 - "$WARREN_MOLECULE_BASE_CONFIG" <<'PY'
import sys

import yaml

with open(sys.argv[1]) as config:
    platform = yaml.safe_load(config)["platforms"][0]
translated = {"capabilities": "--cap-add", "security_opts": "--security-opt", "cgroupns_mode": "--cgroupns",
              "volumes": "--volume", "tmpfs": "--tmpfs"}
# Set per container by the callers, or meaningful to Molecule only.
own = {"name", "hostname", "image", "pre_build_image", "groups", "command"}
unknown = set(platform) - set(translated) - own
if unknown:
    sys.exit(f"{sys.argv[1]}: no docker run option for platform keys {sorted(unknown)} (tools/lib.sh)")
for key, option in translated.items():
    values = platform.get(key, [])
    for value in [values] if isinstance(values, str) else values:
        print(f"{option}={value}")
print(platform["command"])
PY
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
