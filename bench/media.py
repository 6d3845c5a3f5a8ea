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

import argparse
import asyncio
import io
import json
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _client import Homeserver
from _servers import ProcessWatch, ServerProcess
from chat import PASSWORD, SERVERS, Row, _cpus, markdown_table, run_one

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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--servers", default="dendrite-lite,synapse")
    ap.add_argument("--json", type=Path, default=Path("media-results.json"))
    ap.add_argument("--keep", type=Path, default=None, help="copy each run's config and logs here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=TOML",
                    help="override a key of our config (experiments); repeatable")
    for name, default in asdict(Workload()).items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    args = ap.parse_args()
    w = Workload(**{f: getattr(args, f) for f in asdict(Workload())})
    names = [n.strip().lower() for n in args.servers.split(",") if n.strip()]
    if any(n not in SERVERS for n in names):
        ap.error(f"servers: {', '.join(SERVERS)}")
    print(f"12 MP JPEG: {len(PHOTO) / 1e6:.1f} MB", file=sys.stderr)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for rep in range(args.repeat):
        for name in names if rep % 2 == 0 else names[::-1]:  # alternate: drift hits both alike
            print(f"[run {rep + 1}/{args.repeat}] {name} ...", file=sys.stderr, flush=True)
            metrics = run_one(name, w, args.keep, rep + 1, None, args.set, workload=run_workload)
            runs[name].append(metrics)
            print("  " + ", ".join(f"{k}={metrics[k]:.2f}" for k, *_ in rows(w)), file=sys.stderr)
    table = markdown_table(runs, rows(w))
    print(table)
    args.json.write_text(json.dumps({
        "workload": asdict(w), "repeat": args.repeat, "photo_bytes": len(PHOTO),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": runs, "table": table,
    }, indent=2))
    print(f"\nraw numbers: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
