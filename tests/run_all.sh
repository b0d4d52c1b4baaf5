#!/usr/bin/env bash
# Runs each modality's test folder in its own venv, then one closing line with the totals.
set -u
cd "$(dirname "$0")/.."
status=0 passed=0 failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
count() { grep -oE "[0-9]+ $1" <<<"$summary" | awk '{n += $1} END {print n + 0}'; }
for modality in "$@"; do
  dirs="tests/$modality"
  [ "$modality" = text ] && dirs="tests/core $dirs"
  [ -d "tests/$modality" ] || continue
  echo "=== tests for $modality (.venvs/$modality) ==="
  # -rs: one line per skipped test saying why; the 15 slowest tests close each run
  .venvs/"$modality"/bin/python -m pytest -q -rs --durations=15 $dirs 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  summary=$(tail -n 1 "$log")
  passed=$((passed + $(count passed)))
  failed=$((failed + $(count '(failed|errors?)')))
done
echo "all: $passed passed, $failed failed"
exit $status
