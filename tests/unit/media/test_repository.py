"""media/repository.py: files and rows together. The race content addressing invites: deleting
the last row of some content while an upload of the same bytes has put the file in place but not
yet written its row must not unlink that file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from dendrite_lite.media.repository import MediaRepository, MediaRow, now_ms

ME = "example.org"


def _row(media_id: str) -> MediaRow:
    return MediaRow(
        server_name=ME, media_id=media_id, sha256=None, size=None, content_type="text/plain",
        upload_name=None, user_id="@a:example.org", created_ts=now_ms(),
    )


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_delete_waits_for_an_upload_of_the_same_bytes(repo: MediaRepository) -> None:
    first = await repo.store(_row("first"), _body(b"same"), max_bytes=100)
    assert first.sha256 is not None
    # Hold the second upload between its file's install and its row's write.
    installed = asyncio.Event()
    release = asyncio.Event()
    real_install = repo.files.install

    async def slow_install(received):  # type: ignore[no-untyped-def]
        stored = await real_install(received)
        installed.set()
        await release.wait()
        return stored

    repo.files.install = slow_install  # type: ignore[method-assign]
    second = asyncio.create_task(repo.store(_row("second"), _body(b"same"), max_bytes=100))
    await installed.wait()
    deleting = asyncio.create_task(repo.delete(ME, "first"))
    await asyncio.sleep(0.05)
    assert not deleting.done()  # it waits for the hash's lock
    release.set()
    await asyncio.gather(second, deleting)
    assert repo.path(first.sha256).read_bytes() == b"same"  # "second" still names it
    await repo.delete(ME, "second")
    assert not repo.path(first.sha256).exists()


async def test_losing_put_drops_its_unused_file(repo: MediaRepository) -> None:
    await repo.create_pending(ME, "pending", "@a:example.org", expires_ts=now_ms() + 60_000,
                              authenticated=True, max_pending=5)
    common = dict(content_type="text/plain", upload_name=None, max_bytes=100)
    assert await repo.complete_pending(ME, "pending", _body(b"winner"), **common) is True
    assert await repo.complete_pending(ME, "pending", _body(b"loser"), **common) is False
    names = sorted(p.name for p in (repo.files.root / "content").rglob("*") if p.is_file())
    row = await repo.get(ME, "pending")
    assert row is not None and names == [row.sha256]
    assert repo.files.temporary_files() == []
