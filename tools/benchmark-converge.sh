#!/usr/bin/env bash
# Benchmark (prints figures; not a test): time of a first `site.yml` converge into a fresh container, time of
# the idempotent re-run, their ratio, and the re-run's changed count. Goal: ratio <= 25 %, changed=0.
# Usage: tools/benchmark-converge.sh     (uses and then removes container warren-bench)
set -euo pipefail
project=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/lib.sh
source "$project/tools/lib.sh"
cd "$project"
export PATH=$project/.venv/bin:$PATH ANSIBLE_CONFIG=$project/ansible.cfg
# Per-task times, so the figures say where a re-run spends its time.
export ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks PROFILE_TASKS_TASK_OUTPUT_LIMIT=12 ANSIBLE_NOCOLOR=1

name=warren-bench
work=$(mktemp -d)
trap 'docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
docker rm -f "$name" >/dev/null 2>&1 || true
warren_start_container "$name"
warren_container_inventory "$name" "$work/inventory" "$project"

# Prints the converge's wall time in seconds.
converge() {
  local log=$1 start
  start=$(date +%s%N)
  ansible-playbook -i "$work/inventory/hosts.yml" site.yml >"$log" 2>&1 || { tail -40 "$log" >&2; exit 1; }
  python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.1f}')" "$start" "$(date +%s%N)"
}
changed_count() { sed -n "s/^$name *:.*changed=\([0-9]*\).*/\1/p" "$1"; }

first=$(converge "$work/first.log")
second=$(converge "$work/second.log")
ratio=$(python3 -c "import sys; print(f'{100 * float(sys.argv[2]) / float(sys.argv[1]):.1f}')" "$first" "$second")
echo "slowest tasks of the re-run:"
grep -E -- ' -{3,} +[0-9.]+s$' "$work/second.log" | sed 's/^/  /'
echo "first converge:   $first s (changed=$(changed_count "$work/first.log"))"
echo "idempotent rerun: $second s (changed=$(changed_count "$work/second.log"))"
echo "RESULT first_s=$first rerun_s=$second ratio_pct=$ratio rerun_changed=$(changed_count "$work/second.log")"
