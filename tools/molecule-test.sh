#!/usr/bin/env bash
# `molecule test [-s SCENARIO]` with its output kept in .ansible/molecule-test[-SCENARIO].log. On failure the
# failed verify tests and their assertion lines are repeated last: CI logs are often read from the tail, past
# molecule's destroy output. The scenario's wall time is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=default
args=("$@")
for i in "${!args[@]}"; do
  [[ ${args[i]} == -s || ${args[i]} == --scenario-name ]] && scenario=${args[i + 1]:-default}
done
log=.ansible/molecule-test.log
[[ $scenario == default ]] || log=.ansible/molecule-test-$scenario.log
start=$SECONDS
mkdir -p "$(dirname "$log")"
# Wide lines: molecule wraps its output at the terminal width, 80 columns without a terminal.
if COLUMNS=${COLUMNS:-200} molecule test "$@" 2>&1 | tee "$log"; then
  echo "molecule test ($scenario) passed in $((SECONDS - start)) s"
  exit 0
fi
echo
echo "==== molecule test ($scenario) failed after $((SECONDS - start)) s; failing tests (full log: $log) ===="
# pytest's short summary (FAILED/ERROR lines) and assertion lines (E ...), without colour codes and the box
# molecule draws around a step's output.
failures=$(sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^ *│ \{0,1\}//' "$log" | grep -E '^(FAILED|ERROR) |^E ' || true)
if [[ -n $failures ]]; then
  head -60 <<<"$failures"
else
  echo "(no failed tests: see the log above)"
fi
exit 1
