"""media/remote.py with a fake federation fetcher and a real store: one fetch per mxc:// URI
for concurrent askers, the spec's errors (404 as None, 504, 502 M_TOO_LARGE, 502 M_UNKNOWN),
failures not remembered; and MediaService refreshing a cached copy's last access (for
`media purge-remote`) at most once a day."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dendrite_lite.config import Config, ServerConfig
from dendrite_lite.errors import MatrixError
from dendrite_lite.federation.client import UnreachableError
from dendrite_lite.federation.media import MediaNotFound, NotYetUploaded, RemoteFile
from dendrite_lite.media.remote import RemoteMedia
from dendrite_lite.media.repository import MediaRepository, now_ms
from dendrite_lite.media.service import ACCESS_RESOLUTION_MS, MediaService
from dendrite_lite.media.thumbnails import Thumbnails
from dendrite_lite.ratelimit import RateLimits

ORIGIN = "them.example.org"


class FakeDownloads:
    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None
        self.body = b"remote bytes"
        self.gate = asyncio.Event()
        self.gate.set()

    @contextlib.asynccontextmanager
    async def download(self, server_name: str, media_id: str, timeout_s: float, max_bytes: int) -> AsyncIterator[RemoteFile]:
        self.calls += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error

        async def chunks() -> AsyncIterator[bytes]:
            yield self.body

        yield RemoteFile("image/png", "a.png", chunks())


async def test_concurrent_askers_share_one_fetch(repo: MediaRepository) -> None:
    fake = FakeDownloads()
    remote = RemoteMedia(repo, fake, max_bytes=1000)  # type: ignore[arg-type]
    fake.gate.clear()
    asks = [asyncio.ensure_future(remote.fetch(ORIGIN, "abc", 5.0)) for _ in range(10)]
    await asyncio.sleep(0.05)
    fake.gate.set()
    rows = await asyncio.gather(*asks)
    assert fake.calls == 1
    assert {(r.server_name, r.media_id, r.size, r.content_type, r.upload_name) for r in rows} == {
        (ORIGIN, "abc", len(fake.body), "image/png", "a.png")
    }
    assert repo.path(rows[0].sha256).read_bytes() == fake.body  # type: ignore[arg-type]
    assert (await remote.fetch(ORIGIN, "abc", 5.0)) == rows[0] and fake.calls == 1


@pytest.mark.parametrize(
    ("error", "status", "errcode"),
    [
        (NotYetUploaded("later"), 504, "M_NOT_YET_UPLOADED"),
        (UnreachableError(ORIGIN, "down"), 502, "M_UNKNOWN"),
        (None, 502, "M_TOO_LARGE"),  # the body passes max_bytes
    ],
)
async def test_errors_are_the_spec_answers_and_not_remembered(
    repo: MediaRepository, error: Exception | None, status: int, errcode: str
) -> None:
    fake = FakeDownloads()
    fake.error, fake.body = error, b"x" * 2000
    remote = RemoteMedia(repo, fake, max_bytes=1000)  # type: ignore[arg-type]
    for calls in (1, 2):
        with pytest.raises(MatrixError) as caught:
            await remote.fetch(ORIGIN, "abc", 5.0)
        assert (caught.value.status, caught.value.errcode, fake.calls) == (status, errcode, calls)
    assert await repo.get(ORIGIN, "abc") is None
    assert repo.files.temporary_files() == []


async def test_unknown_at_the_origin_is_none(repo: MediaRepository) -> None:
    fake = FakeDownloads()
    fake.error = MediaNotFound("no")
    assert await RemoteMedia(repo, fake, max_bytes=1000).fetch(ORIGIN, "abc", 5.0) is None  # type: ignore[arg-type]


async def test_download_refreshes_last_access_once_a_day(repo: MediaRepository, tmp_path: Path) -> None:
    fake = FakeDownloads()
    remote = RemoteMedia(repo, fake, max_bytes=1000)  # type: ignore[arg-type]
    config = Config(server=ServerConfig(server_name="us.example.org", data_dir=tmp_path))
    thumbnails = Thumbnails(repo, workers=1, max_pixels=1000)
    media = MediaService(config, repo, thumbnails, RateLimits.unlimited().upload_user, fetch_remote=remote.fetch)
    try:
        await media.download(ORIGIN, "abc", authenticated=True, timeout_ms=None)
        fresh = await repo.get(ORIGIN, "abc")
        assert fresh is not None and fresh.last_access_ts is None  # fetched just now
        await repo.storage.db.write(lambda c: c.execute(
            "UPDATE media SET created_ts = ?", (now_ms() - ACCESS_RESOLUTION_MS - 1,)
        ))
        await media.download(ORIGIN, "abc", authenticated=True, timeout_ms=None)
        touched = await repo.get(ORIGIN, "abc")
        assert touched is not None and touched.last_access_ts is not None
        assert touched.last_access_ts > now_ms() - 10_000
    finally:
        thumbnails.close()
