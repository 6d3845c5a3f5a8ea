"""The optional per-user media quota (media.max_user_bytes; 0: none).

`UploadQuota.limit(user_id)` is the most the next upload of that user may be: the smaller of
media.max_upload_bytes and what is left of their quota. A user with nothing left is refused at
once, and an upload that runs past what is left is cut off while it streams; both are 403
M_FORBIDDEN, the spec's answer for "the user has reached a quota for uploaded content"
(content-repo.yaml), while a file over max_upload_bytes stays 413 M_TOO_LARGE.
Every upload counts (identical files are stored once on disk, but a user's use does not depend
on what others uploaded). Two uploads racing may together pass the quota by at most one upload.
"""

from __future__ import annotations

from dataclasses import dataclass

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage, media_admin

__all__ = ["UploadLimit", "UploadQuota", "quota_exceeded"]


@dataclass(frozen=True, slots=True)
class UploadLimit:
    max_bytes: int
    by_quota: bool  # the quota, not max_upload_bytes, is the tighter limit


def quota_exceeded() -> MatrixError:
    return MatrixError(Errcode.FORBIDDEN, "You have reached your media upload quota", status=403)


class UploadQuota:
    def __init__(self, storage: Storage, *, max_upload_bytes: int, max_user_bytes: int) -> None:
        self._storage = storage
        self._max_upload = max_upload_bytes
        self._max_user = max_user_bytes

    async def limit(self, user_id: str) -> UploadLimit:
        if not self._max_user:
            return UploadLimit(self._max_upload, by_quota=False)
        used = await self._storage.db.read(lambda c: media_admin.select_user_media_bytes(c, user_id))
        left = self._max_user - used
        if left <= 0:
            raise quota_exceeded()
        return UploadLimit(min(left, self._max_upload), by_quota=left < self._max_upload)
