"""Pillow (~3 MiB of RSS, more once its plugins load) stays out of a server until it makes its
first thumbnail, and is then loaded by the thumbnail threads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import asyncio, json, sys, tempfile
from pathlib import Path
import dendrite_lite.server
from dendrite_lite.media.thumbnails import _image_info

before = "PIL" in sys.modules
from tests.media_images import png  # Pillow makes the test image
path = Path(tempfile.mkdtemp()) / "img"
path.write_bytes(png(10, 20))
info = _image_info(path, max_pixels=1000)
print(json.dumps([before, "dendrite_lite.media.thumbnailer" in sys.modules, list(info)]))
"""


def test_pillow_loads_with_the_first_thumbnail_not_before() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    # Pillow was not loaded by the server, and the thumbnailer only when first used.
    assert json.loads(out.stdout) == [False, True, [10, 20, False]]
