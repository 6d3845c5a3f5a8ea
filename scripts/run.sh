#!/usr/bin/env bash
# Installs dendrite-lite into ./.venv and runs it on its embedded defaults: a development server
# named "localhost" with open registration, its config in ./dendrite-lite.toml, its SQLite
# database and signing key in ./data, the client API on http://127.0.0.1:8008 and federation on
# 127.0.0.1:8448. A real deployment runs `dendrite-lite init` (the wizard) instead; see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Install only when the venv is new or pyproject.toml changed (a reinstall is most of a start).
stamp=.venv/.dendrite-lite-installed
want=$(cksum < pyproject.toml)
if [ ! -x .venv/bin/dendrite-lite ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing dendrite-lite into ./.venv ..." >&2
  .venv/bin/python -m pip install -q -e .
  echo "$want" > "$stamp"
fi

CONFIG=${DENDRITE_LITE_CONFIG:-dendrite-lite.toml}
if [ ! -f "$CONFIG" ]; then
  if ! out=$(.venv/bin/dendrite-lite init --non-interactive --config "$CONFIG" \
      --server-name localhost --public-baseurl http://localhost:8008/ \
      --data-dir ./data --tls-mode proxy --registration open 2>&1); then
    echo "$out" >&2
    exit 1
  fi
  cat >&2 <<MSG
First start: wrote $CONFIG and a signing key in ./data for a development server:
  server name   localhost (user ids like @alice:localhost)
  registration  open: anyone who can reach it may create an account
  client API    http://127.0.0.1:8008  (Element etc.: homeserver URL http://localhost:8008)
  federation    127.0.0.1:8448, loopback only
For a real server, run the wizard instead: .venv/bin/dendrite-lite init
MSG
fi
echo "starting: .venv/bin/dendrite-lite run --config $CONFIG (Ctrl-C stops it)" >&2
exec .venv/bin/dendrite-lite run --config "$CONFIG"
