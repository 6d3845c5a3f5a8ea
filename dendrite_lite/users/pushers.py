"""Pushers (push.md §Pushers: GET /pushers, POST /pushers/set).

`http` pushers are delivered by users.push_gateway. `email` pushers (app_id "m.email", the
pushkey an address confirmed on the account, as Synapse requires: 400 M_THREEPID_NOT_FOUND
otherwise) are mailed by users.email_notifier, and only with [email] set up and
email.notif_enabled. Any other kind is 400 M_INVALID_PARAM.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import email_pushers as email_table
from dendrite_lite.storage import pushers as table
from dendrite_lite.storage import threepids as threepids_table
from dendrite_lite.storage.pushers import Pusher
from dendrite_lite.users.threepids import EMAIL, canonical_address

__all__ = ["EMAIL_APP_ID", "NOTIFY_PATH", "PushersService", "pusher_json"]

NOTIFY_PATH = "/_matrix/push/v1/notify"
EMAIL_APP_ID = "m.email"  # pusher.yaml: the app_id of every email pusher
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
    def __init__(self, storage: Storage, *, email: bool = False) -> None:
        self._storage = storage
        self._email = email  # email pushers allowed (config.email.notifications)

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
        if body["kind"] == "email":
            await self._set_email_pusher(user_id, device_id, body)
            return
        pusher = dataclasses.replace(_parse(user_id, app_id, pushkey, body), device_id=device_id)
        append = _append(body)
        await self._storage.db.write(lambda conn: table.upsert_pusher(conn, pusher, append=append))

    async def _set_email_pusher(
        self, user_id: str, device_id: str | None, body: dict[str, Any]
    ) -> None:
        if not self._email:
            raise MatrixError(
                Errcode.INVALID_PARAM, "Email notifications are not available on this server"
            )
        if body["app_id"] != EMAIL_APP_ID:
            raise MatrixError(Errcode.INVALID_PARAM, f"An email pusher's app_id is {EMAIL_APP_ID!r}")
        address = canonical_address(EMAIL, body["pushkey"])
        pusher = dataclasses.replace(
            _parse(user_id, EMAIL_APP_ID, address, body), device_id=device_id
        )
        append = _append(body)

        async def txn(conn: aiosqlite.Connection) -> bool:
            owner = await threepids_table.select_user_id_for_threepid(conn, EMAIL, address)
            if owner != user_id:
                return False
            await table.upsert_pusher(conn, pusher, append=append)
            token = secrets.token_urlsafe(24)
            await email_table.insert_email_pusher(conn, user_id, EMAIL_APP_ID, address, token)
            return True

        if not await self._storage.db.write(txn):
            raise MatrixError(
                Errcode.THREEPID_NOT_FOUND, "That email address is not confirmed on your account"
            )

    async def unsubscribe(self, token: str) -> bool:
        """The unsubscribe link of an email notification: its pusher goes. False when the
        token is nobody's (a mistyped link, or already unsubscribed)."""
        found = await self._storage.db.write(lambda conn: email_table.delete_by_token(conn, token))
        return found is not None


def _append(body: dict[str, Any]) -> bool:
    append = body.get("append", False)
    if not isinstance(append, bool):
        raise MatrixError(Errcode.INVALID_PARAM, "'append' must be a boolean")
    return append


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise MatrixError(Errcode.MISSING_PARAM, f"Missing '{key}'")
    if not isinstance(value, str):
        raise MatrixError(Errcode.INVALID_PARAM, f"'{key}' must be a string")
    return value


def _parse(user_id: str, app_id: str, pushkey: str, body: dict[str, Any]) -> Pusher:
    kind = body["kind"]
    if kind not in ("http", "email"):
        raise MatrixError(Errcode.INVALID_PARAM, "A pusher's kind is 'http' or 'email'")
    if len(pushkey.encode("utf-8")) > MAX_PUSHKEY_BYTES:
        raise MatrixError(Errcode.INVALID_PARAM, f"'pushkey' is over {MAX_PUSHKEY_BYTES} bytes")
    if len(app_id) > MAX_APP_ID_CHARS:
        raise MatrixError(Errcode.INVALID_PARAM, f"'app_id' is over {MAX_APP_ID_CHARS} characters")
    for key in _REQUIRED:
        # NOTSPEC: an email pusher may leave out `data` (it needs nothing there), as Synapse
        # allows; pusher.yaml makes it required for every kind.
        if key not in body and not (kind == "email" and key == "data"):
            raise MatrixError(Errcode.MISSING_PARAM, f"Missing '{key}'")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise MatrixError(Errcode.INVALID_PARAM, "'data' must be an object")
    if kind == "http":
        _check_url(data.get("url"))
    profile_tag = body.get("profile_tag")
    texts = [body[k] for k in ("app_display_name", "device_display_name", "lang")]
    if not all(isinstance(t, str) for t in texts) or not isinstance(profile_tag, (str, type(None))):
        raise MatrixError(Errcode.INVALID_PARAM, "Pusher names, lang and profile_tag are strings")
    return Pusher(
        user_id, app_id, pushkey, kind, texts[0], texts[1], profile_tag, texts[2], dict(data),
        int(time.time() * 1000),
    )


def _check_url(url: Any) -> None:
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
