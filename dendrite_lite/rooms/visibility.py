"""Room history visibility: which events a user may see (modules/history_visibility.md).

The rules use the state of the room AT each event (client-server-api §Room History Visibility,
"Server behaviour"):
1. history_visibility world_readable: allow;
2. the user's membership was join: allow;
3. shared, and the user joined the room at some point after the event: allow;
4. the user's membership was invite and the visibility invited: allow;
5. otherwise deny.
An m.room.history_visibility event is visible if the visibility before OR after it allows it, and
the user's own m.room.member events likewise with their membership before or after.

Cost: the common case (a user currently joined, reading events sent after their join) is decided
from one indexed lookup of their current membership. Only older events need state; that comes
from ONE query for two state keys across all the events' state groups (storage.history).

Events are StoredEvents (they carry stream_ordering and the state group after the event):

    visible = await filter_events_for_user(storage, user_id, stored_events)
    if not await can_see_event(storage, user_id, stored): raise MatrixError(NOT_FOUND, ...)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.events.redaction import redact
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage.ignored_users import select_ignored_users
from dendrite_lite.storage.events import StoredEvent

__all__ = [
    "filter_events_for_user",
    "filter_events_for_user_conn",
    "can_see_event",
    "is_allowed",
    "HISTORY_VISIBILITY",
    "DEFAULT_VISIBILITY",
]

HISTORY_VISIBILITY = "m.room.history_visibility"
MEMBER = "m.room.member"
DEFAULT_VISIBILITY = "shared"
_KNOWN = ("world_readable", "shared", "invited", "joined")


def is_allowed(visibility: str | None, membership: str | None, joined_later: bool) -> bool:
    """The five rules for one (visibility, membership at the event) pair."""
    if visibility not in _KNOWN:
        visibility = DEFAULT_VISIBILITY  # unset or not understood means shared
    if visibility == "world_readable" or membership == "join":
        return True
    if visibility == "shared" and joined_later:
        return True
    return membership == "invite" and visibility == "invited"


async def filter_events_for_user(
    storage: Storage, user_id: str, events: Sequence[StoredEvent]
) -> list[StoredEvent]:
    """The events `user_id` may see, in the given order. Outliers, rejected and soft-failed
    events are never visible to clients."""
    if not events:
        return []
    return await storage.db.read(lambda conn: filter_events_for_user_conn(conn, user_id, events))


async def can_see_event(storage: Storage, user_id: str, event: StoredEvent) -> bool:
    return bool(await filter_events_for_user(storage, user_id, [event]))


@dataclass(frozen=True, slots=True)
class _Pending:
    stored: StoredEvent
    special: bool  # the visibility event itself, or the user's own member event


async def filter_events_for_user_conn(
    conn: aiosqlite.Connection,
    user_id: str,
    events: Sequence[StoredEvent],
    memberships: Mapping[str, tuple[str, str, int]] | None = None,
) -> list[StoredEvent]:
    """filter_events_for_user inside a read the caller already holds. `memberships` (room ->
    (membership, event id, stream position) of the user now, as select_current_memberships
    returns) saves a query when the caller has it already.

    Events of users this user ignores are left out too, except state events
    (ignore_users.md: "Servers must still send state events sent by ignored users")."""
    ignored = await select_ignored_users(conn, user_id) if events else frozenset()
    servable = [
        s for s in events
        if not s.outlier and not s.soft_failed and s.event.rejected_reason is None
        and s.state_group is not None
        and (s.event.state_key is not None or s.event.sender not in ignored)
    ]
    rooms = sorted({s.event.room_id for s in servable})
    if not servable:
        return []
    current = memberships
    if current is None:
        current = await history_table.select_current_memberships(conn, user_id, rooms)
    visible: set[str] = set()
    joined_at: set[str] = set()  # events the user was joined to the room at
    pending: list[_Pending] = []
    for s in servable:
        cur = current.get(s.event.room_id)
        # Joined now and the event came after the join: the membership at the event is join.
        if cur is not None and cur[0] == "join" and s.stream_ordering >= cur[2]:
            visible.add(s.event.event_id)
            joined_at.add(s.event.event_id)
            continue
        e = s.event
        special = (e.type == HISTORY_VISIBILITY and e.state_key == "") or (
            e.type == MEMBER and e.state_key == user_id
        )
        pending.append(_Pending(s, special))
    if pending:
        allowed, joined = await _decide(conn, user_id, pending)
        visible.update(allowed)
        joined_at.update(joined)
    out = [s for s in events if s.event.event_id in visible]
    # A user who deactivated with erase=true: their events are shown redacted to whoever was
    # not in the room when they were sent (Synapse's rule; account_deactivation.yaml `erase`).
    strangers = {s.event.sender for s in out if s.event.event_id not in joined_at} - {user_id}
    erased = await accounts_table.select_erased_users(conn, strangers) if strangers else set()
    if erased:
        out = [
            _redacted(s) if s.event.sender in erased and s.event.event_id not in joined_at else s
            for s in out
        ]
    return out


def _redacted(stored: StoredEvent) -> StoredEvent:
    e = stored.event
    pruned = Event(redact(e.pdu, e.room_version), e.room_version, e.event_id, room_id=e.room_id)
    return replace(stored, event=pruned)


async def _decide(
    conn: aiosqlite.Connection, user_id: str, pending: Sequence[_Pending]
) -> tuple[list[str], list[str]]:
    """(the events the user may see, those they were joined to the room at)."""
    keys = [(HISTORY_VISIBILITY, ""), (MEMBER, user_id)]
    before = await history_table.select_prev_state_groups(
        conn, [p.stored.event.event_id for p in pending if p.special]
    )
    groups = {p.stored.state_group for p in pending if p.stored.state_group is not None}
    groups.update(before.values())
    state = await history_table.select_state_for_groups(conn, groups, keys=keys)
    state_ids = {i for entries in state.values() for i in entries.values()}
    loaded = await events_table.select_events(conn, state_ids)
    joins: dict[str, list[int]] = {}
    for room_id in sorted({p.stored.event.room_id for p in pending}):
        changes = await history_table.select_membership_changes(conn, room_id, user_id)
        joins[room_id] = [pos for pos, m in changes if m == "join"]

    def values(group: int | None) -> tuple[str | None, str | None]:
        entries = state.get(group, {}) if group is not None else {}
        vis_ev = loaded.get(entries.get(keys[0], ""))
        mem_ev = loaded.get(entries.get(keys[1], ""))
        vis = vis_ev.event.content.get("history_visibility") if vis_ev else None
        mem = mem_ev.event.membership if mem_ev else None
        return (vis if isinstance(vis, str) else None), mem

    out: list[str] = []
    joined_at: list[str] = []
    for p in pending:
        s = p.stored
        joined_later = any(pos > s.stream_ordering for pos in joins[s.event.room_id])
        views = [values(s.state_group)]
        if views[0][1] == "join":
            joined_at.append(s.event.event_id)
        if p.special:
            views.append(values(before.get(s.event.event_id)))
        # Special events: any combination of the before/after values may allow.
        visibilities = {v for v, _ in views}
        memberships = {m for _, m in views}
        if any(is_allowed(v, m, joined_later) for v in visibilities for m in memberships):
            out.append(s.event.event_id)
    return out, joined_at
