"""TURN credentials for GET /voip/turnServer (voip.yaml).

With a shared secret, this is coturn's "TURN REST API" scheme (draft-uberti-behave-turn-rest,
coturn's `use-auth-secret`): the username is `<expiry unix time>:<user id>` and the password
is base64(HMAC-SHA1(secret, username)), so the TURN server checks them with no call to us and
they stop working at the expiry. Without one, every user gets the configured static pair.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from dendrite_lite.config import TurnConfig

__all__ = ["rest_api_password", "turn_credentials"]


def rest_api_password(shared_secret: str, username: str) -> str:
    digest = hmac.new(shared_secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_credentials(turn: TurnConfig, user_id: str, now_s: float) -> dict[str, Any] | None:
    """The /voip/turnServer body for `user_id`, or None when no TURN server is configured."""
    if not turn.uris:
        return None
    if turn.shared_secret:
        username = f"{int(now_s) + turn.user_lifetime_s}:{user_id}"
        password = rest_api_password(turn.shared_secret, username)
    else:
        username, password = turn.username, turn.password
    return {
        "username": username,
        "password": password,
        "uris": list(turn.uris),
        "ttl": turn.user_lifetime_s,
    }
