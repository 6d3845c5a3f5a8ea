"""OpenID (modules/openid.md): a user proves their identity to a third party (an integration
manager, a widget) with a short-lived token that the third party checks at the user's server
(GET /_matrix/federation/v1/openid/userinfo). The token is good for nothing else: it is not an
access token of the client API."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import openid as table

__all__ = ["OpenIdService", "TOKEN_LIFETIME_S"]

TOKEN_LIFETIME_S = 3600


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class OpenIdService:
    def __init__(
        self, storage: Storage, server_name: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._server_name = server_name
        self._clock = clock

    async def request_token(self, requester: str, user_id: str) -> dict[str, Any]:
        """POST /_matrix/client/v3/user/{userId}/openid/request_token body."""
        if requester != user_id:
            raise MatrixError(Errcode.FORBIDDEN, "Cannot request OpenID tokens for other users")
        token = secrets.token_urlsafe(32)
        now = int(self._clock() * 1000)
        expires = now + TOKEN_LIFETIME_S * 1000
        await self._storage.db.write(
            lambda conn: table.insert_openid_token(conn, _hash(token), user_id, expires, now)
        )
        return {
            "access_token": token, "token_type": "Bearer",
            "matrix_server_name": self._server_name, "expires_in": TOKEN_LIFETIME_S,
        }

    async def userinfo(self, token: str | None) -> dict[str, Any]:
        """GET /_matrix/federation/v1/openid/userinfo body."""
        now = int(self._clock() * 1000)
        user_id = None
        if token:
            user_id = await self._storage.db.read(
                lambda conn: table.select_openid_user(conn, _hash(token), now)
            )
        if user_id is None:
            raise MatrixError(Errcode.UNKNOWN_TOKEN, "Access token unknown or expired")
        return {"sub": user_id}
