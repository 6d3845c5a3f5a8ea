"""Server-side search: the event_search FTS5 table (migration 0015).

One row per timeline event with searchable text (modules/search.md: content.body of
m.room.message, content.name of m.room.name, content.topic of m.room.topic plus the text/plain
body of its m.topic), rowid = the event's stream position. Written by storage.events in the
event's own transaction; a redaction deletes its target's row, so redacted text is never found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.events.event import Event

__all__ = [
    "SEARCH_KEYS",
    "SearchHit",
    "SearchQuery",
    "count_matches",
    "delete_search_row",
    "insert_search_row",
    "searchable",
    "select_matches",
]

# The spec's keys, by the event type they come from.
SEARCH_KEYS = {
    "m.room.message": "content.body",
    "m.room.name": "content.name",
    "m.room.topic": "content.topic",
}
# Marks around matched tokens in highlight() output; control characters never typed in a body.
HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE = "\x02", "\x03"

INSERT_ROW = "INSERT INTO event_search (rowid, value, key, room_id) VALUES (?, ?, ?, ?)"
DELETE_ROW = (
    "DELETE FROM event_search WHERE rowid = (SELECT stream_ordering FROM events WHERE event_id = ?)"
)


def _plain_topic(content: Mapping[str, Any]) -> str | None:
    """The text/plain body of m.topic (mimetype absent means text/plain)."""
    topic = content.get("m.topic")
    texts = topic.get("m.text") if isinstance(topic, Mapping) else None
    if not isinstance(texts, list):
        return None
    for t in texts:
        if (
            isinstance(t, Mapping)
            and isinstance(t.get("body"), str)
            and t.get("mimetype", "text/plain") == "text/plain"
        ):
            return str(t["body"])
    return None


def searchable(event: Event) -> tuple[str, str] | None:
    """(key, text) to index for `event`, None when it has nothing searchable."""
    key = SEARCH_KEYS.get(event.type)
    if key is None or (event.type != "m.room.message" and event.state_key != ""):
        return None
    value = event.content.get(key.removeprefix("content."))
    text = value if isinstance(value, str) else ""
    if event.type == "m.room.topic":
        plain = _plain_topic(event.content)
        if plain is not None and plain != text:
            text = f"{text} {plain}"
    text = text.strip()
    return (key, text) if text else None


async def insert_search_row(conn: aiosqlite.Connection, event: Event, position: int) -> None:
    found = searchable(event)
    if found is not None:
        await conn.execute(INSERT_ROW, (position, found[1], found[0], event.room_id))


async def delete_search_row(conn: aiosqlite.Connection, event_id: str) -> None:
    await conn.execute(DELETE_ROW, (event_id,))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    match: str  # an FTS5 query expression (rooms.search builds it from the search term)
    room_ids: Sequence[str]
    keys: Sequence[str]
    by_rank: bool
    offset: int = 0  # by_rank: rows of this ordering already returned
    before: int | None = None  # by recency: stream positions below this one


@dataclass(frozen=True, slots=True)
class SearchHit:
    stream_ordering: int
    rank: float  # higher is more relevant
    highlighted: str  # the text with matched tokens between HIGHLIGHT_OPEN/CLOSE


def _where(q: SearchQuery) -> tuple[str, list[object]]:
    rooms = ",".join("?" * len(q.room_ids))
    keys = ",".join("?" * len(q.keys))
    sql = f" WHERE event_search MATCH ? AND room_id IN ({rooms}) AND key IN ({keys})"
    return sql, [q.match, *q.room_ids, *q.keys]


async def select_matches(conn: aiosqlite.Connection, q: SearchQuery, limit: int) -> list[SearchHit]:
    """Matches in the rooms, best first (by_rank: bm25, ties newest first) or newest first."""
    if not q.room_ids or not q.keys:
        return []
    where, params = _where(q)
    sql = (
        "SELECT rowid, bm25(event_search),"
        f" highlight(event_search, 0, '{HIGHLIGHT_OPEN}', '{HIGHLIGHT_CLOSE}')"
        " FROM event_search" + where
    )
    if q.by_rank:
        # bm25() is lower for better matches.
        sql += " ORDER BY bm25(event_search), rowid DESC LIMIT ? OFFSET ?"
        params.extend([limit, q.offset])
    else:
        if q.before is not None:
            sql += " AND rowid < ?"
            params.append(q.before)
        sql += " ORDER BY rowid DESC LIMIT ?"
        params.append(limit)
    async with conn.execute(sql, params) as cur:
        return [SearchHit(int(r[0]), -float(r[1]), str(r[2])) for r in await cur.fetchall()]


async def count_matches(conn: aiosqlite.Connection, q: SearchQuery) -> int:
    """All matches in the rooms, before history visibility (the spec's count is approximate)."""
    if not q.room_ids or not q.keys:
        return 0
    where, params = _where(q)
    async with conn.execute("SELECT COUNT(*) FROM event_search" + where, params) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0

