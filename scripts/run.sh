#!/usr/bin/env bash
# Installs dendrite-lite into ./.venv and runs it on its embedded defaults: a server named
# "localhost" with its SQLite database and signing key in ./data, listening on 127.0.0.1:8008.
# A real deployment runs `dendrite-lite init` (the wizard) instead; see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -e .

CONFIG=${DENDRITE_LITE_CONFIG:-dendrite-lite.toml}
if [ ! -f "$CONFIG" ]; then
  .venv/bin/dendrite-lite init --non-interactive --config "$CONFIG" \
    --server-name localhost --public-baseurl http://localhost:8008/ \
    --data-dir ./data --tls-mode proxy --registration open
fi
exec .venv/bin/dendrite-lite run --config "$CONFIG"
