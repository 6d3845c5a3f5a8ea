"""Media operations for the server admin (the `dendrite-lite media` commands now, the admin API
later): quarantine, delete, purging old cached copies of other servers' media, and totals.

Deleting goes through MediaRepository.delete, so a file is removed only once no row uses it
(content addressing: an identical upload elsewhere keeps it). Quarantined media stays on disk
but is served to nobody (MediaService answers 404 for it).
"""

from __future__ import annotations

from dataclasses import dataclass

from dendrite_lite.media.repository import MediaRepository
from dendrite_lite.storage import media_admin
from dendrite_lite.storage.media_admin import MediaTotals

__all__ = ["MediaAdmin", "MediaTotals", "PurgeResult"]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    media: int  # rows deleted
    bytes: int  # their sizes (the disk space freed, unless a file was shared)


class MediaAdmin:
    def __init__(self, repo: MediaRepository, server_name: str) -> None:
        self._repo = repo
        self._server_name = server_name

    async def set_quarantined(self, server_name: str, media_id: str, quarantined: bool = True) -> bool:
        """False when there is no such media."""
        return await self._repo.storage.db.write(
            lambda c: media_admin.update_quarantined(c, server_name, media_id, quarantined)
        )

    async def delete(self, server_name: str, media_id: str) -> bool:
        """The row, its thumbnails and every file nothing else uses; False when there is none."""
        if await self._repo.get(server_name, media_id) is None:
            return False
        await self._repo.delete(server_name, media_id)
        return True

    async def purge_remote(self, before_ts: int) -> PurgeResult:
        """Delete other servers' media last read (never read: fetched) before `before_ts`, and
        URL preview images stored before then; they are fetched again if someone asks (a
        preview answer is cached an hour, so none still names such an old image)."""
        old = await self._repo.storage.db.read(
            lambda c: media_admin.select_old_remote_media(c, self._server_name, before_ts)
        )
        count = size = 0
        for server_name, media_id in old:
            row = await self._repo.get(server_name, media_id)
            if row is None:
                continue
            await self._repo.delete(server_name, media_id)
            count, size = count + 1, size + (row.size or 0)
        return PurgeResult(count, size)

    async def totals(self) -> MediaTotals:
        return await self._repo.storage.db.read(
            lambda c: media_admin.select_media_totals(c, self._server_name)
        )
