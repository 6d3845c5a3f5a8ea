"""Thumbnails through a real server (issue 14 item 3): sizes, formats, orientation, a
12-megapixel photo, hostile and broken files, animation, the bounded worker pool."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.media_helpers import (
    AUTHED,
    LEGACY,
    media_service,
    mxc_parts,
    upload,
    user_headers,
)
from tests.media_images import SVG, animated_gif, jpeg, png, png_bomb, rotated_jpeg


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("thumbs"),
        {"media.freeze_unauthenticated": False, "media.thumbnail_workers": 2},
    ) as s:
        yield s


@pytest.fixture(scope="module")
async def headers(srv: RunningServer) -> dict[str, str]:
    return await user_headers(srv.client, "thumbs")


CORRUPT_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


async def _thumb(
    srv: RunningServer, headers: dict[str, str], uri: str, width: int, height: int,
    method: str = "scale", *, legacy: bool = False, **params: str,
) -> httpx.Response:
    base = LEGACY if legacy else AUTHED
    return await srv.client.get(
        f"{base}/thumbnail/{mxc_parts(uri)}",
        params={"width": width, "height": height, "method": method, **params},
        headers={} if legacy else headers,
    )


def _image(resp: httpx.Response) -> Image.Image:
    assert resp.status_code == 200, resp.text
    return Image.open(io.BytesIO(resp.content))


async def test_twelve_megapixel_jpeg(srv: RunningServer, headers: dict[str, str]) -> None:
    photo = jpeg(4000, 3000)
    started = time.monotonic()
    uri = await upload(srv.client, headers, photo, "image/jpeg", "photo.jpg")
    upload_s = time.monotonic() - started
    # The standard sizes were made at upload: all five are stored already.
    svc = media_service(srv)
    server_name, media_id = mxc_parts(uri).split("/")
    stored = await svc.repo.thumbnails(server_name, media_id)
    assert sorted((t.width, t.height, t.method) for t in stored) == [
        (32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"),
        (800, 600, "scale"),
    ]
    cases = [
        # asked -> answered (the smallest standard size at least as big, never smaller)
        ((32, 32, "crop"), (32, 32)),
        ((50, 50, "crop"), (96, 96)),
        ((96, 96, "crop"), (96, 96)),
        ((320, 240, "scale"), (320, 240)),
        ((600, 400, "scale"), (640, 480)),
        ((800, 600, "scale"), (800, 600)),
    ]
    for (w, h, method), expected in cases:
        resp = await _thumb(srv, headers, uri, w, h, method)
        img = _image(resp)
        assert (img.format, img.size) == ("JPEG", expected), (w, h, method)
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert resp.headers["Content-Disposition"] == "inline"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert upload_s < 10


async def test_other_sizes_are_made_on_demand_and_cached(srv: RunningServer, headers: dict[str, str]) -> None:
    uri = await upload(srv.client, headers, jpeg(1200, 900), "image/jpeg")
    first = await _thumb(srv, headers, uri, 200, 100, "crop")
    assert _image(first).size == (200, 100)  # no standard crop this big: made for the request
    second = await _thumb(srv, headers, uri, 200, 100, "crop")
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]
    big = await _thumb(srv, headers, uri, 1000, 1000, "scale")
    assert _image(big).size == (1000, 750)


async def test_concurrent_requests_make_one_thumbnail(srv: RunningServer, headers: dict[str, str]) -> None:
    uri = await upload(srv.client, headers, jpeg(1600, 1200), "image/jpeg")
    answers = await asyncio.gather(*(_thumb(srv, headers, uri, 150, 150, "crop") for _ in range(8)))
    assert {a.content for a in answers} == {answers[0].content}
    server_name, media_id = mxc_parts(uri).split("/")
    stored = await media_service(srv).repo.thumbnails(server_name, media_id)
    assert [(t.width, t.height) for t in stored if t.width == 150] == [(150, 150)]


async def test_exif_orientation(srv: RunningServer, headers: dict[str, str]) -> None:
    uri = await upload(srv.client, headers, rotated_jpeg(), "image/jpeg")
    img = _image(await _thumb(srv, headers, uri, 320, 240, "scale")).convert("RGB")
    assert img.size == (120, 240)  # upright: portrait
    left, right = img.getpixel((20, 120)), img.getpixel((100, 120))
    assert left[2] > 200 and left[0] < 60
    assert right[0] > 200 and right[2] < 60


async def test_png_thumbnail_keeps_png_and_legacy_endpoint_serves_it(srv: RunningServer, headers: dict[str, str]) -> None:
    uri = await upload(srv.client, headers, png(640, 640), "image/png")
    resp = await _thumb(srv, headers, uri, 96, 96, "crop", legacy=True)
    img = _image(resp)
    assert (img.format, img.size, img.mode) == ("PNG", (96, 96), "RGBA")
    assert resp.headers["Content-Type"] == "image/png"


async def test_small_image_is_answered_with_the_original(srv: RunningServer, headers: dict[str, str]) -> None:
    original = png(20, 20)
    uri = await upload(srv.client, headers, original, "image/png")
    resp = await _thumb(srv, headers, uri, 96, 96, "crop")
    assert resp.content == original  # never upscaled


async def test_animated_gif(srv: RunningServer, headers: dict[str, str]) -> None:
    uri = await upload(srv.client, headers, animated_gif(frames=4, size=(300, 300)), "image/gif")
    moving = _image(await _thumb(srv, headers, uri, 96, 96, "crop", animated="true"))
    assert (moving.format, moving.size, moving.n_frames) == ("GIF", (96, 96), 4)
    still = _image(await _thumb(srv, headers, uri, 96, 96, "crop"))
    assert (still.format, getattr(still, "n_frames", 1)) == ("PNG", 1)
    # animated=true on a still image is a still thumbnail
    uri = await upload(srv.client, headers, jpeg(400, 300), "image/jpeg")
    assert _image(await _thumb(srv, headers, uri, 96, 96, "crop", animated="true")).format == "JPEG"


async def test_png_bomb_is_refused_and_the_server_keeps_running(srv: RunningServer, headers: dict[str, str]) -> None:
    bomb = png_bomb(20_000)  # 400 megapixels in ~50 KB
    uri = await upload(srv.client, headers, bomb, "image/png")  # stored: it is a valid file
    resp = await _thumb(srv, headers, uri, 96, 96, "crop")
    assert (resp.status_code, resp.json()["errcode"]) == (413, "M_TOO_LARGE")
    assert resp.headers["Content-Security-Policy"].startswith("sandbox;")
    smaller = await upload(srv.client, headers, png_bomb(8_000), "image/png")  # 64 MP: over our limit
    resp = await _thumb(srv, headers, smaller, 32, 32, "crop")
    assert (resp.status_code, resp.json()["errcode"]) == (413, "M_TOO_LARGE")
    download = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
    assert download.content == bomb
    ok = await upload(srv.client, headers, png(100, 100), "image/png")
    assert _image(await _thumb(srv, headers, ok, 32, 32, "crop")).size == (32, 32)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param(jpeg(1000, 800)[:4000], "image/jpeg", id="truncated-jpeg"),
        pytest.param(b"%PDF-1.4 this is not an image\n" * 50, "image/png", id="non-image-as-png"),
        pytest.param(SVG, "image/svg+xml", id="svg"),
        pytest.param(SVG, "image/png", id="svg-as-png"),
        pytest.param(png(100, 100), "text/html", id="png-as-html"),
        # A PNG whose header reads but whose data stream is broken (Pillow raises only when
        # it decodes, which reading its EXIF does): the upload stands, no thumbnail, never a 500.
        pytest.param(CORRUPT_PNG, "image/png", id="corrupt-png-stream"),
    ],
)
async def test_content_we_do_not_thumbnail(
    srv: RunningServer, headers: dict[str, str], data: bytes, content_type: str
) -> None:
    uri = await upload(srv.client, headers, data, content_type)
    resp = await _thumb(srv, headers, uri, 96, 96, "crop")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_UNKNOWN")
    download = await srv.client.get(f"{AUTHED}/download/{mxc_parts(uri)}", headers=headers)
    assert download.content == data
    if content_type in ("image/svg+xml", "text/html"):
        # Active content is never served inline.
        assert download.headers["Content-Disposition"] == "attachment"


async def test_bad_thumbnail_parameters(srv: RunningServer, headers: dict[str, str]) -> None:
    uri = await upload(srv.client, headers, png(100, 100), "image/png")
    for params, errcode in (
        ({"width": 0, "height": 10}, "M_INVALID_PARAM"),
        ({"width": "x", "height": 10}, "M_INVALID_PARAM"),
        ({"width": 10}, "M_MISSING_PARAM"),
        ({"width": 10, "height": 10, "method": "stretch"}, "M_INVALID_PARAM"),
    ):
        resp = await srv.client.get(f"{AUTHED}/thumbnail/{mxc_parts(uri)}", params=params, headers=headers)
        assert (resp.status_code, resp.json()["errcode"]) == (400, errcode), params


async def test_thumbnails_run_in_the_bounded_pool(srv: RunningServer, headers: dict[str, str]) -> None:
    # Many requests for new sizes at once: the event loop stays free (another request is
    # answered meanwhile) and never more than thumbnail_workers threads decode.
    uri = await upload(srv.client, headers, jpeg(3000, 2000), "image/jpeg")
    sizes = [(100 + 7 * i, 90 + 5 * i) for i in range(12)]
    pool = media_service(srv).thumbnails._pool
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(pool._threads))
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        results = await asyncio.gather(
            *(_thumb(srv, headers, uri, w, h, "crop") for w, h in sizes),
            srv.client.get(f"{AUTHED}/config", headers=headers),
        )
    finally:
        watcher.cancel()
    assert [_image(r).size for r in results[:-1]] == sizes
    assert results[-1].status_code == 200
    assert peak <= 2


async def test_cached_thumbnails_do_not_wait_for_the_pool(
    srv: RunningServer, headers: dict[str, str]
) -> None:
    cached = await upload(srv.client, headers, jpeg(1200, 900), "image/jpeg")
    busy = await upload(srv.client, headers, jpeg(4000, 3000), "image/jpeg")
    # Keep both pool threads decoding the 12 MP photo at new sizes...
    making = [
        asyncio.create_task(_thumb(srv, headers, busy, 1000 + i, 700 + i, "scale"))
        for i in range(10)
    ]
    await asyncio.sleep(0.05)
    # ...while a standard-size thumbnail (made at upload) is answered at once.
    started = time.monotonic()
    resp = await _thumb(srv, headers, cached, 96, 96, "crop")
    quick = time.monotonic() - started
    assert _image(resp).size == (96, 96)
    results = await asyncio.gather(*making)
    assert all(r.status_code == 200 for r in results)
    assert quick < 0.3 * (time.monotonic() - started), quick
