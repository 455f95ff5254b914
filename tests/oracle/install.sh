#!/usr/bin/env bash
# Creates the Python venv that holds Microsoft's Azure Kinect SDK 1.4.2 libraries (from the
# pyk4a-bundle 1.5.0 wheel on PyPI) and prints where they are, one `name=path` per line.
# Idempotent: when the venv already holds the wheel it only prints the paths.
#   FREEK4A_ORACLE_VENV  venv folder (default: .venv-oracle in the repository root)
#   FREEK4A_PYTHON       interpreter used to create the venv (default: python3)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${FREEK4A_ORACLE_VENV:-$root/.venv-oracle}"
py="${FREEK4A_PYTHON:-python3}"
stamp="$venv/.freek4a-oracle-ok"

if [ ! -f "$stamp" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    echo "oracle: creating venv $venv" >&2
    "$py" -m venv "$venv" >&2
  fi
  echo "oracle: installing pyk4a-bundle==1.5.0 into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --only-binary=:all: --no-deps pyk4a-bundle==1.5.0 >&2
  touch "$stamp"
fi

exec "$venv/bin/python" "$here/sdk.py" --locate
