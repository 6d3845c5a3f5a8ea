"""Pushers (push.md §Pushers: GET /pushers, POST /pushers/set).

Only `http` pushers: `email` needs a mail setup this server does not have, and is refused
with 400 M_INVALID_PARAM like any other unknown kind. Delivery is users.push_gateway's.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any
from urllib.parse import urlsplit

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import pushers as table
from dendrite_lite.storage.pushers import Pusher

__all__ = ["PushersService", "NOTIFY_PATH", "pusher_json"]

NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_PUSHKEY_BYTES = 512  # pusher.yaml: "Max length, 512 bytes."
MAX_APP_ID_CHARS = 64  # pusher.yaml: "Max length, 64 chars."
_REQUIRED = ("app_display_name", "device_display_name", "lang", "data")


def pusher_json(p: Pusher) -> dict[str, Any]:
    """A pusher as GET /pushers shows it."""
    out: dict[str, Any] = {
        "pushkey": p.pushkey, "kind": p.kind, "app_id": p.app_id,
        "app_display_name": p.app_display_name, "device_display_name": p.device_display_name,
        "lang": p.lang, "data": p.data,
    }
    if p.profile_tag is not None:
        out["profile_tag"] = p.profile_tag
    return out


class PushersService:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def pushers(self, user_id: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/pushers body."""
        found = await self._storage.db.read(lambda conn: table.select_pushers(conn, user_id))
        return {"pushers": [pusher_json(p) for p in found]}

    async def set_pusher(self, user_id: str, device_id: str | None, body: dict[str, Any]) -> None:
        """POST /_matrix/client/v3/pushers/set (by `device_id`: deleting the device deletes the
        pusher, as Synapse does, so a phone signed out stops receiving notifications)."""
        app_id, pushkey = _string(body, "app_id"), _string(body, "pushkey")
        if "kind" not in body:
            raise MatrixError(Errcode.MISSING_PARAM, "Missing 'kind'")
        if body["kind"] is None:
            await self._storage.db.write(
                lambda conn: table.delete_pusher(conn, user_id, app_id, pushkey)
            )
            return
        pusher = dataclasses.replace(_parse(user_id, app_id, pushkey, body), device_id=device_id)
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise MatrixError(Errcode.INVALID_PARAM, "'append' must be a boolean")
        await self._storage.db.write(lambda conn: table.upsert_pusher(conn, pusher, append=append))


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise MatrixError(Errcode.MISSING_PARAM, f"Missing '{key}'")
    if not isinstance(value, str):
        raise MatrixError(Errcode.INVALID_PARAM, f"'{key}' must be a string")
    return value


def _parse(user_id: str, app_id: str, pushkey: str, body: dict[str, Any]) -> Pusher:
    if body["kind"] != "http":
        raise MatrixError(Errcode.INVALID_PARAM, "Only 'http' pushers are supported")
    if len(pushkey.encode("utf-8")) > MAX_PUSHKEY_BYTES:
        raise MatrixError(Errcode.INVALID_PARAM, f"'pushkey' is over {MAX_PUSHKEY_BYTES} bytes")
    if len(app_id) > MAX_APP_ID_CHARS:
        raise MatrixError(Errcode.INVALID_PARAM, f"'app_id' is over {MAX_APP_ID_CHARS} characters")
    for key in _REQUIRED:
        if key not in body:
            raise MatrixError(Errcode.MISSING_PARAM, f"Missing '{key}'")
    data = body["data"]
    if not isinstance(data, dict):
        raise MatrixError(Errcode.INVALID_PARAM, "'data' must be an object")
    url = data.get("url")
    if url is None:
        raise MatrixError(Errcode.MISSING_PARAM, "'data' needs 'url' for an http pusher")
    parts = urlsplit(url) if isinstance(url, str) else None
    # NOTSPEC: pusher.yaml says the URL MUST be https; plain http is accepted, as Synapse does,
    # for a gateway on the same host or a private network.
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc or (
        parts.path != NOTIFY_PATH
    ):
        raise MatrixError(
            Errcode.INVALID_PARAM, f"'data.url' must be an http(s) URL with the path {NOTIFY_PATH}"
        )
    profile_tag = body.get("profile_tag")
    texts = [body[k] for k in ("app_display_name", "device_display_name", "lang")]
    if not all(isinstance(t, str) for t in texts) or not isinstance(profile_tag, (str, type(None))):
        raise MatrixError(Errcode.INVALID_PARAM, "Pusher names, lang and profile_tag are strings")
    return Pusher(
        user_id, app_id, pushkey, "http", texts[0], texts[1], profile_tag, texts[2], dict(data),
        int(time.time() * 1000),
    )
