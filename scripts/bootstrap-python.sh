#!/usr/bin/env bash
# Creates .venv and installs the project into it; reinstalls only when pyproject.toml changes.
#   scripts/bootstrap-python.sh          runtime dependencies only (what `make demo` needs)
#   scripts/bootstrap-python.sh dev      plus the test and lint tools (what `make test` needs)
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:-runtime}
case "$kind" in
  runtime) spec='.' ;;
  dev) spec='.[dev]' ;;
  *) echo "bootstrap: unknown install kind '$kind' (runtime or dev)" >&2; exit 2 ;;
esac

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
hash=$(sha256sum pyproject.toml | cut -c1-16)
# A dev install contains the runtime one, so it satisfies both.
if [ -f ".venv/.installed-dev-$hash" ] || [ -f ".venv/.installed-$kind-$hash" ]; then
  exit 0
fi
echo "bootstrap: installing the $kind Python packages into .venv" >&2
if ! PYTHONWARNINGS=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q -e "$spec" \
  >.venv/pip-install.log 2>&1; then
  grep -v "is ignored: it is neither a file nor a directory" .venv/pip-install.log >&2 || true
  echo "bootstrap: installing Python packages failed (log above)" >&2
  exit 1
fi
.venv/bin/python -c 'import exporter' # fail loudly if the install did not work
rm -f .venv/.installed-*
touch ".venv/.installed-$kind-$hash"
