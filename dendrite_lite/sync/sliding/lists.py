"""The sliding sync room list (MSC4186 §Lists): the user's rooms, newest activity first, then
each list's filters and ranges over it.

Activity (MSC4186 §Activity ordering, as Synapse sorts): a joined room's newest event of any type,
so anything that happens in a room brings it into a window starting at 0 (a join, a topic
change, a reaction); for an invite, knock or left room, the user's membership. Not `bump_stamp`
(the MSC's box: "Rooms are not ordered by bump_stamp"), which counts only the MSC's bump event
types and is read for the rooms a response sends (`load_bump_stamps`).

Which rooms are in the user's list: joined, invited and knocked rooms; rooms the user was
kicked or banned from (a ban from a room never joined excepted); rooms the user left by
themselves only once this connection has sent them (the client then learns of the leave). Rooms
the user forgot, and invites from users they ignore, are left out.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from dendrite_lite.storage import account_data as account_data_table
from dendrite_lite.storage import aliases as aliases_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import room_list as room_list_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.ignored_users import select_ignored_users
from dendrite_lite.sync.sliding.request import ListConfig, ListFilters

__all__ = [
    "ListedRoom",
    "RoomFacts",
    "load_bump_stamps",
    "load_facts",
    "select_room_list",
    "window",
]

_STRIPPED = ("invite", "knock")


@dataclass(frozen=True, slots=True)
class ListedRoom:
    room_id: str
    membership: str
    member_event_id: str
    member_pos: int  # stream position of the user's membership event
    activity: int  # where it sorts: its newest event, or the membership if not joined
    # Stripped state from the invite or knock (federated invites carry it; None otherwise).
    stripped: tuple[dict[str, Any], ...] | None = None
    invited_as_dm: bool = False  # the invite event's content.is_direct
    # Joined at some point: a left room shows its state only then (an invite withdrawn or
    # rejected shows the user's own membership alone).
    was_joined: bool = True


@dataclass(slots=True)
class RoomFacts:
    """What the filters and the room responses need to know about rooms, loaded once."""

    dm_rooms: set[str] = field(default_factory=set)
    encrypted: set[str] = field(default_factory=set)
    room_types: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    space_children: dict[str, set[str]] = field(default_factory=dict)
    # Joined rooms -> their newest event of a bump type (load_bump_stamps)
    bump_stamps: dict[str, int] = field(default_factory=dict)

    def is_dm(self, room: ListedRoom) -> bool:
        return room.room_id in self.dm_rooms or room.invited_as_dm

    def bump_stamp(self, room: ListedRoom) -> int:
        """MSC4186 `bump_stamp`: a joined room's newest event of a bump type (its join if it
        has none we hold, e.g. joined over federation); else the user's membership."""
        return self.bump_stamps.get(room.room_id, room.member_pos)


async def select_room_list(
    conn: aiosqlite.Connection, user_id: str, until: int, sent: Container[str]
) -> list[ListedRoom]:
    """The user's room list at room-stream position `until`, newest activity first (ties by
    room ID, so the order is stable). `sent`: the rooms this connection has sent."""
    memberships = await history_table.select_current_memberships(conn, user_id)
    memberships = {r: m for r, m in memberships.items() if m[2] <= until}
    # Member events are needed for leaves (who left: kicked or by themselves) and for invites
    # and knocks (inviter, stripped state, is_direct).
    needed = [m[1] for m in memberships.values() if m[0] != "join"]
    member_events = await events_table.select_events(conn, needed) if needed else {}
    joined = [r for r, m in memberships.items() if m[0] == "join"]
    latest = await room_list_table.select_latest_positions(conn, joined, until)
    out: list[ListedRoom] = []
    for room_id in joined:
        _, event_id, pos = memberships[room_id]
        out.append(ListedRoom(room_id, "join", event_id, pos, latest.get(room_id, pos)))
    if needed:
        out += await _other_rooms(conn, user_id, memberships, member_events, sent)
    out.sort(key=lambda r: (-r.activity, r.room_id))
    return out


async def load_bump_stamps(
    conn: aiosqlite.Connection,
    facts: RoomFacts,
    rooms: Sequence[ListedRoom],
    until: int,
) -> None:
    """The bump stamps of the joined rooms among `rooms` (those a response sends), into
    `facts`."""
    joined = [r.room_id for r in rooms if r.membership == "join"]
    if joined:
        facts.bump_stamps.update(
            await room_list_table.select_bump_stamps(conn, joined, until)
        )


async def _other_rooms(
    conn: aiosqlite.Connection,
    user_id: str,
    memberships: Mapping[str, tuple[str, str, int]],
    member_events: Mapping[str, StoredEvent],
    sent: Container[str],
) -> list[ListedRoom]:
    """The invites, knocks and left rooms of the room list (their activity is the
    membership's position)."""
    ignored = await select_ignored_users(conn, user_id)
    forgotten = set(await aliases_table.select_forgotten_room_ids(conn, user_id))
    out: list[ListedRoom] = []
    gone: list[tuple[str, str, str, int]] = []
    for room_id, (membership, event_id, pos) in memberships.items():
        member = member_events.get(event_id)
        if membership in _STRIPPED and member is not None:
            if membership == "invite" and member.event.sender in ignored:
                continue
            given = member.event.unsigned.get("invite_room_state")
            stripped = None
            if isinstance(given, list):
                stripped = tuple(e for e in given if isinstance(e, dict))
            is_direct = member.event.content.get("is_direct") is True
            out.append(
                ListedRoom(room_id, membership, event_id, pos, pos, stripped, is_direct)
            )
        elif membership in ("leave", "ban") and room_id not in forgotten:
            self_left = member is None or member.event.sender == user_id
            if room_id in sent or membership == "ban" or not self_left:
                gone.append((room_id, membership, event_id, pos))
    ever_joined = await room_list_table.select_ever_joined(
        conn, user_id, [g[0] for g in gone]
    )
    for room_id, membership, event_id, pos in gone:
        was_joined = room_id in ever_joined
        # A ban from a room never joined is not the user's room (MSC4186 §Lists).
        if membership == "ban" and not was_joined and room_id not in sent:
            continue
        out.append(
            ListedRoom(room_id, membership, event_id, pos, pos, was_joined=was_joined)
        )
    return out


async def load_facts(
    conn: aiosqlite.Connection,
    user_id: str,
    rooms: Sequence[ListedRoom],
    lists: Sequence[ListConfig],
) -> RoomFacts:
    """Every fact the lists' filters look at, plus the DM rooms (each room response says
    is_dm)."""
    facts = RoomFacts()
    direct = await account_data_table.select_account_data(
        conn, user_id, account_data_table.GLOBAL, "m.direct"
    )
    if isinstance(direct, dict):
        for room_ids in direct.values():
            if isinstance(room_ids, list):
                facts.dm_rooms.update(r for r in room_ids if isinstance(r, str))
    filters = [lc.filters for lc in lists]
    room_ids = [r.room_id for r in rooms]
    if any(f.is_encrypted is not None for f in filters):
        found = await room_list_table.select_state_contents(
            conn, room_ids, "m.room.encryption"
        )
        facts.encrypted = set(found)
        facts.encrypted.update(
            r.room_id
            for r in rooms
            if _stripped_content(r, "m.room.encryption") is not None
        )
    if any(f.room_types is not None or f.not_room_types is not None for f in filters):
        creates = await room_list_table.select_state_contents(
            conn, room_ids, "m.room.create"
        )
        for r in rooms:
            content = (
                creates.get(r.room_id) or _stripped_content(r, "m.room.create") or {}
            )
            kind = content.get("type")
            facts.room_types[r.room_id] = kind if isinstance(kind, str) else None
    if any(f.tags is not None or f.not_tags is not None for f in filters):
        facts.tags = await room_list_table.select_room_tags(conn, user_id)
    joined = {r.room_id for r in rooms if r.membership == "join"}
    for f in filters:
        # Only spaces the user is joined to count (MSC4186 `spaces`).
        for space in f.spaces or ():
            if space not in facts.space_children and space in joined:
                facts.space_children[
                    space
                ] = await room_list_table.select_space_children(conn, [space])
    return facts


def _stripped_content(room: ListedRoom, event_type: str) -> dict[str, Any] | None:
    for e in room.stripped or ():
        if e.get("type") == event_type and e.get("state_key") == "":
            content = e.get("content")
            return content if isinstance(content, dict) else {}
    return None


def _matches(room: ListedRoom, f: ListFilters, facts: RoomFacts) -> bool:
    if f.is_dm is not None and facts.is_dm(room) != f.is_dm:
        return False
    if (
        f.is_encrypted is not None
        and (room.room_id in facts.encrypted) != f.is_encrypted
    ):
        return False
    if f.is_invite is not None and (room.membership == "invite") != f.is_invite:
        return False
    kind = facts.room_types.get(room.room_id)
    if f.room_types is not None and kind not in f.room_types:
        return False
    if f.not_room_types is not None and kind in f.not_room_types:
        return False
    tags = facts.tags.get(room.room_id, set())
    if f.not_tags is not None and tags & set(f.not_tags):
        return False
    if f.tags is not None and not tags & set(f.tags):
        return False
    return f.spaces is None or any(
        room.room_id in facts.space_children.get(s, ()) for s in f.spaces
    )


def window(
    rooms: Sequence[ListedRoom], config: ListConfig, facts: RoomFacts
) -> tuple[int, list[ListedRoom]]:
    """(how many rooms pass the list's filters, those within its ranges in list order). A
    range past the end of the list reaches to its end."""
    matching = [r for r in rooms if _matches(r, config.filters, facts)]
    if config.ranges is None:
        return len(matching), matching
    picked: set[int] = set()
    for start, end in config.ranges:
        picked.update(range(start, min(end, len(matching) - 1) + 1))
    return len(matching), [matching[i] for i in sorted(picked)]
