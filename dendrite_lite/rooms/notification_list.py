"""GET /notifications (push.md §Listing Notifications): the events the user's push rules said
"notify" for, newest first, from the event_push_actions rows the unread counts come from.

`read` follows the same receipts as the unread counts (an unthreaded receipt or one of the
event's thread at or after the event); `next_token` is the stream position of the last
notification returned, so the next page starts below it.
"""

from __future__ import annotations

import time
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.aggregations import Viewer, serializer_with_bundles
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import notifications as table

__all__ = ["NotificationList", "DEFAULT_LIMIT", "MAX_LIMIT"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_NO_TOKEN = 1 << 62


class NotificationList:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def notifications(
        self,
        user_id: str,
        device_id: str | None,
        *,
        from_token: str | None,
        limit: int | None,
        only: str | None,
    ) -> dict[str, Any]:
        """GET /_matrix/client/v3/notifications body."""
        before = _parse_token(from_token)
        count = min(max(limit if limit is not None else DEFAULT_LIMIT, 0), MAX_LIMIT)
        now_ms = int(time.time() * 1000)

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            rooms = await history_table.select_current_memberships(conn, user_id)
            rows = await table.select_notifications(
                conn, user_id, sorted(rooms), before=before, limit=count,
                only_highlight=only == "highlight",
            )
            stored = await events_table.select_events(conn, [r.event_id for r in rows])
            found = [stored[r.event_id] for r in rows if r.event_id in stored]
            ser = await serializer_with_bundles(conn, Viewer(user_id, device_id, now_ms), found)
            out = [
                {
                    "actions": r.actions,
                    "event": ser.format(stored[r.event_id]),
                    "read": r.read,
                    "room_id": r.room_id,
                    "ts": r.origin_server_ts,
                }
                for r in rows if r.event_id in stored
            ]
            body: dict[str, Any] = {"notifications": out}
            if count and len(rows) == count:
                body["next_token"] = str(rows[-1].stream_ordering)
            return body

        return await self._storage.db.read(read)


def _parse_token(token: str | None) -> int:
    if token is None or token == "":
        return _NO_TOKEN
    if not token.isdigit():
        raise MatrixError(Errcode.INVALID_PARAM, "'from' is not a token this server issued")
    return int(token)
