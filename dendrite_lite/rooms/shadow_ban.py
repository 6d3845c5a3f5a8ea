"""Shadow-banned users (set by a server admin: /_synapse/admin/v1/users/{userId}/shadow_ban).

As Synapse does, what a shadow-banned user sends into rooms is answered as if it had worked but
is never created: room messages, state (other than their own membership), redactions and
invites answer with an event id or {} and nobody else sees a thing; /createRoom makes the room
but sends none of its invites. The point is that the user does not notice soon, so:

- the event id looks like a real one of room versions 4+ ("$" and 43 url-safe base64
  characters of a SHA-256), and
- it is the same for a retried transaction (HMAC of user, device, room and txn id under a
  secret of this process), as the real send answers a retry with the first event id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import replace

from dendrite_lite.rooms.creation import CreateRoomRequest

__all__ = ["pretend_event_id", "without_invites"]

# Per process: pretended ids need only be stable while a client retries.
_SECRET = secrets.token_bytes(32)


def pretend_event_id(
    user_id: str, device_id: str, room_id: str, txn_id: str | None
) -> str:
    """The event id a shadow-banned user is answered with; a fresh one without a txn id."""
    key = "\0".join((user_id, device_id, room_id, txn_id or secrets.token_hex(16)))
    digest = hmac.new(_SECRET, key.encode("utf-8"), hashlib.sha256).digest()
    return "$" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def without_invites(request: CreateRoomRequest) -> CreateRoomRequest:
    """/createRoom of a shadow-banned user: the room, but none of its invites."""
    return replace(request, invite=(), invite_3pid=())
