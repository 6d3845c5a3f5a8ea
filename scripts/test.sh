#!/usr/bin/env bash
# Installs everything the test suite needs into ./.venv (and Synapse, the reference peer, into its
# own ./.venv-synapse), then runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# Synapse lives in its own venv: its pinned dependencies must not shape ours. Tests that use it
# (tests/interop) run its code in a subprocess with this interpreter.
if ! .venv-synapse/bin/python -c 'import synapse' 2>/dev/null; then
  "$PY" -m venv .venv-synapse
  .venv-synapse/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv-synapse/bin/python -m pip install -q 'matrix-synapse~=1.163.0'
fi

# The ACME tests run Pebble (Let's Encrypt's test CA) with pebble-challtestsrv, the doctor's
# DNS tests run dnsmasq, all on loopback, and the service tests check our systemd unit with
# systemd-analyze (package systemd; no systemd needs to run), and the TUI's smoke test drives
# `dendrite-lite tui` in a tmux pane, matrix-js-sdk's sliding sync test runs under Node, and
# the TURN test relays through coturn: Debian packages, installed once.
if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null \
    || ! command -v dnsmasq >/dev/null || ! command -v systemd-analyze >/dev/null \
    || ! command -v tmux >/dev/null || ! command -v node >/dev/null || ! command -v npm >/dev/null \
    || ! command -v turnserver >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pebble dnsmasq-base systemd tmux \
    nodejs npm coturn >/dev/null
fi
# matrix-js-sdk (pinned in its package.json) for tests/interop/test_matrix_js_sdk_sliding_sync.py;
# only when missing, so a run with it installed needs no network.
if [ ! -d tests/interop/js_sliding_sync/node_modules/matrix-js-sdk ]; then
  (cd tests/interop/js_sliding_sync && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
# panva's oidc-provider (pinned likewise), the OpenID Provider of tests/integration/test_sso_oidc.py.
if [ ! -d tests/interop/oidc_provider/node_modules/oidc-provider ]; then
  (cd tests/interop/oidc_provider && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
# Installed above, so a test needing a peer fails here instead of skipping (tests/peers.py).
export DENDRITE_LITE_REQUIRE_PEERS=1

# The spec-driven tests read the Matrix spec sources (scripts/matrix-spec.sh says from where).
MATRIX_SPEC_DIR=$(bash scripts/matrix-spec.sh)
export MATRIX_SPEC_DIR

set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test; that is a failure of the suite, not a pass.
exit $rc
