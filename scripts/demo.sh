#!/usr/bin/env bash
# Install BitDust into ./.venv and run the main job: start a node on loopback in a
# throw-away home, show its state through the API, and stop it.
# (Later releases turn this into the local-network backup/restore demo.)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/python -m bitdust.demo "$@"
