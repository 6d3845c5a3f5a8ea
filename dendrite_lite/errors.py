"""The one Matrix error type and the one errcode -> HTTP status table.

Every layer that can fail a client or a federation peer raises MatrixError; the API layer renders
it as `{"errcode": ..., "error": ...}` (plus any extra fields) with the status from STATUS_BY_ERRCODE.
Pure layers (events/, crypto/) raise their own narrow exceptions which services translate.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["Errcode", "MatrixError", "STATUS_BY_ERRCODE", "status_for"]


class Errcode(StrEnum):
    FORBIDDEN = "M_FORBIDDEN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
    MISSING_TOKEN = "M_MISSING_TOKEN"
    USER_LOCKED = "M_USER_LOCKED"
    USER_SUSPENDED = "M_USER_SUSPENDED"
    BAD_JSON = "M_BAD_JSON"
    NOT_JSON = "M_NOT_JSON"
    NOT_FOUND = "M_NOT_FOUND"
    LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
    UNRECOGNIZED = "M_UNRECOGNIZED"
    UNKNOWN = "M_UNKNOWN"
    UNAUTHORIZED = "M_UNAUTHORIZED"
    USER_DEACTIVATED = "M_USER_DEACTIVATED"
    USER_IN_USE = "M_USER_IN_USE"
    INVALID_USERNAME = "M_INVALID_USERNAME"
    ROOM_IN_USE = "M_ROOM_IN_USE"
    INVALID_ROOM_STATE = "M_INVALID_ROOM_STATE"
    THREEPID_IN_USE = "M_THREEPID_IN_USE"
    THREEPID_NOT_FOUND = "M_THREEPID_NOT_FOUND"
    THREEPID_AUTH_FAILED = "M_THREEPID_AUTH_FAILED"
    THREEPID_DENIED = "M_THREEPID_DENIED"
    THREEPID_MEDIUM_NOT_SUPPORTED = "M_THREEPID_MEDIUM_NOT_SUPPORTED"
    SERVER_NOT_TRUSTED = "M_SERVER_NOT_TRUSTED"
    UNSUPPORTED_ROOM_VERSION = "M_UNSUPPORTED_ROOM_VERSION"
    INCOMPATIBLE_ROOM_VERSION = "M_INCOMPATIBLE_ROOM_VERSION"
    BAD_STATE = "M_BAD_STATE"
    GUEST_ACCESS_FORBIDDEN = "M_GUEST_ACCESS_FORBIDDEN"
    CAPTCHA_NEEDED = "M_CAPTCHA_NEEDED"
    CAPTCHA_INVALID = "M_CAPTCHA_INVALID"
    MISSING_PARAM = "M_MISSING_PARAM"
    INVALID_PARAM = "M_INVALID_PARAM"
    TOO_LARGE = "M_TOO_LARGE"
    EXCLUSIVE = "M_EXCLUSIVE"
    RESOURCE_LIMIT_EXCEEDED = "M_RESOURCE_LIMIT_EXCEEDED"
    CANNOT_LEAVE_SERVER_NOTICE_ROOM = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
    WEAK_PASSWORD = "M_WEAK_PASSWORD"
    UNABLE_TO_AUTHORISE_JOIN = "M_UNABLE_TO_AUTHORISE_JOIN"
    UNABLE_TO_GRANT_JOIN = "M_UNABLE_TO_GRANT_JOIN"
    BAD_ALIAS = "M_BAD_ALIAS"
    DUPLICATE_ANNOTATION = "M_DUPLICATE_ANNOTATION"
    NOT_YET_UPLOADED = "M_NOT_YET_UPLOADED"
    CANNOT_OVERWRITE_MEDIA = "M_CANNOT_OVERWRITE_MEDIA"
    UNKNOWN_POS = "M_UNKNOWN_POS"
    WRONG_ROOM_KEYS_VERSION = "M_WRONG_ROOM_KEYS_VERSION"
    INVALID_SIGNATURE = "M_INVALID_SIGNATURE"
    UNKNOWN_DEVICE = "M_UNKNOWN_DEVICE"
    APPSERVICE_LOGIN_UNSUPPORTED = "M_APPSERVICE_LOGIN_UNSUPPORTED"
    MAX_DELAY_EXCEEDED = "M_MAX_DELAY_EXCEEDED"  # MSC4140


# The spec gives most errcodes a conventional status; where it is silent we follow Synapse so
# existing clients see what they already handle.
STATUS_BY_ERRCODE: dict[str, int] = {
    Errcode.FORBIDDEN: 403,
    Errcode.UNKNOWN_TOKEN: 401,
    Errcode.MISSING_TOKEN: 401,
    Errcode.USER_LOCKED: 401,
    Errcode.USER_SUSPENDED: 403,
    Errcode.BAD_JSON: 400,
    Errcode.NOT_JSON: 400,
    Errcode.NOT_FOUND: 404,
    Errcode.LIMIT_EXCEEDED: 429,
    Errcode.UNRECOGNIZED: 404,
    Errcode.UNKNOWN: 500,
    Errcode.UNAUTHORIZED: 401,
    Errcode.USER_DEACTIVATED: 403,
    Errcode.USER_IN_USE: 400,
    Errcode.INVALID_USERNAME: 400,
    Errcode.ROOM_IN_USE: 400,
    Errcode.INVALID_ROOM_STATE: 400,
    Errcode.THREEPID_IN_USE: 400,
    Errcode.THREEPID_NOT_FOUND: 400,
    Errcode.THREEPID_AUTH_FAILED: 401,
    Errcode.THREEPID_DENIED: 403,
    Errcode.THREEPID_MEDIUM_NOT_SUPPORTED: 400,
    Errcode.SERVER_NOT_TRUSTED: 403,
    Errcode.UNSUPPORTED_ROOM_VERSION: 400,
    Errcode.INCOMPATIBLE_ROOM_VERSION: 400,
    Errcode.BAD_STATE: 400,
    Errcode.GUEST_ACCESS_FORBIDDEN: 403,
    Errcode.CAPTCHA_NEEDED: 401,
    Errcode.CAPTCHA_INVALID: 400,
    Errcode.MISSING_PARAM: 400,
    Errcode.INVALID_PARAM: 400,
    Errcode.TOO_LARGE: 413,
    Errcode.EXCLUSIVE: 400,
    Errcode.RESOURCE_LIMIT_EXCEEDED: 403,
    Errcode.CANNOT_LEAVE_SERVER_NOTICE_ROOM: 403,
    Errcode.WEAK_PASSWORD: 400,
    Errcode.UNABLE_TO_AUTHORISE_JOIN: 400,
    Errcode.UNABLE_TO_GRANT_JOIN: 502,
    Errcode.BAD_ALIAS: 400,
    Errcode.DUPLICATE_ANNOTATION: 400,
    Errcode.NOT_YET_UPLOADED: 504,
    Errcode.CANNOT_OVERWRITE_MEDIA: 409,
    Errcode.UNKNOWN_POS: 400,
    Errcode.WRONG_ROOM_KEYS_VERSION: 403,
    Errcode.INVALID_SIGNATURE: 400,
    Errcode.UNKNOWN_DEVICE: 400,
    Errcode.APPSERVICE_LOGIN_UNSUPPORTED: 400,
    Errcode.MAX_DELAY_EXCEEDED: 400,
}


def status_for(errcode: str) -> int:
    return STATUS_BY_ERRCODE.get(errcode, 400)


class MatrixError(Exception):
    """An error a Matrix client or server is meant to see.

    `status` overrides the table for the few endpoints whose spec gives another status for the same
    errcode (e.g. 405 M_UNRECOGNIZED for a known path with the wrong method). `extra` fields are
    merged into the JSON body (retry_after_ms, soft_logout, UIA flows, ...).
    """

    def __init__(
        self, errcode: str, error: str, *, status: int | None = None, **extra: Any
    ) -> None:
        super().__init__(f"{errcode}: {error}")
        self.errcode = str(errcode)
        self.error = error
        self.status = status if status is not None else status_for(self.errcode)
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errcode": self.errcode, "error": self.error}
        body.update(self.extra)
        return body
