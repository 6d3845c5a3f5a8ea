"""Reporting content (report_content.md): events, rooms and users, kept for the server admin.

Who may report what (report_content.md §Server behaviour):
- an event: only a user currently joined to its room (v1.8), else 404 M_NOT_FOUND, the same
  answer as for an event that does not exist, so a report reveals nothing about other rooms;
- a room: anyone, joined or not (v1.13), as long as this server knows the room;
- a user: anyone (v1.14); a local user who does not exist is 404, another server's user is
  accepted (only their server could say whether they exist).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import reports as table
from dendrite_lite.storage import rooms as rooms_table

__all__ = ["ReportsService"]

log = logging.getLogger(__name__)

# Synapse's event report score range; the field left the spec in v1.8 but clients still send it.
MIN_SCORE, MAX_SCORE = -100, 0


class ReportsService:
    def __init__(self, storage: Storage, server_name: str) -> None:
        self._storage = storage
        self._server_name = server_name

    async def report_event(
        self, reporter: str, room_id: str, event_id: str, body: dict[str, Any]
    ) -> None:
        """POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}"""
        reason, score = _reason(body), _score(body)

        async def write(conn: aiosqlite.Connection) -> None:
            membership = await history_table.select_current_memberships(conn, reporter, [room_id])
            stored = await events_table.select_event(conn, event_id)
            if (
                membership.get(room_id, ("",))[0] != "join"
                or stored is None or stored.event.room_id != room_id or stored.outlier
            ):
                raise MatrixError(Errcode.NOT_FOUND, "Event not found or you are not in its room")
            await table.insert_report(
                conn, reporter, room_id=room_id, event_id=event_id,
                target_user_id=stored.event.sender, reason=reason, score=score,
                received_ts=_now_ms(),
            )

        await self._storage.db.write(write)
        log.info("%s reported event %s in %s", reporter, event_id, room_id)

    async def report_room(self, reporter: str, room_id: str, body: dict[str, Any]) -> None:
        """POST /_matrix/client/v3/rooms/{roomId}/report"""
        reason = _reason(body)

        async def write(conn: aiosqlite.Connection) -> None:
            if await rooms_table.select_room(conn, room_id) is None:
                raise MatrixError(Errcode.NOT_FOUND, "Room not found")
            await table.insert_report(
                conn, reporter, room_id=room_id, reason=reason, received_ts=_now_ms()
            )

        await self._storage.db.write(write)
        log.info("%s reported room %s", reporter, room_id)

    async def report_user(self, reporter: str, user_id: str, body: dict[str, Any]) -> None:
        """POST /_matrix/client/v3/users/{userId}/report"""
        reason = _reason(body)
        if not user_id.startswith("@") or ":" not in user_id:
            raise MatrixError(Errcode.INVALID_PARAM, f"{user_id!r} is not a user ID")
        local = user_id.partition(":")[2] == self._server_name

        async def write(conn: aiosqlite.Connection) -> None:
            if local and await accounts_table.select_account(conn, user_id) is None:
                raise MatrixError(Errcode.NOT_FOUND, "User not found")
            await table.insert_report(
                conn, reporter, target_user_id=user_id, reason=reason, received_ts=_now_ms()
            )

        await self._storage.db.write(write)
        log.info("%s reported user %s", reporter, user_id)

    async def reports(self, limit: int = 100) -> list[table.ContentReport]:
        """The newest reports, for the admin."""
        return await self._storage.db.read(lambda conn: table.select_reports(conn, limit))

    async def event_reports(
        self, offset: int, limit: int, query: table.EventReportQuery | None = None
    ) -> dict[str, Any]:
        """GET /_synapse/admin/v1/event_reports body (Synapse's admin API): newest first unless
        `query` says otherwise, filtered by it, `next_token` the offset of the next page."""
        if offset < 0 or limit < 0:
            raise MatrixError(Errcode.INVALID_PARAM, "from and limit must not be negative")
        page, total = await self._storage.db.read(
            lambda conn: table.select_event_reports(
                conn, offset=offset, limit=limit, query=query or table.EventReportQuery()
            )
        )
        body: dict[str, Any] = {"event_reports": [_event_report_json(r) for r in page], "total": total}
        if offset + len(page) < total:
            body["next_token"] = offset + len(page)
        return body

    async def event_report(self, report_id: int) -> dict[str, Any]:
        """GET /_synapse/admin/v1/event_reports/{reportId} body: the report, the event as
        stored, and its room's name and canonical alias (404 M_NOT_FOUND for no such report)."""
        found = await self._storage.db.read(lambda c: table.select_event_report(c, report_id))
        if found is None:
            raise MatrixError(Errcode.NOT_FOUND, "Event report not found")
        event_json = json.loads(found.event_json) if found.event_json is not None else None
        return _event_report_json(found) | {"event_json": event_json}

    async def dismiss_event_report(self, report_id: int) -> None:
        """DELETE /_synapse/admin/v1/event_reports/{reportId} (404 M_NOT_FOUND for none)."""
        if not await self._storage.db.write(lambda c: table.delete_event_report(c, report_id)):
            raise MatrixError(Errcode.NOT_FOUND, "Event report not found")
        log.info("event report %d dismissed", report_id)


def _event_report_json(found: table.EventReportDetails) -> dict[str, Any]:
    r = found.report
    return {
        "id": r.id, "received_ts": r.received_ts, "room_id": r.room_id, "event_id": r.event_id,
        "user_id": r.reporter, "sender": r.target_user_id, "reason": r.reason, "score": r.score,
        "name": found.room_name, "canonical_alias": found.canonical_alias,
    }


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise MatrixError(Errcode.INVALID_PARAM, "'reason' must be a string")
    return reason


def _score(body: dict[str, Any]) -> int | None:
    score = body.get("score")
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
        raise MatrixError(
            Errcode.INVALID_PARAM, f"'score' must be an integer from {MIN_SCORE} to {MAX_SCORE}"
        )
    return score


def _now_ms() -> int:
    return int(time.time() * 1000)
