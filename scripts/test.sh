#!/usr/bin/env bash
# Install neb_bayes with its test extras into .venv (Python 3.12) and run the whole test suite,
# spread over the machine's cores by pytest-xdist (`-n auto`; `-n 0` runs it in one process).
# Usage: bash scripts/test.sh [pytest args]   (slow checks: bash scripts/test.sh -m slow)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$VENV/bin/python" -m pip install -q -e ".[test]"
set +e
"$VENV/bin/python" -m pytest -q -n auto "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "no tests were collected: failing" >&2
  exit 1
fi
exit "$rc"
