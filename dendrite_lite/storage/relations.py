"""Event relationships: the event_relations table (migration 0015).

A row per timeline event that relates to another with a rel_type (client-server-api §Forming
relationships between events), written by storage.events in the event's own transaction and
deleted when the child is redacted (a redacted child no longer relates: redaction strips
m.relates_to). Reads serve /relations, bundled aggregations and /threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.events.event import Event

__all__ = [
    "RECURSION_DEPTH",
    "Relation",
    "RelationQuery",
    "ThreadRoot",
    "delete_relation",
    "insert_relation",
    "relation_of",
    "select_children",
    "select_relations_to",
    "select_thread_roots",
]

# How far /relations?recurse=true follows relations of relations (the spec: "at least 3").
RECURSION_DEPTH = 3

INSERT_RELATION = (
    "INSERT OR IGNORE INTO event_relations"
    " (event_id, relates_to, rel_type, room_id, type, sender, stream_ordering)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DELETE_RELATION = "DELETE FROM event_relations WHERE event_id = ?"


@dataclass(frozen=True, slots=True)
class Relation:
    event_id: str
    relates_to: str
    rel_type: str
    room_id: str
    type: str
    sender: str
    stream_ordering: int


@dataclass(frozen=True, slots=True)
class RelationQuery:
    """Children of `parent` for /relations, strictly between two stream positions."""

    parent: str
    room_id: str
    rel_type: str | None = None
    event_type: str | None = None
    before: int | None = None  # stream_ordering < before
    after: int | None = None  # stream_ordering > after
    limit: int = 5
    backwards: bool = True
    recurse: bool = False


@dataclass(frozen=True, slots=True)
class ThreadRoot:
    root_id: str
    latest: int  # stream position of the thread's newest event (its "latest activity")


def relation_of(content: Mapping[str, Any]) -> tuple[str, str] | None:
    """(rel_type, parent event id) of an event's content, None when it has no valid relation."""
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping):
        return None
    rel_type, parent = relates.get("rel_type"), relates.get("event_id")
    if isinstance(rel_type, str) and isinstance(parent, str):
        return rel_type, parent
    return None


async def insert_relation(conn: aiosqlite.Connection, event: Event, position: int) -> None:
    """Record `event`'s relation, if it has one (the caller checked it is a timeline event)."""
    relation = relation_of(event.content)
    if relation is None:
        return
    rel_type, parent = relation
    await conn.execute(
        INSERT_RELATION,
        (event.event_id, parent, rel_type, event.room_id, event.type, event.sender, position),
    )


async def delete_relation(conn: aiosqlite.Connection, event_id: str) -> None:
    await conn.execute(DELETE_RELATION, (event_id,))


def _relation(row: Any) -> Relation:
    return Relation(row[0], row[1], row[2], row[3], row[4], row[5], int(row[6]))


_REL_COLUMNS = "event_id, relates_to, rel_type, room_id, type, sender, stream_ordering"


async def select_children(conn: aiosqlite.Connection, q: RelationQuery) -> list[Relation]:
    """The page of children /relations asks for, newest first when backwards. With recurse,
    children of children too (RECURSION_DEPTH levels), where every step matches the rel_type
    and event type filters: an event reached only through a non-matching one is left out."""
    match = ""
    params: list[object] = []
    if q.rel_type is not None:
        match += " AND r.rel_type = ?"
        params.append(q.rel_type)
    if q.event_type is not None:
        match += " AND r.type = ?"
        params.append(q.event_type)
    depth = RECURSION_DEPTH if q.recurse else 1
    sql = (
        "WITH RECURSIVE tree(event_id, depth) AS ("
        f" SELECT r.event_id, 1 FROM event_relations r WHERE r.relates_to = ? AND r.room_id = ?{match}"
        " UNION"
        " SELECT r.event_id, tree.depth + 1 FROM event_relations r"
        f" JOIN tree ON r.relates_to = tree.event_id WHERE tree.depth < ? AND r.room_id = ?{match})"
        f" SELECT DISTINCT {', '.join('r.' + c for c in _REL_COLUMNS.split(', '))}"
        " FROM tree JOIN event_relations r ON r.event_id = tree.event_id"
    )
    all_params: list[object] = [q.parent, q.room_id, *params, depth, q.room_id, *params]
    bounds: list[str] = []
    if q.before is not None:
        bounds.append("r.stream_ordering < ?")
        all_params.append(q.before)
    if q.after is not None:
        bounds.append("r.stream_ordering > ?")
        all_params.append(q.after)
    if bounds:
        sql += " WHERE " + " AND ".join(bounds)
    sql += f" ORDER BY r.stream_ordering {'DESC' if q.backwards else 'ASC'} LIMIT ?"
    all_params.append(q.limit)
    async with conn.execute(sql, all_params) as cur:
        return [_relation(row) for row in await cur.fetchall()]


async def select_relations_to(
    conn: aiosqlite.Connection, parents: Sequence[str], rel_types: Sequence[str]
) -> list[Relation]:
    """Every direct child of the parents by one of rel_types, oldest first (for aggregations)."""
    if not parents or not rel_types:
        return []
    out: list[Relation] = []
    types = ",".join("?" * len(rel_types))
    for start in range(0, len(parents), 400):
        chunk = list(parents[start : start + 400])
        sql = (
            f"SELECT {_REL_COLUMNS} FROM event_relations"
            f" WHERE relates_to IN ({','.join('?' * len(chunk))}) AND rel_type IN ({types})"
            " ORDER BY stream_ordering"
        )
        async with conn.execute(sql, [*chunk, *rel_types]) as cur:
            out.extend(_relation(row) for row in await cur.fetchall())
    return out


async def select_thread_roots(
    conn: aiosqlite.Connection,
    room_id: str,
    *,
    before: int | None,
    limit: int,
    participant: str | None = None,
) -> list[ThreadRoot]:
    """Thread roots of the room by latest activity, newest first, whose latest activity is
    before `before`; with `participant`, only threads that user started or replied in."""
    sql = (
        "SELECT r.relates_to, MAX(r.stream_ordering) AS latest FROM event_relations r"
        " JOIN events root ON root.event_id = r.relates_to"
        " WHERE r.room_id = ? AND r.rel_type = 'm.thread' AND root.outlier = 0"
        " AND root.room_id = r.room_id"
        " GROUP BY r.relates_to"
    )
    params: list[object] = [room_id]
    having: list[str] = []
    if before is not None:
        having.append("latest < ?")
        params.append(before)
    if participant is not None:
        having.append("(MAX(r.sender = ?) = 1 OR MAX(root.sender) = ?)")
        params.extend([participant, participant])
    if having:
        sql += " HAVING " + " AND ".join(having)
    sql += " ORDER BY latest DESC LIMIT ?"
    params.append(limit)
    async with conn.execute(sql, params) as cur:
        return [ThreadRoot(row[0], int(row[1])) for row in await cur.fetchall()]
