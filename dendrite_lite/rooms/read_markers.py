"""The fully read marker (read_markers.md): m.fully_read room account data, set only here.

POST /read_markers may also carry m.read / m.read.private, handled exactly like
POST /receipt/{type}/{eventId} (read_markers.md §Server behaviour).
"""

from __future__ import annotations

from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.receipts import FULLY_READ, READ, READ_PRIVATE, ReceiptsService
from dendrite_lite.users.account_data import AccountDataService

__all__ = ["ReadMarkersService"]


def _event_id(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("$"):
        raise MatrixError(Errcode.INVALID_PARAM, f"{key} must be an event ID")
    return value


class ReadMarkersService:
    def __init__(self, receipts: ReceiptsService, account_data: AccountDataService) -> None:
        self._receipts = receipts
        self._account_data = account_data

    async def set_markers(self, user_id: str, room_id: str, body: dict[str, Any]) -> None:
        """POST /_matrix/client/v3/rooms/{roomId}/read_markers

        Every given event ID is checked before anything is written, so a bad one changes
        nothing. An empty body is accepted and does nothing (m.fully_read is optional since
        v1.4), except that the caller must still be joined.
        """
        fully_read = _event_id(body, FULLY_READ)
        receipts = {t: _event_id(body, t) for t in (READ, READ_PRIVATE)}
        for event_id in (fully_read, *receipts.values()):
            if event_id is not None:
                await self._receipts.check_target(user_id, room_id, event_id)
        if fully_read is None and all(v is None for v in receipts.values()):
            await self._receipts.check_target_room(user_id, room_id)
        if fully_read is not None:
            await self.set_fully_read(user_id, room_id, fully_read)
        for receipt_type, event_id in receipts.items():
            if event_id is not None:
                await self._receipts.send_receipt(user_id, room_id, receipt_type, event_id)

    async def set_fully_read(self, user_id: str, room_id: str, event_id: str) -> bool:
        """Move the user's m.fully_read marker to event_id (also POST /receipt/m.fully_read/...).

        Like receipts the marker only moves forward; returns False when it was already at or
        past the event.
        """
        stored, _ = await self._receipts.check_target(user_id, room_id, event_id)
        current = await self._receipts.fully_read_position(user_id, room_id)
        if current is not None and current.stream_ordering >= stored.stream_ordering:
            return False
        # Not re-checked inside the write: two racing updates can only both move it forward.
        return await self._account_data.update(
            user_id, room_id, FULLY_READ, lambda _old: {"event_id": event_id}
        )
