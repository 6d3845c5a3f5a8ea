"""content_reports (migrations/0016_push_reports.sql): what users reported to the server admin
(report_content.md: "Servers are free to handle the reported content however they desire")."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

__all__ = ["ContentReport", "insert_report", "select_reports", "select_event_reports"]

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


async def select_event_reports(
    conn: aiosqlite.Connection, *, offset: int, limit: int
) -> tuple[list[ContentReport], int]:
    """Reports of events (not of whole rooms or users), newest first, and how many there are."""
    sql = (
        f"SELECT {_COLUMNS} FROM content_reports WHERE event_id IS NOT NULL"
        " ORDER BY id DESC LIMIT ? OFFSET ?"
    )
    async with conn.execute(sql, (limit, offset)) as cur:
        page = [ContentReport(*row) for row in await cur.fetchall()]
    async with conn.execute(
        "SELECT COUNT(*) FROM content_reports WHERE event_id IS NOT NULL"
    ) as cur:
        row = await cur.fetchone()
    return page, int(row[0]) if row is not None else 0
