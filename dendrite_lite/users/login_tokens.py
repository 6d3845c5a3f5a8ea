"""Login tokens (login_token.yaml, POST /login with m.login.token): a signed-in device makes a
single-use, short-lived token, or single sign-on ends with one (api/client/sso.py); a new device
signs in with it as that user.

Kept in memory: a token lives two minutes, so a restart losing them only means the new device
asks for another. Only SHA-256 hashes are held, and each token works once (the spec's "MUST
only be valid for a single login")."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.users.accounts import get_account
from dendrite_lite.users.sessions import Session, login_options, open_session

__all__ = ["LoginTokens", "TOKEN_LIFETIME_MS", "TOKEN_LOGIN"]

TOKEN_LOGIN = "m.login.token"
TOKEN_LIFETIME_MS = 120_000
MAX_TOKENS = 10_000  # outstanding at once; the oldest go first


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class LoginTokens:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}  # hash -> (user_id, expiry)

    def issue(self, user_id: str) -> dict[str, Any]:
        """POST /_matrix/client/v1/login/get_token body (after UIA); its login_token is also
        the loginToken a single sign-on hands to the client."""
        self._expire()
        token = secrets.token_urlsafe(32)
        self._tokens[_hash(token)] = (user_id, self._clock() + TOKEN_LIFETIME_MS / 1000)
        while len(self._tokens) > MAX_TOKENS:
            del self._tokens[next(iter(self._tokens))]
        return {"login_token": token, "expires_in_ms": TOKEN_LIFETIME_MS}

    def consume(self, token: object) -> str | None:
        """The user of a valid token, which is used up; None otherwise."""
        if not isinstance(token, str):
            return None
        found = self._tokens.pop(_hash(token), None)
        if found is None or found[1] <= self._clock():
            return None
        return found[0]

    async def login(self, storage: Storage, body: dict[str, Any], *, ip: str | None) -> Session:
        """POST /login with type m.login.token."""
        options = login_options(body)
        if not isinstance(body.get("token"), str):
            raise MatrixError(Errcode.MISSING_PARAM, "Missing 'token'")
        user_id = self.consume(body["token"])
        if user_id is None:
            raise MatrixError(Errcode.FORBIDDEN, "Invalid or expired login token")
        account = await get_account(storage, user_id)
        if account is None or account.deactivated:
            raise MatrixError(Errcode.USER_DEACTIVATED, "This account has been deactivated")
        return await open_session(storage, user_id, ip=ip, **options)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, (_, expiry) in self._tokens.items() if expiry <= now]:
            del self._tokens[key]
