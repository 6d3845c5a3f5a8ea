"""MediaRepository: the media files (media/store.py) and their rows (storage/media.py) together.

The one place that writes both, in the order that keeps them consistent: a file is complete on
disk before a row names it, and a file is deleted only after the commit that removed its last
row. Everything that stores media goes through here: local uploads (media/service.py), cached
copies of other servers' media (the federation media fetcher), and thumbnails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import aiosqlite

from dendrite_lite.media.store import FileStore, Received
from dendrite_lite.storage import Storage
from dendrite_lite.storage import media as media_table
from dendrite_lite.storage.media import MediaRow, ThumbnailRow

__all__ = ["MediaRepository", "MediaRow", "ThumbnailRow", "now_ms"]

T = TypeVar("T")


def now_ms() -> int:
    return int(time.time() * 1000)


class MediaRepository:
    def __init__(self, storage: Storage, files: FileStore) -> None:
        self.storage = storage
        self.files = files

    def path(self, sha256: str) -> Path:
        """The file of a stored row's (or thumbnail's) sha256."""
        return self.files.path_for(sha256)

    async def get(self, server_name: str, media_id: str) -> MediaRow | None:
        """The row of an mxc:// URI (ids already checked with names.check_mxc)."""
        return await self.storage.db.read(
            lambda conn: media_table.select_media(conn, server_name, media_id)
        )

    async def store(
        self,
        media: MediaRow,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        idle_timeout: float | None = None,
    ) -> MediaRow:
        """Stream content to disk, then record `media` (its sha256 and size filled in).

        Used for local uploads and for cached copies of remote media alike (`media.server_name`
        is the origin; an existing row of the same URI is replaced). Raises store.TooLarge or
        store.BodyTimeout, with nothing stored."""
        received = await self.files.receive(chunks, max_bytes=max_bytes, idle_timeout=idle_timeout)
        row = replace(media, sha256=received.sha256, size=received.size, expires_ts=None)
        await self._keep(received, lambda conn: media_table.insert_media(conn, row))
        return row

    async def create_pending(
        self, server_name: str, media_id: str, user_id: str, *, expires_ts: int,
        authenticated: bool, max_pending: int,
    ) -> bool:
        """Record a created, not yet uploaded id; False when the user holds `max_pending` already."""
        created = now_ms()

        async def txn(conn: aiosqlite.Connection) -> bool:
            if await media_table.count_pending_media(conn, user_id, created) >= max_pending:
                return False
            await media_table.insert_pending_media(
                conn, server_name, media_id, user_id, created, expires_ts, authenticated
            )
            return True

        return await self.storage.db.write(txn)

    async def complete_pending(
        self, server_name: str, media_id: str, chunks: AsyncIterable[bytes], *,
        content_type: str | None, upload_name: str | None, max_bytes: int,
        idle_timeout: float | None = None,
    ) -> bool:
        """Stream the content of a pending id to disk and point the id at it; False when another
        upload got there first (this one's file is dropped unless other rows use it). Raises
        store.TooLarge or store.BodyTimeout, with nothing stored."""
        received = await self.files.receive(chunks, max_bytes=max_bytes, idle_timeout=idle_timeout)
        done = await self._keep(received, lambda conn: media_table.complete_pending_media(
            conn, server_name, media_id, received.sha256, received.size, content_type, upload_name
        ))
        if not done:
            await self._drop_if_unused(received.sha256)
        return done

    async def thumbnails(self, server_name: str, media_id: str) -> list[ThumbnailRow]:
        return await self.storage.db.read(
            lambda conn: media_table.select_thumbnails(conn, server_name, media_id)
        )

    async def add_thumbnail(
        self, server_name: str, media_id: str, data: bytes, *, width: int, height: int,
        method: str, animated: bool, content_type: str,
    ) -> ThumbnailRow:
        async def one() -> AsyncIterator[bytes]:
            yield data

        received = await self.files.receive(one(), max_bytes=len(data))
        thumb = ThumbnailRow(
            width=width, height=height, method=method, animated=animated, sha256=received.sha256,
            size=received.size, content_type=content_type,
        )
        await self._keep(
            received, lambda conn: media_table.insert_thumbnail(conn, server_name, media_id, thumb)
        )
        return thumb

    async def touch(self, server_name: str, media_id: str) -> None:
        """Record an access (purging remote copies nobody reads uses it)."""
        ts = now_ms()
        await self.storage.db.write(
            lambda conn: media_table.update_media_access(conn, server_name, media_id, ts)
        )

    async def delete(self, server_name: str, media_id: str) -> None:
        """Delete a media row, its thumbnails, and every file no other row uses."""
        orphans = await self.storage.db.write(
            lambda conn: media_table.delete_media(conn, server_name, media_id)
        )
        for sha256 in orphans:
            await self._drop_if_unused(sha256)

    async def _keep(
        self, received: Received, record: Callable[[aiosqlite.Connection], Awaitable[T]]
    ) -> T:
        """Put a received file in place and write the row naming it, under the hash's lock:
        a delete of the last other row with the same content cannot unlink the file between
        the two (it counts rows under the same lock)."""
        async with self.files.lock(received.sha256):
            await self.files.install(received)
            return await self.storage.db.write(record)

    async def _drop_if_unused(self, sha256: str) -> None:
        async with self.files.lock(sha256):
            refs = await self.storage.db.read(
                lambda conn: media_table.count_sha256_refs(conn, sha256)
            )
            if refs == 0:
                await self.files.delete(sha256)
