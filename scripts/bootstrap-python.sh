#!/usr/bin/env bash
# Creates .venv and installs the project with its dev tools; reinstalls only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: codat-exporter needs Python 3.11 or newer (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv  # missing, or left half-made by an earlier failed attempt
  if ! "$python" -m venv .venv; then
    rm -rf .venv
    echo "bootstrap: '$python -m venv' failed; on Debian or Ubuntu install it with: apt-get install python3-venv" >&2
    exit 1
  fi
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true  # an old pip still works
  if ! PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[dev]' >.venv/pip-install.log 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" .venv/pip-install.log >&2 || true
    echo "bootstrap: installing Python packages failed (log above)" >&2
    exit 1
  fi
  .venv/bin/python -c 'import exporter' # fail loudly if the install did not work
  rm -f .venv/.installed-*
  touch "$stamp"
fi
