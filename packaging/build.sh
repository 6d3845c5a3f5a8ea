#!/usr/bin/env bash
# Builds dendrite-lite's distributions into OUT (default ./dist):
#   dendrite_lite-<v>-py3-none-any.whl and dendrite_lite-<v>.tar.gz   (pip / pipx)
#   dendrite-lite.pyz        one-file zipapp (shiv); needs the system's Python 3.11+ of the same
#                            minor version and architecture as the build (it carries compiled
#                            wheels: pynacl, argon2-cffi, Pillow, orjson, cryptography, uvloop)
#   dendrite-lite            one-file binary (PyInstaller); needs no Python at all
# Build on the machine kind you deploy to (a Raspberry Pi builds aarch64 artifacts).
#   bash packaging/build.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
PY=${PYTHON:-python3}
TOOLS=.venv-build
[ -x "$TOOLS/bin/python" ] || "$PY" -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install -q --upgrade pip >/dev/null
"$TOOLS/bin/python" -m pip install -q 'build>=1.2' 'shiv>=1.0.6' 'pyinstaller>=6.10'
rm -rf build/pyinstaller "$OUT"/dendrite_lite-* "$OUT/dendrite-lite.pyz" "$OUT/dendrite-lite"

echo "== wheel and sdist"
"$TOOLS/bin/python" -m build --outdir "$OUT" . >/dev/null
WHEEL=$(ls "$OUT"/dendrite_lite-*.whl)

echo "== zipapp (shiv)"
# --compile-pyc: byte-compile at build time (start-up does not wait for it, and a machine
# with PYTHONDONTWRITEBYTECODE would never cache it); --reproducible: same input, same bytes.
"$TOOLS/bin/shiv" --compile-pyc --reproducible -c dendrite-lite -p '/usr/bin/env python3' \
  -o "$OUT/dendrite-lite.pyz" "$WHEEL" >/dev/null

echo "== binary (PyInstaller)"
# PyInstaller analyses imports from a Python that has dendrite-lite and its dependencies; the
# version number does not change between builds, so the package itself is always reinstalled.
"$TOOLS/bin/python" -m pip install -q "$WHEEL"
"$TOOLS/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEEL"
# _cffi_backend: pynacl and argon2 load it from C, where the analysis cannot see it;
# the data files: our SQL migrations and Textual's stylesheets; the submodules: modules we import
# late (the server's own image, TLS only in acme mode, the TUI's screens).
"$TOOLS/bin/pyinstaller" --onefile --name dendrite-lite --distpath "$OUT" \
  --workpath build/pyinstaller --specpath build/pyinstaller --log-level WARN \
  --hidden-import _cffi_backend \
  --collect-submodules dendrite_lite --collect-data dendrite_lite \
  --collect-data textual --collect-submodules textual.widgets \
  --copy-metadata dendrite-lite \
  packaging/entry.py >/dev/null

ls -l "$OUT"
