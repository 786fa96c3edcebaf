# Sourced by the scripts: creates .venv with Python 3.12 if it does not exist.
# Finds python3.12 on PATH, or pyenv's 3.12 (the machines neb_bayes is built on have pyenv).
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  PY="${PYTHON:-}"
  if [ -z "$PY" ]; then
    for cand in python3.12 "$HOME/.pyenv/versions/3.12.1/bin/python" "$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python 2>/dev/null | tail -n1)"; do
      if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        PY="$cand"; break
      fi
    done
  fi
  if [ -z "$PY" ]; then
    echo "neb_bayes needs Python 3.12 (set PYTHON=/path/to/python3.12)" >&2
    exit 1
  fi
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
