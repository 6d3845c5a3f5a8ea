"""MSC3202 device lists for application services: who an AS must re-query (`changed`) or may
stop tracking (`left`), queued as outbox rows so a restart or an AS outage loses nothing.

Each change is one appservice_outbox row of type EDU_TYPE, written with what caused it: a
device list change (AppserviceSender.device_list_changed, after the change's commit) or a
member leaving a room (the persist hook, inside the leave's transaction). A transaction's rows
fold into `org.matrix.msc3202.device_lists`, the later of a user's rows winning: left after a
change means left, a change after leaving (the user is back) means changed.

`left` follows /sync's (e2ee/device_lists.py), with the AS's local users (namespace and
sender) as "us": a user who shared a room with them and shares none now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.storage import appservices as table

__all__ = ["EDU_TYPE", "entry", "fold", "users_left"]

EDU_TYPE = "org.matrix.msc3202.device_list"
_LEAVING = ("leave", "ban")


def entry(user_id: str, *, left: bool) -> dict[str, Any]:
    return {"user_id": user_id, "left": left}


def fold(entries: Iterable[Mapping[str, Any]]) -> dict[str, list[str]] | None:
    """The transaction's device_lists from its rows, oldest first (None: no rows)."""
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


async def users_left(
    conn: aiosqlite.Connection,
    server_name: str,
    events: Sequence[Event],
    joined_before: Iterable[str],
    ours: Callable[[str], bool],
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
