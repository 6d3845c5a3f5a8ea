"""MediaService: what the media endpoints do (upload, create + upload, download, thumbnail).

    mxc = await media.upload(user_id, request.body, content_type="image/png", file_name="a.png")
    file = await media.download(server_name, media_id, authenticated=True, timeout_ms=None)
    file = await media.thumbnail(server_name, media_id, 96, 96, "crop", animated=False, ...)

Rules it keeps (content_repo.md, content-repo.yaml, authed-content-repo.yaml):
- an upload over media.max_upload_bytes is 413 M_TOO_LARGE (the API refuses a declared
  Content-Length before reading; a longer streamed body is cut off here), nothing stored;
- uploads and /create are rate limited per user (ratelimit.upload_*); a user holds at most
  media.max_pending_uploads unused /create ids, each valid media.pending_upload_expiry_s;
- PUT to a created id: only its creator (403), once (409 M_CANNOT_OVERWRITE_MEDIA), before it
  expires (404);
- a download of a created, not yet uploaded id waits up to timeout_ms (default 20 s) for the
  upload, then 504 M_NOT_YET_UPLOADED;
- media stored while media.freeze_unauthenticated is on is 404 on the legacy endpoints
  (`authenticated=False`), and quarantined media is 404 everywhere (but to a server admin
  downloading with admin_unsafely_bypass_quarantine=true, as Synapse);
- other servers' media comes from `fetch_remote` (the federation media fetcher, which stores it
  through the same MediaRepository); without federation it is 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dendrite_lite.config import Config
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.media.names import check_mxc, new_media_id, sanitise_file_name
from dendrite_lite.media.quota import UploadLimit, UploadQuota, quota_exceeded
from dendrite_lite.media.repository import MediaRepository, MediaRow, now_ms
from dendrite_lite.media.store import BodyTimeout, TooLarge
from dendrite_lite.media.thumbnails import Thumbnails
from dendrite_lite.ratelimit import RateLimiter

__all__ = ["MediaService", "MediaFile", "RemoteFetch", "BODY_IDLE_TIMEOUT_S"]

# An upload that sends nothing for this long is dropped (408): a client cannot hold a temporary
# file and a request open forever by trickling.
BODY_IDLE_TIMEOUT_S = 30.0
# authed-content-repo.yaml timeout_ms: "defaults to 20000 (20 seconds)"; we wait at most 2 min.
DEFAULT_WAIT_MS = 20_000
MAX_WAIT_MS = 120_000
# How stale a cached remote copy's last_access_ts may get before a download refreshes it.
ACCESS_RESOLUTION_MS = 24 * 3600 * 1000

# (server_name, media_id, timeout in seconds) -> the cached row, or None when the origin has no
# such media. Raises MatrixError for the spec's 502/504 answers.
RemoteFetch = Callable[[str, str, float], Awaitable[MediaRow | None]]


@dataclass(frozen=True, slots=True)
class MediaFile:
    """A file to send: path on disk and the headers that describe it."""

    path: Path
    size: int
    content_type: str
    file_name: str | None
    etag: str  # the content's SHA-256


class MediaService:
    def __init__(
        self,
        config: Config,
        repo: MediaRepository,
        thumbnails: Thumbnails,
        upload_limiter: RateLimiter,
        fetch_remote: RemoteFetch | None = None,
    ) -> None:
        self._server_name = config.server.server_name
        self._media = config.media
        self.repo = repo
        self.thumbnails = thumbnails
        self._limiter = upload_limiter
        self._fetch_remote = fetch_remote
        self._quota = UploadQuota(  # media.max_user_bytes (media/quota.py)
            repo.storage, max_upload_bytes=config.media.max_upload_bytes,
            max_user_bytes=config.media.max_user_bytes,
        )
        # Downloads waiting for a created id's upload, woken when it arrives.
        self._arrivals: dict[tuple[str, str], asyncio.Event] = {}

    def config(self) -> dict[str, Any]:
        """GET /media/config."""
        return {"m.upload.size": self._media.max_upload_bytes}

    # --- uploads -----------------------------------------------------------------------------
    async def upload(
        self, user_id: str, body: AsyncIterable[bytes], *, content_type: str | None,
        file_name: str | None,
    ) -> str:
        """POST /upload: store the body; its mxc:// URI."""
        self._limiter.check(user_id.lower())
        media = MediaRow(
            server_name=self._server_name, media_id=new_media_id(), sha256=None, size=None,
            content_type=content_type, upload_name=sanitise_file_name(file_name),
            user_id=user_id, created_ts=now_ms(),
            authenticated=self._media.freeze_unauthenticated,
        )
        limit = await self._quota.limit(user_id)
        row = await self._receive(limit, lambda: self.repo.store(
            media, body, max_bytes=limit.max_bytes, idle_timeout=BODY_IDLE_TIMEOUT_S,
        ))
        await self.thumbnails.make_standard(row)
        return f"mxc://{row.server_name}/{row.media_id}"

    async def create(self, user_id: str) -> dict[str, Any]:
        """POST /media/v1/create: an mxc:// URI to upload to later."""
        self._limiter.check(user_id.lower())
        media_id = new_media_id()
        expires = now_ms() + self._media.pending_upload_expiry_s * 1000
        created = await self.repo.create_pending(
            self._server_name, media_id, user_id, expires_ts=expires,
            authenticated=self._media.freeze_unauthenticated,
            max_pending=self._media.max_pending_uploads,
        )
        if not created:
            raise MatrixError(
                Errcode.LIMIT_EXCEEDED, "Too many pending uploads; upload to or let expire one first"
            )
        return {"content_uri": f"mxc://{self._server_name}/{media_id}", "unused_expires_at": expires}

    async def upload_to(
        self, user_id: str, server_name: str, media_id: str, body: AsyncIterable[bytes], *,
        content_type: str | None, file_name: str | None,
    ) -> None:
        """PUT /upload/{serverName}/{mediaId}: the content of a created id."""
        check_mxc(server_name, media_id)
        row = await self.repo.get(server_name, media_id) if server_name == self._server_name else None
        if row is None or (row.pending and (row.expires_ts or 0) <= now_ms()):
            raise MatrixError(Errcode.NOT_FOUND, "Unknown or expired media ID")
        if row.user_id != user_id:
            raise MatrixError(Errcode.FORBIDDEN, "This media ID was created by another user")
        if not row.pending:
            raise MatrixError(Errcode.CANNOT_OVERWRITE_MEDIA, "Media already uploaded")
        limit = await self._quota.limit(user_id)
        done = await self._receive(limit, lambda: self.repo.complete_pending(
            server_name, media_id, body, content_type=content_type,
            upload_name=sanitise_file_name(file_name), max_bytes=limit.max_bytes,
            idle_timeout=BODY_IDLE_TIMEOUT_S,
        ))
        if not done:  # a concurrent PUT won
            raise MatrixError(Errcode.CANNOT_OVERWRITE_MEDIA, "Media already uploaded")
        arrival = self._arrivals.pop((server_name, media_id), None)
        if arrival is not None:
            arrival.set()
        done = await self.repo.get(server_name, media_id)
        if done is not None:
            await self.thumbnails.make_standard(done)

    async def _receive(self, limit: UploadLimit, store: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await store()
        except TooLarge:
            if limit.by_quota:
                raise quota_exceeded() from None
            raise MatrixError(Errcode.TOO_LARGE, "Upload too large", status=413) from None
        except BodyTimeout:
            raise MatrixError(Errcode.UNKNOWN, "Timed out waiting for the upload", status=408) from None

    # --- downloads ----------------------------------------------------------------------------
    async def download(
        self, server_name: str, media_id: str, *, authenticated: bool, timeout_ms: int | None,
        file_name: str | None = None, allow_remote: bool = True, bypass_quarantine: bool = False,
    ) -> MediaFile:
        """GET download: the file of an mxc:// URI (`file_name` overrides the stored name).
        `bypass_quarantine`: a server admin asked for quarantined media on purpose (Synapse's
        admin_unsafely_bypass_quarantine)."""
        row = await self._servable(
            server_name, media_id, authenticated, timeout_ms, allow_remote, bypass_quarantine
        )
        assert row.sha256 is not None and row.size is not None
        return MediaFile(
            self.repo.path(row.sha256), row.size, row.content_type or "application/octet-stream",
            sanitise_file_name(file_name) or row.upload_name, row.sha256,
        )

    async def thumbnail(
        self, server_name: str, media_id: str, width: int, height: int, method: str, *,
        animated: bool, authenticated: bool, timeout_ms: int | None, allow_remote: bool = True,
    ) -> MediaFile:
        """GET thumbnail: a thumbnail at least as big as asked (or the original when smaller)."""
        if width < 1 or height < 1:
            raise MatrixError(Errcode.INVALID_PARAM, "width and height must be positive")
        if method not in ("crop", "scale"):
            raise MatrixError(Errcode.INVALID_PARAM, 'method must be "crop" or "scale"')
        row = await self._servable(server_name, media_id, authenticated, timeout_ms, allow_remote)
        assert row.sha256 is not None and row.size is not None
        chosen = await self.thumbnails.choose(row, width, height, method, animated)
        if chosen is None:
            return MediaFile(
                self.repo.path(row.sha256), row.size, row.content_type or "application/octet-stream",
                row.upload_name, row.sha256,
            )
        return MediaFile(
            self.repo.path(chosen.sha256), chosen.size, chosen.content_type, None, chosen.sha256
        )

    async def _servable(
        self, server_name: str, media_id: str, authenticated: bool, timeout_ms: int | None,
        allow_remote: bool, bypass_quarantine: bool = False,
    ) -> MediaRow:
        check_mxc(server_name, media_id)
        wait_s = min(MAX_WAIT_MS, DEFAULT_WAIT_MS if timeout_ms is None else max(0, timeout_ms)) / 1000
        row = await self.repo.get(server_name, media_id)
        remote = server_name != self._server_name
        if row is None and remote and allow_remote and self._fetch_remote is not None:
            row = await self._fetch_remote(server_name, media_id, wait_s)
        if row is not None and row.pending:
            row = await self._wait_for_upload(row, wait_s)
        quarantined = row is not None and row.quarantined and not bypass_quarantine
        if row is None or quarantined or (row.authenticated and not authenticated):
            # content_repo.md: frozen media is served by the authenticated endpoints only (the
            # legacy ones "MAY return 404 M_NOT_FOUND", content-repo.yaml).
            raise MatrixError(Errcode.NOT_FOUND, "Media not found")
        if remote and (row.last_access_ts or row.created_ts) < now_ms() - ACCESS_RESOLUTION_MS:
            # `media purge-remote` deletes copies nobody read lately; a day's resolution costs
            # one write per copy and day, not one per download.
            await self.repo.touch(server_name, media_id)
        return row

    async def _wait_for_upload(self, row: MediaRow, wait_s: float) -> MediaRow | None:
        if (row.expires_ts or 0) <= now_ms():
            return None
        key = (row.server_name, row.media_id)
        arrival = self._arrivals.setdefault(key, asyncio.Event())
        # The upload may have landed between the caller's read and the event's registration.
        again = await self.repo.get(*key)
        if again is None or not again.pending:
            return again
        try:
            await asyncio.wait_for(arrival.wait(), wait_s)
        except TimeoutError:
            raise MatrixError(
                Errcode.NOT_YET_UPLOADED, "The media has not been uploaded yet", status=504
            ) from None
        return await self.repo.get(*key)
