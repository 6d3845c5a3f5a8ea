"""Other servers' media, fetched over federation once and kept (MediaService's `fetch_remote`).

`RemoteMedia.fetch(server_name, media_id, timeout_s)` answers the cached row, fetching it when
there is none: through federation/media.py (the authenticated federation endpoint, else the
legacy one), streamed into the media store with the limit local uploads have
(media.max_upload_bytes), under the origin's server name. However many clients ask for the same
media at the same moment (everyone in a room loading a new avatar), the origin is asked once
(`SingleFlight`, keyed by the mxc:// URI); the others wait for that copy.

Errors, as the spec's media endpoints answer them: the origin has no such media -> None (the
caller's 404); not yet uploaded there -> 504 M_NOT_YET_UPLOADED; larger than our limit -> 502
M_TOO_LARGE; anything else (unreachable, garbage) -> 502 M_UNKNOWN. Failures are not cached: the
next request asks again.
"""

from __future__ import annotations

import logging

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.client import FederationError
from dendrite_lite.federation.media import MediaDownloads, MediaNotFound, NotYetUploaded
from dendrite_lite.media.names import sanitise_file_name
from dendrite_lite.media.repository import MediaRepository, MediaRow, now_ms
from dendrite_lite.media.single_flight import SingleFlight
from dendrite_lite.media.store import BodyTimeout, TooLarge
from dendrite_lite.outbound_errors import HttpError, ResponseTooLarge

__all__ = ["RemoteMedia"]

log = logging.getLogger(__name__)

# A remote body that stops arriving for this long is dropped (nothing stored).
IDLE_TIMEOUT_S = 30.0


class RemoteMedia:
    def __init__(self, repo: MediaRepository, downloads: MediaDownloads, *, max_bytes: int) -> None:
        self._repo = repo
        self._downloads = downloads
        self._max_bytes = max_bytes
        self._flights: SingleFlight[tuple[str, str], MediaRow | None] = SingleFlight()
        self.fetches = 0  # origin requests made (tests and metrics)

    async def fetch(self, server_name: str, media_id: str, timeout_s: float) -> MediaRow | None:
        key = (server_name, media_id)
        return await self._flights.run(key, lambda: self._fetch(server_name, media_id, timeout_s))

    async def _fetch(self, server_name: str, media_id: str, timeout_s: float) -> MediaRow | None:
        # A flight that ended just before this one started has stored it already.
        row = await self._repo.get(server_name, media_id)
        if row is not None:
            return row
        self.fetches += 1
        try:
            async with self._downloads.download(server_name, media_id, timeout_s, self._max_bytes) as remote:
                media = MediaRow(
                    server_name=server_name, media_id=media_id, sha256=None, size=None,
                    content_type=remote.content_type, upload_name=sanitise_file_name(remote.file_name),
                    user_id=None, created_ts=now_ms(), authenticated=True,
                )
                return await self._repo.store(
                    media, remote.chunks, max_bytes=self._max_bytes, idle_timeout=IDLE_TIMEOUT_S
                )
        except MediaNotFound:
            return None
        except NotYetUploaded:
            raise MatrixError(
                Errcode.NOT_YET_UPLOADED, "The media has not been uploaded yet", status=504
            ) from None
        except (TooLarge, ResponseTooLarge):
            raise MatrixError(Errcode.TOO_LARGE, "Remote media is too large", status=502) from None
        except (FederationError, HttpError, BodyTimeout) as e:
            log.info("cannot fetch mxc://%s/%s: %s", server_name, media_id, e)
            raise MatrixError(
                Errcode.UNKNOWN, f"Cannot fetch media from {server_name}", status=502
            ) from None
