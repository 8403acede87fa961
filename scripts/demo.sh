#!/usr/bin/env bash
# Install BitDust into ./.venv and run the main job (bitdust/demo.py): a local network
# of 5 daemons on loopback, a backup of a sample folder, 2 of its 4 suppliers killed,
# a restore checked byte for byte, a summary; the network is always stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/python -m bitdust.demo "$@"
