"""content_reports (migrations/0016_push_reports.sql): what users reported to the server admin
(report_content.md: "Servers are free to handle the reported content however they desire")."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

__all__ = [
    "ContentReport",
    "EventReportDetails",
    "EventReportQuery",
    "delete_event_report",
    "insert_report",
    "select_event_report",
    "select_event_reports",
    "select_reports",
]

_COLUMNS = "id, reporter, room_id, event_id, target_user_id, reason, score, received_ts"


@dataclass(frozen=True, slots=True)
class ContentReport:
    id: int
    reporter: str
    room_id: str | None
    event_id: str | None
    target_user_id: str | None
    reason: str | None
    score: int | None
    received_ts: int


@dataclass(frozen=True, slots=True)
class EventReportDetails:
    report: ContentReport
    event_json: str | None  # the reported event's PDU (None: no longer held, e.g. purged)
    room_name: str | None
    canonical_alias: str | None


async def insert_report(
    conn: aiosqlite.Connection,
    reporter: str,
    *,
    room_id: str | None = None,
    event_id: str | None = None,
    target_user_id: str | None = None,
    reason: str | None,
    score: int | None = None,
    received_ts: int,
) -> int:
    cur = await conn.execute(
        "INSERT INTO content_reports (reporter, room_id, event_id, target_user_id, reason, score,"
        " received_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (reporter, room_id, event_id, target_user_id, reason, score, received_ts),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def select_reports(conn: aiosqlite.Connection, limit: int = 100) -> list[ContentReport]:
    """The newest reports first."""
    sql = f"SELECT {_COLUMNS} FROM content_reports ORDER BY id DESC LIMIT ?"
    async with conn.execute(sql, (limit,)) as cur:
        return [ContentReport(*row) for row in await cur.fetchall()]


def _room_state(event_type: str, path: str) -> str:
    """A value from the report's room's current (event_type, "") state event."""
    return (
        f"(SELECT json_extract(e.json, '{path}') FROM current_state AS cs"
        " JOIN events AS e ON e.event_id = cs.event_id"
        f" WHERE cs.room_id = r.room_id AND cs.type = '{event_type}' AND cs.state_key = '')"
    )


def _select_event_reports(with_json: bool) -> str:
    """Reports of events (not of whole rooms or users) with their rooms' name and canonical
    alias now, and the reported event's JSON if `with_json`."""
    return (
        f"SELECT {', '.join('r.' + c.strip() for c in _COLUMNS.split(','))},"
        f" {'(SELECT json FROM events WHERE event_id = r.event_id)' if with_json else 'NULL'},"
        f" {_room_state('m.room.name', '$.content.name')},"
        f" {_room_state('m.room.canonical_alias', '$.content.alias')}"
        " FROM content_reports AS r WHERE r.event_id IS NOT NULL"
    )


def _details(row: tuple) -> EventReportDetails:  # type: ignore[type-arg]
    return EventReportDetails(ContentReport(*row[:8]), row[8], row[9], row[10])


@dataclass(frozen=True, slots=True)
class EventReportQuery:
    """The admin list's filters (Synapse's): reporter and room id containing a string, the
    reported event's sender exactly; newest first unless not `backwards`."""

    backwards: bool = True
    reporter: str | None = None
    room: str | None = None
    sender: str | None = None


async def select_event_reports(
    conn: aiosqlite.Connection, *, offset: int, limit: int,
    query: EventReportQuery,
) -> tuple[list[EventReportDetails], int]:
    """A page of reports of events (without the events' JSON), and how many match."""
    where, args = "", []
    for clause, value in (
        (" AND instr(r.reporter, ?) > 0", query.reporter),
        (" AND instr(r.room_id, ?) > 0", query.room),
        (" AND r.target_user_id = ?", query.sender),
    ):
        if value:
            where, args = where + clause, [*args, value]
    order = "DESC" if query.backwards else "ASC"
    sql = f"{_select_event_reports(False)}{where} ORDER BY r.id {order} LIMIT ? OFFSET ?"
    async with conn.execute(sql, (*args, limit, offset)) as cur:
        page = [_details(tuple(row)) for row in await cur.fetchall()]
    count = f"SELECT COUNT(*) FROM content_reports AS r WHERE r.event_id IS NOT NULL{where}"
    async with conn.execute(count, args) as cur:
        row = await cur.fetchone()
    return page, int(row[0]) if row is not None else 0


async def select_event_report(
    conn: aiosqlite.Connection, report_id: int
) -> EventReportDetails | None:
    """A report of an event, with the event and its room's name and canonical alias now."""
    async with conn.execute(f"{_select_event_reports(True)} AND r.id = ?", (report_id,)) as cur:
        row = await cur.fetchone()
    return _details(tuple(row)) if row is not None else None


async def delete_event_report(conn: aiosqlite.Connection, report_id: int) -> bool:
    """False when there is no such report of an event."""
    cur = await conn.execute(
        "DELETE FROM content_reports WHERE id = ? AND event_id IS NOT NULL", (report_id,)
    )
    return cur.rowcount > 0
