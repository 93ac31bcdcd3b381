# Shell functions shared by demo.sh and benchmark-converge.sh. Source it; it runs nothing by itself.

WARREN_IMAGE=${WARREN_IMAGE:-warren/debian12-systemd:latest}

# Start a systemd container NAME from $WARREN_IMAGE unless it already runs, and wait until systemd is up.
# These are the options a systemd container needs where --privileged is refused (no CAP_SYS_RESOURCE).
warren_start_container() {
  local name=$1 state
  if [[ $(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null) == true ]]; then
    return 0
  fi
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --hostname "$name" \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    "$WARREN_IMAGE" /lib/systemd/systemd >/dev/null
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
