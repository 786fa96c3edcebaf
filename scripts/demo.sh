#!/usr/bin/env bash
# Install neb_bayes into .venv (Python 3.12) and write a report for an example case.
# Usage: bash scripts/demo.sh [CASE] [report options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$VENV/bin/python" -m pip install -q -e .
case="${1:-cases/examples/primary_hypothyroidism_01.yaml}"
shift || true
"$VENV/bin/neb-bayes" report "$case" "$@"
