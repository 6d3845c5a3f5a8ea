"""What /search adds around its results: event_context (events before and after a result, with
the senders' profiles as they were at the result) and include_state (each room's state).

A user who left a room sees no context past their leave and the room's state as they left it,
the same limits /messages and /context apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import aiosqlite

from dendrite_lite.rooms.aggregations import Viewer, serializer_with_bundles
from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.sync.tokens import pagination_token

__all__ = ["context_of", "room_states"]

MEMBER = "m.room.member"
# room -> (membership, member event id, its stream position) of the searching user
Memberships = Mapping[str, tuple[str, str, int]]


async def context_of(
    conn: aiosqlite.Connection,
    viewer: Viewer,
    result: StoredEvent,
    limits: tuple[int, int],
    include_profile: bool,
    memberships: Memberships,
) -> dict[str, Any]:
    room_id, pos = result.event.room_id, result.stream_ordering
    membership = memberships.get(room_id)
    upper = membership[2] if membership is not None and membership[0] != "join" else None
    before = await events_table.select_room_events(
        conn, room_id, before=pos, limit=limits[0], backwards=True
    ) if limits[0] else []
    after = await events_table.select_room_events(
        conn, room_id, after=pos, before=upper + 1 if upper is not None else None,
        limit=limits[1], backwards=False,
    ) if limits[1] else []
    before_v = await filter_events_for_user_conn(conn, viewer.user_id, before, memberships)
    after_v = await filter_events_for_user_conn(conn, viewer.user_id, after, memberships)
    ser = await serializer_with_bundles(conn, viewer, [*before_v, *after_v])
    out: dict[str, Any] = {
        "events_before": ser.format_all(before_v),
        "events_after": ser.format_all(after_v),
        "start": pagination_token(before[-1].stream_ordering - 1 if before else pos - 1),
        "end": pagination_token(after[-1].stream_ordering if after else pos),
    }
    if include_profile:
        senders = {s.event.sender for s in (result, *before_v, *after_v)}
        out["profile_info"] = await _profiles_at(conn, result, senders)
    return out


async def _profiles_at(
    conn: aiosqlite.Connection, at: StoredEvent, senders: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The senders' display names and avatars in the room state after `at` (historic)."""
    if at.state_group is None:
        return {}
    keys = [(MEMBER, s) for s in sorted(senders)]
    ids = (await history_table.select_state_for_groups(conn, [at.state_group], keys=keys))[
        at.state_group
    ]
    loaded = await events_table.select_events(conn, ids.values())
    out: dict[str, dict[str, Any]] = {}
    for (_, user_id), event_id in ids.items():
        member = loaded.get(event_id)
        if member is None:
            continue
        profile = {
            k: member.event.content[k] for k in ("displayname", "avatar_url")
            if isinstance(member.event.content.get(k), str)
        }
        out[user_id] = profile
    return out


async def room_states(
    conn: aiosqlite.Connection, viewer: Viewer, room_ids: Iterable[str], memberships: Memberships
) -> dict[str, list[dict[str, Any]]]:
    """room -> its current state, or for a room the user left, the state when they left."""
    out: dict[str, list[dict[str, Any]]] = {}
    for room_id in sorted(room_ids):
        membership = memberships.get(room_id)
        if membership is None:
            continue
        if membership[0] == "join":
            ids = await state_table.select_current_state(conn, room_id)
        else:
            group = await events_table.select_state_group_of(conn, membership[1])
            ids = (
                (await history_table.select_state_for_groups(conn, [group]))[group]
                if group is not None else {}
            )
        loaded = await events_table.select_events(conn, ids.values())
        state = [loaded[i] for _, i in sorted(ids.items()) if i in loaded]
        ser = await serializer_with_bundles(conn, viewer, state)
        out[room_id] = ser.format_all(state)
    return out
