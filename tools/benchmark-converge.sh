#!/usr/bin/env bash
# Benchmark (prints figures; not a test): time of a first `site.yml` converge into a fresh container, time of
# the idempotent re-run, their ratio, and the re-run's changed count, for each architecture asked, one after the
# other in the same run so that the figures sit side by side. Goal: ratio <= 25 %, changed=0.
# arm64 runs under qemu-user on a machine that is not Arm64 (tools/ensure-arm64-emulation.sh).
# Usage: tools/benchmark-converge.sh [amd64] [arm64]   (default: both; containers warren-bench-<arch>, removed
#        afterwards; images $WARREN_IMAGE and $WARREN_ARM64_IMAGE, built by `make image image-arm64`)
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
source "$project/tools/lib.sh"
cd "$project"
export PATH=$project/.venv/bin:$PATH ANSIBLE_CONFIG=$project/ansible.cfg
# Per-task times, so the figures say where a re-run spends its time.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=12 ANSIBLE_NOCOLOR=1

archs=("$@")
((${#archs[@]})) || archs=(amd64 arm64)
for arch in "${archs[@]}"; do
  [[ $arch == amd64 || $arch == arm64 ]] || { echo "unknown architecture $arch (amd64 or arm64)" >&2; exit 1; }
done

work=$(mktemp -d)
cleanup() {
  for arch in "${archs[@]}"; do docker rm -f "warren-bench-$arch" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Prints the converge's wall time in seconds.
converge() {
  local inventory=$1 log=$2 start
  start=$(date +%s%N)
  ansible-playbook -i "$inventory" site.yml >"$log" 2>&1 || { tail -40 "$log" >&2; exit 1; }
  seconds_since "$start"
}
seconds_since() { python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.1f}')" "$1" "$(date +%s%N)"; }
changed_count() { sed -n "s/^$1 *:.*changed=\([0-9]*\).*/\1/p" "$2"; }

summary=()
results=()
declare -A first_s rerun_s
for arch in "${archs[@]}"; do
  name=warren-bench-$arch
  image=$WARREN_IMAGE
  [[ $arch == arm64 ]] && image=$WARREN_ARM64_IMAGE
  mkdir -p "$work/$arch"
  docker rm -f "$name" >/dev/null 2>&1 || true
  warren_start_container "$name" "$image"
  machine=$(docker exec "$name" uname -m)
  [[ $machine != "$(uname -m)" ]] && machine+=" (emulated)"
  warren_container_inventory "$name" "$work/$arch/inventory" "$project"
  echo "== $arch: $name ($image), uname -m: $machine"
  first=$(converge "$work/$arch/inventory/hosts.yml" "$work/$arch/first.log")
  second=$(converge "$work/$arch/inventory/hosts.yml" "$work/$arch/second.log")
  docker rm -f "$name" >/dev/null
  ratio=$(python3 -c "import sys; print(f'{100 * float(sys.argv[2]) / float(sys.argv[1]):.1f}')" "$first" "$second")
  echo "slowest tasks of the re-run:"
  grep -E -- ' -{3,} +[0-9.]+s$' "$work/$arch/second.log" | sed 's/^/  /'
  first_s[$arch]=$first
  rerun_s[$arch]=$second
  summary+=("$(printf '%-22s %14s s %16s s %8s %%   changed=%s/%s' "$arch, $machine" "$first" "$second" "$ratio" \
    "$(changed_count "$name" "$work/$arch/first.log")" "$(changed_count "$name" "$work/$arch/second.log")")")
  results+=("RESULT arch=$arch first_s=$first rerun_s=$second ratio_pct=$ratio \
rerun_changed=$(changed_count "$name" "$work/$arch/second.log")")
done

echo
printf '%-22s %16s %18s %10s   %s\n' architecture "first converge" "idempotent rerun" ratio "changed first/rerun"
printf '%s\n' "${summary[@]}" "${results[@]}"
if [[ -n ${first_s[amd64]:-} && -n ${first_s[arm64]:-} ]]; then
  python3 -c "import sys; a, b, c, d = map(float, sys.argv[1:]); \
print(f'RESULT arm64_vs_amd64 first={c / a:.1f}x rerun={d / b:.1f}x')" \
    "${first_s[amd64]}" "${rerun_s[amd64]}" "${first_s[arm64]}" "${rerun_s[arm64]}"
fi
