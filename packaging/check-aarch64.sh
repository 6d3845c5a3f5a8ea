#!/usr/bin/env bash
# Checks the zipapp on Raspberry Pi OS's platform (Debian bookworm, aarch64, Python 3.11) from an
# x86_64 machine, under qemu user-mode emulation:
#   1. builds dendrite-lite-aarch64.pyz with shiv from aarch64 wheels only (--only-binary: a
#      dependency without an aarch64 wheel fails the build here, instead of compiling on the Pi);
#   2. unpacks bookworm's arm64 python3.11 (debootstrap --foreign, then the .debs) into a root;
#   3. runs `init --non-interactive` and the server with that Python under qemu-aarch64-static,
#      registers a user (argon2), creates a room and sends a message (pynacl, orjson, SQLite),
#      uploads a JPEG and fetches a thumbnail (Pillow).
# Needs root, network access to PyPI and deb.debian.org, and the Debian packages
# qemu-user-static and debootstrap. Not part of CI (about 10 minutes, most of it downloads).
#   sudo bash packaging/check-aarch64.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mkdir -p "${1:-/tmp/dl-aarch64}" && cd "${1:-/tmp/dl-aarch64}" && pwd)
ROOT="$WORK/root"
PORT=${PORT:-18755}
command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null \
  || apt-get install -y -qq qemu-user-static debootstrap >/dev/null

TOOLS=.venv-build
[ -x "$TOOLS/bin/python" ] || python3 -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install -q "build>=1.2" "shiv>=1.0.6" pillow
rm -rf "$WORK/dist"
"$TOOLS/bin/python" -m build --wheel --outdir "$WORK/dist" . >/dev/null
platforms=()
for p in manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_26_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64; do
  platforms+=(--platform "$p")
done
"$TOOLS/bin/shiv" --compile-pyc -c dendrite-lite -p '/usr/bin/env python3' \
  -o "$WORK/dist/dendrite-lite-aarch64.pyz" "${platforms[@]}" --only-binary=:all: \
  --python-version 3.11 --implementation cp "$WORK"/dist/dendrite_lite-*.whl >/dev/null
echo "built $WORK/dist/dendrite-lite-aarch64.pyz"

if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
  debootstrap --arch=arm64 --foreign --variant=minbase \
    --include=python3.11,libpython3.11-stdlib,ca-certificates bookworm "$ROOT" \
    http://deb.debian.org/debian >/dev/null
  # --foreign unpacks only the essential packages; the included ones wait in the cache.
  for deb in "$ROOT"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
fi
PY=(qemu-aarch64-static -L "$ROOT" "$ROOT/usr/bin/python3.11")
"${PY[@]}" -c 'import platform; print("python", platform.python_version(), platform.machine())'

SRV="$WORK/server"
rm -rf "$SRV" && mkdir -p "$SRV" && cd "$SRV"
export SHIV_ROOT="$WORK/shiv"
"${PY[@]}" "$WORK/dist/dendrite-lite-aarch64.pyz" init --non-interactive --server-name localhost \
  --registration open --listen-client "127.0.0.1:$PORT" --listen-federation "127.0.0.1:$((PORT + 1))" >/dev/null
# `run` execs a new Python image, which qemu user-mode cannot follow without binfmt_misc; the
# zipapp's interpreter mode starts that image's module directly instead.
SHIV_INTERPRETER=1 "${PY[@]}" "$WORK/dist/dendrite-lite-aarch64.pyz" -m dendrite_lite.server_process \
  "$SRV/dendrite-lite.toml" >"$SRV/run.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
cd - >/dev/null
"$TOOLS/bin/python" - "$PORT" <<'PYEOF'
import json, sys, time, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"

def call(method, path, body=None, token=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type")

deadline = time.monotonic() + 300
while True:
    try:
        if call("GET", "/_matrix/client/versions")[0] == 200:
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("the server did not answer within 300 s")
    time.sleep(0.5)
body = {"username": "pi", "password": "correct horse battery staple"}
session = json.loads(call("POST", "/_matrix/client/v3/register", body)[1])["session"]
status, out, _ = call("POST", "/_matrix/client/v3/register", {**body, "auth": {"type": "m.login.dummy", "session": session}})
assert status == 200, out
token = json.loads(out)["access_token"]
room = json.loads(call("POST", "/_matrix/client/v3/createRoom", {"name": "on a pi"}, token)[1])["room_id"]
status, out, _ = call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hello from aarch64"}, token)
assert status == 200, out
status, out, _ = call("GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1", token=token)
assert json.loads(out)["chunk"][0]["content"]["body"] == "hello from aarch64", out
from io import BytesIO
from PIL import Image
buf = BytesIO()
Image.new("RGB", (1200, 900), (200, 30, 60)).save(buf, "JPEG")
jpeg = buf.getvalue()
status, out, _ = call("POST", "/_matrix/media/v3/upload", raw=jpeg, token=token, ctype="image/jpeg")
assert status == 200, out
mxc = json.loads(out)["content_uri"][len("mxc://"):]
status, out, ctype = call("GET", f"/_matrix/client/v1/media/thumbnail/{mxc}?width=320&height=240", token=token)
assert status == 200 and ctype == "image/jpeg", (status, out[:200])
print("aarch64 zipapp: registered, sent, read back, uploaded and thumbnailed: OK")
PYEOF
