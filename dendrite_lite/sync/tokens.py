"""Sync and pagination tokens.

A sync token (`next_batch`, `since`) is one opaque string holding a position in every stream:

    s<room>_<account_data>_<receipts>_<typing>_<presence>_<to_device>_<device_lists>_<thread_subscriptions>

Positions are decimal integers (room positions may be negative after backfill). Streams added
later are appended; a token with fewer fields reads the missing ones as 0, so tokens handed out
by an older version stay valid. Every persistent stream counts up in the database, so a token
stays valid across restarts. Typing lives only in memory and restarts from 0: a token from before
a restart may hold a typing position beyond the current one, which `clamp` turns into "from the
beginning" (the current typing state is then sent again, which is what a client needs).

A pagination token (/messages `start`/`end`, `prev_batch`) is a point in the room-event stream:
`t<pos>` is the gap just after the event with stream_ordering <pos>. /messages also accepts a
sync token as `from` (the spec allows `next_batch` there) and reads its room position, and so a
sliding sync `pos` (`<connection position>/<sync token>`, which MSC4186 lets /messages and
/relations take).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from dendrite_lite.errors import Errcode, MatrixError

__all__ = [
    "SyncToken",
    "encode_sliding_pos",
    "pagination_token",
    "parse_pagination_token",
    "parse_sliding_pos",
    "parse_sync_token",
]

_INT = re.compile(r"-?[0-9]{1,19}")
_STREAMS = (
    "room", "account_data", "receipts", "typing", "presence", "to_device", "device_lists",
    # MSC4306 thread subscriptions: only sliding sync's MSC4308 extension reads it (/sync
    # leaves it at 0).
    "thread_subscriptions",
)


@dataclass(frozen=True, slots=True)
class SyncToken:
    room: int = 0
    account_data: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0
    to_device: int = 0
    device_lists: int = 0
    thread_subscriptions: int = 0

    def encode(self) -> str:
        return "s" + "_".join(str(getattr(self, name)) for name in _STREAMS)

    def __str__(self) -> str:
        return self.encode()

    def clamp(self, current: SyncToken) -> SyncToken:
        """This token with every position beyond `current` reset to 0 (a stream that restarted
        since the token was issued, like typing, is read from its beginning)."""
        changes = {
            name: 0 for name in _STREAMS if getattr(self, name) > getattr(current, name)
        }
        # The room stream never restarts; a room position ahead of ours (a restored backup)
        # is read as "now" rather than resending the whole history.
        if "room" in changes:
            changes["room"] = current.room
        return dataclasses.replace(self, **changes) if changes else self

    def advanced_by(self, other: SyncToken) -> bool:
        """True if `other` is ahead of this token in any stream."""
        return any(getattr(other, n) > getattr(self, n) for n in _STREAMS)


def _invalid(what: str, token: str) -> MatrixError:
    return MatrixError(Errcode.INVALID_PARAM, f"Invalid {what} token: {token[:64]!r}")


def parse_sync_token(token: str) -> SyncToken:
    """Raises 400 M_INVALID_PARAM for anything that is not a sync token."""
    if not token.startswith("s"):
        raise _invalid("sync", token)
    parts = token[1:].split("_")
    if len(parts) > 32 or not all(_INT.fullmatch(p) for p in parts):
        raise _invalid("sync", token)
    # Fields from a newer version than ours (more streams) are ignored.
    values = dict(zip(_STREAMS, (int(p) for p in parts), strict=False))
    return SyncToken(**values)


# Sliding sync's `pos` (sync/sliding/connection.py): `<connection position>/<sync token>`.
_SLIDING_POS = re.compile(r"([0-9]{1,18})/(s[-0-9_]{1,400})")


def encode_sliding_pos(position: int, token: SyncToken) -> str:
    return f"{position}/{token.encode()}"


def parse_sliding_pos(pos: str) -> tuple[int, SyncToken] | None:
    """The connection position and sync token of a sliding sync `pos`; None if it is not one."""
    match = _SLIDING_POS.fullmatch(pos)
    if match is None:
        return None
    try:
        return int(match[1]), parse_sync_token(match[2])
    except MatrixError:
        return None


def pagination_token(position: int) -> str:
    return f"t{position}"


def parse_pagination_token(token: str) -> int:
    """The room-stream position of a /messages token or of a sync token."""
    if token.startswith("t") and _INT.fullmatch(token[1:]):
        return int(token[1:])
    if token.startswith("s"):
        return parse_sync_token(token).room
    position, slash, sync_token = token.partition("/")
    if slash and position.isdigit() and sync_token.startswith("s"):
        return parse_sync_token(sync_token).room
    raise _invalid("pagination", token)
