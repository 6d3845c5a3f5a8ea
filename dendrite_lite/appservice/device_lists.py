"""MSC3202 device lists for application services: who an AS must re-query (`changed`) or may
stop tracking (`left`), with nothing lost to a crash, a restart or an AS outage.

`changed` comes from the device list stream itself (storage/device_lists.py), the durable record
/sync reads too, through a cursor per AS (appservice_state.device_list_position): a transaction
carries the changes after the cursor (`summary`), recorded with the transaction, and the AS's
200 moves the cursor past them in the write that acknowledges it. A change committed just
before a crash is still in the stream after the restart, so it reaches the AS; a change only
wakes the AS's queue (AppserviceSender.device_list_changed), it carries nothing. Of the changes,
an AS hears of those of its own users (namespace and sender) and of the users sharing a room
with one of them when the transaction is built (as Synapse's
_is_appservice_interested_in_device_lists_of_user, rooms by namespace aside), and of private
changes (a signature by its user's user-signing key) when its user is the one who may see them.

`left` (which Synapse leaves to do) follows /sync's (e2ee/device_lists.py) with the AS's local
users as "us": a user who shared a room with them and shares none now. Who shared a room is
only known as the leave is stored, so the persist hook writes an outbox row of type EDU_TYPE
in the leave's own transaction (`users_left`); a user back in a shared room by the time the
transaction is built is not left. Rows of the "changed" kind were written by earlier versions
after a change's commit; those still queued are delivered as changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.storage import appservices as table
from dendrite_lite.storage import device_lists as stream_table

__all__ = ["EDU_TYPE", "STREAM_BATCH", "entry", "fold", "summary", "users_left"]

EDU_TYPE = "org.matrix.msc3202.device_list"
# Device list changes read for one transaction; more wait for the next.
STREAM_BATCH = 1_000
_LEAVING = ("leave", "ban")

Ours = Callable[[str], bool]


def entry(user_id: str, *, left: bool) -> dict[str, Any]:
    return {"user_id": user_id, "left": left}


def fold(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[str]] | None:
    """The device_lists of outbox rows, oldest first (None: no rows): a user's later row
    decides, so left after a change means left, a change after leaving means changed."""
    last: dict[str, bool] = {}
    for e in entries:
        user_id = e.get("user_id")
        if isinstance(user_id, str):
            last[user_id] = bool(e.get("left"))  # a later row decides
    if not last:
        return None
    return {
        "changed": sorted(u for u, left in last.items() if not left),
        "left": sorted(u for u, left in last.items() if left),
    }


async def summary(
    conn: aiosqlite.Connection,
    server_name: str,
    ours: Ours,
    *,
    since: int | None,
    until: int | None,
    entries: Iterable[Mapping[str, Any]],
) -> tuple[int, dict[str, list[str]] | None]:
    """A transaction's device lists, inside one read: (the last stream position it carries, 0
    for none; its `org.matrix.msc3202.device_lists`, None when empty). The stream changes after
    `since` (the AS's cursor; None: not started), up to `until` when resending the transaction
    that recorded it, and the outbox rows `entries` the transaction carries."""
    changed: set[str] = set()
    up_to = 0
    if since is not None and (until is None or until > since):
        changes = await stream_table.select_changes(conn, since, until, STREAM_BATCH)
        if changes:
            up_to = until if until is not None else changes[-1].stream_id
            changed = await _concerning(conn, server_name, ours, changes)
    folded = fold(entries) or {"changed": [], "left": []}
    left = set(folded["left"])
    if left:
        mates = await table.select_local_room_mates(conn, left, server_name)
        left = {u for u in left if not any(ours(m) for m in mates.get(u, ()))}
    changed = (changed | set(folded["changed"])) - left
    if not changed and not left:
        return up_to, None
    return up_to, {"changed": sorted(changed), "left": sorted(left)}


async def _concerning(
    conn: aiosqlite.Connection, server_name: str, ours: Ours,
    changes: Sequence[stream_table.StreamChange],
) -> set[str]:
    """The users of `changes` whose change the AS hears of (module docstring)."""
    private = {c.user_id for c in changes if c.seen_by is not None and ours(c.seen_by)}
    public = {c.user_id for c in changes if c.seen_by is None}
    others = [u for u in public if not ours(u)]
    mates = await table.select_local_room_mates(conn, others, server_name) if others else {}
    return private | {u for u in public if ours(u) or any(ours(m) for m in mates.get(u, ()))}


async def users_left(
    conn: aiosqlite.Connection,
    server_name: str,
    events: Sequence[Event],
    joined_before: Iterable[str],
    ours: Ours,
) -> list[str]:
    """Inside the transaction persisting `events` of one room (joined before them:
    `joined_before`): the users they made share no room any more with a local user `ours`
    holds. Candidates are the member leaving (or banned) when one of ours was in the room, and
    every other member when one of ours leaves."""
    suffix = ":" + server_name
    before = set(joined_before)
    had_ours = any(m.endswith(suffix) and ours(m) for m in before)
    candidates: set[str] = set()
    for event in events:
        if event.type != "m.room.member" or event.membership not in _LEAVING:
            continue
        leaver = event.state_key
        if not leaver:
            continue
        if leaver.endswith(suffix) and ours(leaver):
            candidates |= {m for m in before if not (m.endswith(suffix) and ours(m))}
        elif had_ours and leaver in before:
            candidates.add(leaver)
    if not candidates:
        return []
    mates = await table.select_local_room_mates(conn, candidates, server_name)
    return sorted(u for u in candidates if not any(ours(m) for m in mates.get(u, ())))
