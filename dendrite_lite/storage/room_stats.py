"""What the admin room list and room details show of each room (Synapse's admin API
rooms.md): names and settings read from the current state, member counts, and the admin list's
search, order and paging, all in SQL so a server with many rooms sorts without loading them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiosqlite

__all__ = [
    "ORDERS",
    "RoomQuery",
    "RoomStats",
    "count_room_stats",
    "select_all_local_forgot",
    "select_joined_local_devices",
    "select_one_room_stats",
    "select_room_stats",
]


# Redaction keeps join_rule, history_visibility and the create event's content (every room
# version); the other values a redacted event had are gone.
_KEPT_BY_REDACTION = ("m.room.join_rules", "m.room.history_visibility", "m.room.create")
_REDACTED = (
    "EXISTS (SELECT 1 FROM redactions rd JOIN events re ON re.event_id = rd.event_id"
    " WHERE rd.redacts = cs.event_id AND re.rejected_reason IS NULL)"
)


def _state(event_type: str, path: str) -> str:
    """A value of the room's current (type, "") state event, read without parsing the event."""
    value = f"json_extract(e.json, '{path}')"
    if event_type not in _KEPT_BY_REDACTION:
        value = f"CASE WHEN {_REDACTED} THEN NULL ELSE {value} END"
    return (
        f"(SELECT {value} FROM current_state cs JOIN events e ON e.event_id = cs.event_id"
        f" WHERE cs.room_id = r.room_id AND cs.type = '{event_type}' AND cs.state_key = '')"
    )


_JOINED = (
    "SELECT COUNT(*) FROM current_state cs WHERE cs.room_id = r.room_id"
    " AND cs.type = 'm.room.member' AND cs.membership = 'join'"
)
_FEDERATE = _state("m.room.create", '$.content."m.federate"')
# `:suffix` is ":" + our server name.
_STATS = (
    "WITH stats AS (SELECT r.room_id AS room_id, r.room_version AS version,"
    " r.creator AS creator, r.is_public AS public,"
    f" {_state('m.room.name', '$.content.name')} AS name,"
    f" {_state('m.room.canonical_alias', '$.content.alias')} AS canonical_alias,"
    f" {_state('m.room.topic', '$.content.topic')} AS topic,"
    f" {_state('m.room.avatar', '$.content.url')} AS avatar,"
    f" {_state('m.room.encryption', '$.content.algorithm')} AS encryption,"
    f" {_state('m.room.join_rules', '$.content.join_rule')} AS join_rules,"
    f" {_state('m.room.guest_access', '$.content.guest_access')} AS guest_access,"
    f" {_state('m.room.history_visibility', '$.content.history_visibility')}"
    " AS history_visibility,"
    f" COALESCE({_FEDERATE}, 1) AS federatable,"
    f" {_state('m.room.create', '$.content.type')} AS room_type,"
    f" ({_JOINED}) AS joined_members,"
    f" ({_JOINED} AND substr(cs.state_key, -length(:suffix)) = :suffix) AS joined_local_members,"
    " (SELECT COUNT(*) FROM current_state cs WHERE cs.room_id = r.room_id) AS state_events"
    " FROM rooms r)"
)
_COLUMNS = (
    "room_id, name, canonical_alias, topic, avatar, joined_members, joined_local_members,"
    " version, creator, encryption, federatable, public, join_rules, guest_access,"
    " history_visibility, state_events, room_type"
)

# order_by -> (SQL expression, whether its natural order is ascending), as rooms.md describes:
# names alphabetically, counts and versions largest first.
ORDERS: Mapping[str, tuple[str, bool]] = {
    "name": ("name COLLATE NOCASE", True),
    "canonical_alias": ("canonical_alias COLLATE NOCASE", True),
    "joined_members": ("joined_members", False),
    "joined_local_members": ("joined_local_members", False),
    "version": ("CAST(version AS INTEGER), version", False),
    "creator": ("creator", True),
    "encryption": ("encryption", True),
    "federatable": ("federatable", True),
    "public": ("public", True),
    "join_rules": ("join_rules", True),
    "guest_access": ("guest_access", True),
    "history_visibility": ("history_visibility", True),
    "state_events": ("state_events", False),
}


@dataclass(frozen=True, slots=True)
class RoomStats:
    room_id: str
    name: str | None
    canonical_alias: str | None
    topic: str | None
    avatar: str | None
    joined_members: int
    joined_local_members: int
    version: str
    creator: str
    encryption: str | None
    federatable: bool
    public: bool
    join_rules: str | None
    guest_access: str | None
    history_visibility: str | None
    state_events: int
    room_type: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RoomStats:
        def text(key: str) -> str | None:
            value = row[key]
            return (
                value if isinstance(value, str) else None
            )  # a malformed event shows nothing

        return cls(
            room_id=row["room_id"],
            name=text("name"),
            canonical_alias=text("canonical_alias"),
            topic=text("topic"),
            avatar=text("avatar"),
            joined_members=int(row["joined_members"]),
            joined_local_members=int(row["joined_local_members"]),
            version=row["version"],
            creator=row["creator"],
            encryption=text("encryption"),
            federatable=row["federatable"] not in (0, "false"),
            public=bool(row["public"]),
            join_rules=text("join_rules"),
            guest_access=text("guest_access"),
            history_visibility=text("history_visibility"),
            state_events=int(row["state_events"]),
            room_type=text("room_type"),
        )


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """The admin room list's filters and order (validated by the service)."""

    order_by: str = "name"
    backwards: bool = False
    search_term: str | None = None
    public_rooms: bool | None = None
    empty_rooms: bool | None = None


def _where(query: RoomQuery) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.search_term:
        # The name and the canonical alias's localpart contain the term (any case); the room
        # id is matched whole.
        escaped = (
            query.search_term.replace("\\", "\\\\")
            .replace("%", "\\%")
            .replace("_", "\\_")
        )
        params["pattern"] = f"%{escaped}%"
        params["term"] = query.search_term
        clauses.append(
            "(name LIKE :pattern ESCAPE '\\'"
            " OR substr(canonical_alias, 2, instr(canonical_alias, ':') - 2) LIKE :pattern"
            " ESCAPE '\\' OR room_id = :term)"
        )
    if query.public_rooms is not None:
        clauses.append("public = :public")
        params["public"] = int(query.public_rooms)
    if query.empty_rooms is not None:
        clauses.append(
            "joined_members = 0" if query.empty_rooms else "joined_members > 0"
        )
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _order(query: RoomQuery) -> str:
    expression, ascending = ORDERS[query.order_by]
    if query.backwards:
        ascending = not ascending
    direction = "ASC" if ascending else "DESC"
    # Rooms without the value come last (first when reversed); ties go by room id, so pages
    # never overlap.
    first = expression.split(",")[0].split(" COLLATE")[0]
    keys = [f"({first} IS NULL) {direction}"]
    keys += [f"{part.strip()} {direction}" for part in expression.split(",")]
    keys.append(f"room_id {direction}")
    return " ORDER BY " + ", ".join(keys)


async def select_room_stats(
    conn: aiosqlite.Connection,
    server_name: str,
    query: RoomQuery,
    *,
    offset: int,
    limit: int,
) -> list[RoomStats]:
    # The page's room ids first, sorting on the order column alone; then every column of just
    # those rooms. In one query SQLite computed every column of every room before sorting
    # (measured through HTTP, 300 rooms, a page of 100: 54-88 ms that way, 16-19 ms this way).
    where, params = _where(query)
    sql = f"{_STATS} SELECT room_id FROM stats{where}{_order(query)} LIMIT :limit OFFSET :offset"
    params.update(suffix=":" + server_name, limit=limit, offset=offset)
    async with conn.execute(sql, params) as cur:
        page = [row[0] for row in await cur.fetchall()]
    sql = f"{_STATS} SELECT {_COLUMNS} FROM stats WHERE room_id IN (SELECT value FROM json_each(:ids))"
    async with conn.execute(
        sql, {"suffix": ":" + server_name, "ids": json.dumps(page)}
    ) as cur:
        found = {
            row["room_id"]: RoomStats.from_row(row) for row in await cur.fetchall()
        }
    return [found[room_id] for room_id in page if room_id in found]


async def count_room_stats(
    conn: aiosqlite.Connection, server_name: str, query: RoomQuery
) -> int:
    where, params = _where(query)
    params["suffix"] = ":" + server_name
    async with conn.execute(
        f"{_STATS} SELECT COUNT(*) FROM stats{where}", params
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def select_one_room_stats(
    conn: aiosqlite.Connection, server_name: str, room_id: str
) -> RoomStats | None:
    sql = f"{_STATS} SELECT {_COLUMNS} FROM stats WHERE room_id = :room_id"
    async with conn.execute(
        sql, {"suffix": ":" + server_name, "room_id": room_id}
    ) as cur:
        row = await cur.fetchone()
    return RoomStats.from_row(row) if row is not None else None


SELECT_JOINED_LOCAL_DEVICES = (
    "SELECT COUNT(*) FROM devices d JOIN current_state cs ON cs.state_key = d.user_id"
    " WHERE cs.room_id = ? AND cs.type = 'm.room.member' AND cs.membership = 'join'"
)


async def select_joined_local_devices(conn: aiosqlite.Connection, room_id: str) -> int:
    """Devices of the room's joined users that are ours (only our users have device rows)."""
    async with conn.execute(SELECT_JOINED_LOCAL_DEVICES, (room_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


# A local member whose current membership is not the event they forgot.
SELECT_LOCAL_NOT_FORGOTTEN = (
    "SELECT 1 FROM current_state cs WHERE cs.room_id = ? AND cs.type = 'm.room.member'"
    " AND substr(cs.state_key, -length(?)) = ?"
    " AND NOT EXISTS (SELECT 1 FROM forgotten_rooms f WHERE f.user_id = cs.state_key"
    "  AND f.room_id = cs.room_id AND f.member_event_id = cs.event_id) LIMIT 1"
)


async def select_all_local_forgot(
    conn: aiosqlite.Connection, server_name: str, room_id: str
) -> bool:
    """Whether every local user with a membership in the room forgot it (true with none)."""
    suffix = ":" + server_name
    async with conn.execute(
        SELECT_LOCAL_NOT_FORGOTTEN, (room_id, suffix, suffix)
    ) as cur:
        return await cur.fetchone() is None
