#!/usr/bin/env bash
# Runs each modality's test folder in its own venv and fails if any of them failed.
set -u
cd "$(dirname "$0")/.."
status=0
for modality in "$@"; do
  dirs="tests/$modality"
  [ "$modality" = text ] && dirs="tests/core $dirs"
  [ -d "tests/$modality" ] || continue
  echo "=== tests for $modality (.venvs/$modality) ==="
  .venvs/"$modality"/bin/python -m pytest -q $dirs || status=1
done
exit $status
