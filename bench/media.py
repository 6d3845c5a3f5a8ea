"""Benchmark: media uploads and thumbnails against dendrite-lite and Synapse (issue 14).

    .venv/bin/python bench/media.py [--repeat 3] [--servers dendrite-lite,synapse]
                                    [--json media-results.json] [--keep DIR]

Per server and repeat, on a fresh server (subprocess, SQLite, plain HTTP on 127.0.0.1, rate
limits off; the same setup as bench/chat.py, see bench/_servers.py), one registered user:
  1. photo: POST /_matrix/media/v3/upload of a 12-megapixel JPEG (4000x3000, ~4 MB, made once
     before any server starts); both servers make their standard thumbnails at upload (Synapse's
     default `dynamic_thumbnails: false`, ours media/thumbnails.py), so the upload time includes
     them; then GET /_matrix/client/v1/media/thumbnail of it at 96x96 crop and 320x240 scale (made
     already) and at 500x500 scale (made now, from the 12 MP original);
  2. concurrent: 20 uploads of 2 MiB each (distinct random bytes), all at once.
*time* = the phase's wall time (the goal: no slower than Synapse); *peak RSS increase* = the
highest VmRSS during the phase minus VmRSS just before it (the goal: under 100 MiB, an absolute
bound, so the table's ratio column has none). Medians (min-max) over repeats; servers alternate
order between repeats.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _client import Homeserver
from _compare import compare
from _servers import ProcessWatch, ServerProcess
from chat import PASSWORD, Row

UPLOAD = "/_matrix/media/v3/upload"
THUMBNAIL = "/_matrix/client/v1/media/thumbnail"
THUMBNAIL_SIZES = ((96, 96, "crop"), (320, 240, "scale"), (500, 500, "scale"))


@dataclass(frozen=True)
class Workload:
    concurrent_uploads: int = 20
    upload_kib: int = 2048
    seed: int = 14


def photo_12mp() -> bytes:
    """A 4000x3000 JPEG that compresses like a photo (gradients and grain), not like a flat
    colour: ~4 MB at quality 90."""
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    noise = Image.effect_noise((4000, 3000), 40)
    image = Image.merge("RGB", (gradient, noise, gradient.rotate(180)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


PHOTO = photo_12mp()


async def _upload(hs: Homeserver, token: str, data: bytes, content_type: str) -> str:
    async with hs.http.post(
        UPLOAD, data=data, headers={"Authorization": f"Bearer {token}", "Content-Type": content_type}
    ) as resp:
        body = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"upload: {resp.status} {body}")
        return str(json.loads(body)["content_uri"])


async def _thumbnail(hs: Homeserver, token: str, mxc: str, width: int, height: int, method: str) -> None:
    async with hs.http.get(
        f"{THUMBNAIL}/{mxc.removeprefix('mxc://')}",
        params={"width": str(width), "height": str(height), "method": method},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"thumbnail {width}x{height}: {resp.status} {data[:200]!r}")
    size = Image.open(io.BytesIO(data)).size
    if max(size) > max(width, height) * 2 or min(size) < min(width, height) // 2:
        raise RuntimeError(f"thumbnail {width}x{height} {method} came back {size}")


def _peak_increase(watch: ProcessWatch, start: float, end: float) -> float:
    before = watch.rss_between(start - 1.0, start)[-1]
    return (max(watch.rss_between(start, end)) - before) / 1024


async def run_workload(
    server: ServerProcess, w: Workload, watch: ProcessWatch, profile: Path | None = None
) -> dict[str, Any]:
    m: dict[str, Any] = {}
    rng = random.Random(w.seed)
    blobs = [rng.randbytes(w.upload_kib * 1024) for _ in range(w.concurrent_uploads)]
    await asyncio.sleep(2.0)  # let startup work settle, as bench/chat.py does
    hs = Homeserver(server.base_url, max_connections=w.concurrent_uploads + 4)
    try:
        token = (await hs.register("mediauser", PASSWORD)).token
        await asyncio.sleep(1.5)  # registration's password hashing settles before the baseline
        start = time.monotonic()
        t = time.perf_counter()
        mxc = await _upload(hs, token, PHOTO, "image/jpeg")
        m["photo_upload_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for width, height, method in THUMBNAIL_SIZES:
            await _thumbnail(hs, token, mxc, width, height, method)
        m["photo_thumbnails_s"] = time.perf_counter() - t
        m["photo_s"] = m["photo_upload_s"] + m["photo_thumbnails_s"]
        end = time.monotonic()
        await asyncio.sleep(0.5)  # the sampler's last look at the phase
        m["photo_rss_increase_mib"] = _peak_increase(watch, start, end + 0.3)

        await asyncio.sleep(1.0)
        start = time.monotonic()
        t = time.perf_counter()
        await asyncio.gather(*(_upload(hs, token, b, "application/octet-stream") for b in blobs))
        m["concurrent_s"] = time.perf_counter() - t
        end = time.monotonic()
        await asyncio.sleep(0.5)
        m["concurrent_rss_increase_mib"] = _peak_increase(watch, start, end + 0.3)
    finally:
        await hs.aclose()
    return m


def rows(w: Workload) -> list[Row]:
    n, size = w.concurrent_uploads, w.upload_kib / 1024
    return [
        ("photo_s", "12 MP JPEG: upload + 3 thumbnails (s)", 2, ("<=", 1)),
        ("photo_upload_s", "  upload (standard thumbnails made) (s)", 2, None),
        ("photo_thumbnails_s", "  GET 96x96, 320x240, 500x500 (s)", 2, None),
        ("photo_rss_increase_mib", "12 MP JPEG: peak RSS increase (MiB; goal < 100)", 1, None),
        ("concurrent_s", f"{n} concurrent {size:g} MiB uploads (s)", 2, ("<=", 1)),
        ("concurrent_rss_increase_mib", f"{n} concurrent uploads: peak RSS increase (MiB; goal < 100)", 1, None),
    ]


def main() -> None:
    print(f"12 MP JPEG: {len(PHOTO) / 1e6:.1f} MB", file=sys.stderr)
    compare(__doc__ or "", Workload, run_workload, rows, "media-results.json", extra={"photo_bytes": len(PHOTO)})


if __name__ == "__main__":
    main()
