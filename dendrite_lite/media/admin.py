"""Media operations for the server admin (the `dendrite-lite media` commands and the
Synapse-compatible admin API, api/admin/media.py): quarantine and protection from it, listing,
delete, purging old cached copies of other servers' media, and totals.

Deleting goes through MediaRepository.delete, so a file is removed only once no row uses it
(content addressing: an identical upload elsewhere keeps it). Quarantined media stays on disk
but is served to nobody (MediaService answers 404 for it), and quarantine follows the content:
the file's other rows and later uploads of it are quarantined too (storage/media_admin.py).
Protected media is never quarantined, nor deleted by the bulk delete (POST /media/delete), as
in Synapse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.media.repository import MediaRepository
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import media_admin
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage.media_admin import (
    MEDIA_ORDER_COLUMNS,
    USAGE_ORDER_COLUMNS,
    AdminMedia,
    MediaTotals,
    UsageQuery,
    UserMediaUsage,
)

__all__ = [
    "MEDIA_ORDER_COLUMNS",
    "USAGE_ORDER_COLUMNS",
    "AdminMedia",
    "MediaAdmin",
    "MediaTotals",
    "PurgeResult",
    "UsageQuery",
    "UserMediaPage",
    "UserMediaUsage",
]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    media: int  # rows deleted
    bytes: int  # their sizes (the disk space freed, unless a file was shared)


@dataclass(frozen=True, slots=True)
class UserMediaPage:
    media: list[AdminMedia]
    total: int


class MediaAdmin:
    def __init__(self, repo: MediaRepository, server_name: str) -> None:
        self._repo = repo
        self._server_name = server_name

    async def set_quarantined(
        self, server_name: str, media_id: str, quarantined: bool = True, by: str | None = None
    ) -> bool:
        """False when there is no such media. Protected media stays served (True all the same:
        it exists, and Synapse answers such a request with success)."""
        if await self._repo.get(server_name, media_id) is None:
            return False
        await self._repo.storage.db.write(
            lambda c: media_admin.update_quarantined(c, server_name, media_id, quarantined, by)
        )
        return True

    async def set_protected(self, media_id: str, protected: bool) -> bool:
        """Protect (or no longer) one of our uploads from quarantine; False when there is none."""
        return await self._repo.storage.db.write(
            lambda c: media_admin.update_protected(c, self._server_name, media_id, protected)
        )

    async def info(self, server_name: str, media_id: str) -> AdminMedia | None:
        return await self._repo.storage.db.read(
            lambda c: media_admin.select_admin_media(c, server_name, media_id)
        )

    async def user_media(
        self, user_id: str, *, order_by: str, backwards: bool, offset: int, limit: int
    ) -> UserMediaPage:
        """A page of a local user's uploads (404 for an unknown user, 400 for another server's)."""
        await self._check_local_user(user_id)
        page, total = await self._repo.storage.db.read(
            lambda c: media_admin.select_user_media(
                c, user_id, order_by=order_by, backwards=backwards, offset=offset, limit=limit
            )
        )
        return UserMediaPage(page, total)

    async def delete_user_media(
        self, user_id: str, *, order_by: str, backwards: bool, limit: int
    ) -> list[str]:
        """Delete the first `limit` of a local user's uploads in that order; their media ids."""
        page = await self.user_media(
            user_id, order_by=order_by, backwards=backwards, offset=0, limit=limit
        )
        deleted = []
        for media in page.media:
            if await self.delete(media.server_name, media.media_id):
                deleted.append(media.media_id)
        return deleted

    async def quarantine_user_media(self, user_id: str, by: str | None) -> int:
        return await self._repo.storage.db.write(
            lambda c: media_admin.update_user_media_quarantined(c, user_id, by)
        )

    async def room_media(self, room_id: str) -> tuple[list[str], list[str]]:
        """The mxc:// URIs the room's events name: ours, then other servers' (404 for an
        unknown room). Encrypted events name theirs inside the ciphertext: not found."""
        if await self._repo.storage.db.read(lambda c: rooms_table.select_room(c, room_id)) is None:
            raise MatrixError(Errcode.NOT_FOUND, "Room not found")
        uris = [f"mxc://{s}/{m}" for s, m in await self._room_mxcs(room_id)]
        ours = f"mxc://{self._server_name}/"
        return [u for u in uris if u.startswith(ours)], [u for u in uris if not u.startswith(ours)]

    async def quarantine_room_media(self, room_id: str, by: str | None) -> int:
        """Quarantine what the room's events name (ours and cached remote copies); how many."""
        mxcs = await self._room_mxcs(room_id)
        return await self._repo.storage.db.write(
            lambda c: media_admin.update_media_list_quarantined(c, mxcs, by)
        )

    async def delete_local_before(
        self, before_ts: int, *, size_gt: int = 0, keep_profiles: bool = True
    ) -> list[str]:
        """Delete our uploads last read before `before_ts` and larger than `size_gt` bytes,
        never protected ones, and (keep_profiles) none a profile or room uses as its avatar."""
        ids = await self._repo.storage.db.read(
            lambda c: media_admin.select_local_media_ids_before(
                c, self._server_name, before_ts=before_ts, size_gt=size_gt,
                keep_profiles=keep_profiles,
            )
        )
        return [i for i in ids if await self.delete(self._server_name, i)]

    async def _room_mxcs(self, room_id: str) -> list[tuple[str, str]]:
        found = await self._repo.storage.db.read(
            lambda c: media_admin.select_room_event_json_with_mxc(c, room_id)
        )
        seen: dict[tuple[str, str], None] = {}  # in event order, once each
        for raw in found:
            for uri in _content_mxcs(json.loads(raw).get("content")):
                seen.setdefault(uri)
        return list(seen)

    async def _check_local_user(self, user_id: str) -> None:
        if user_id.partition(":")[2] != self._server_name:
            raise MatrixError(Errcode.INVALID_PARAM, "Can only look up local users")
        account = await self._repo.storage.db.read(
            lambda c: accounts_table.select_account(c, user_id)
        )
        if account is None:
            raise MatrixError(Errcode.NOT_FOUND, "Unknown user")

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

    async def users_usage(
        self, query: UsageQuery, *, offset: int, limit: int
    ) -> tuple[list[UserMediaUsage], int]:
        """Our users' uploads counted and summed per user (Synapse's statistics/users/media)."""
        if query.until_ts is not None and query.until_ts < query.from_ts:
            raise MatrixError(Errcode.INVALID_PARAM, "until_ts must not be before from_ts")
        return await self._repo.storage.db.read(
            lambda c: media_admin.select_users_media_usage(
                c, self._server_name, query, offset=offset, limit=limit
            )
        )

    async def totals(self) -> MediaTotals:
        return await self._repo.storage.db.read(
            lambda c: media_admin.select_media_totals(c, self._server_name)
        )


def _content_mxcs(content: Any) -> list[tuple[str, str]]:
    """The media an event's content points at: `url` (m.image, m.file, m.room.avatar...) and
    `info.thumbnail_url`, the two fields Synapse looks at, as (server_name, media_id)."""
    if not isinstance(content, dict):
        return []
    info = content.get("info")
    candidates = [content.get("url"), info.get("thumbnail_url") if isinstance(info, dict) else None]
    found = []
    for uri in candidates:
        if isinstance(uri, str) and uri.startswith("mxc://"):
            server_name, _, media_id = uri[len("mxc://"):].partition("/")
            if server_name and media_id and "/" not in media_id:
                found.append((server_name, media_id))
    return found
