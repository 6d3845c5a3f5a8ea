"""Memberships of our users in rooms we are not in (server-server-api.md §Inviting to a room,
§Leaving Rooms (Rejecting Invites), §Knocking upon a room): an invite received over /invite, our
rejection of it, our knock.

We hold none of the room's DAG, so the event is stored as an outlier (never in a timeline), the
room gets a rooms row if it has none (its version is all we know), and the user's entry in the
room's current state points at the event, which is what /sync reads to show an invite, knock or
leave. The stripped state the other server sent goes into the event's `unsigned` (not covered by
hashes or signatures), where /sync looks for it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.events.pdu import event_from_pdu
from dendrite_lite.federation.membership_events import MEMBER
from dendrite_lite.rooms.notifications import PersistHook
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.sync.notifier import Notifier

__all__ = ["persist_out_of_band_membership", "STRIPPED_STATE_KEY"]

# sync/room_sections.py reads the stripped state of invites and knocks from this unsigned key.
STRIPPED_STATE_KEY = "invite_room_state"


def _stripped_events(stripped: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for e in stripped:
        if isinstance(e, Mapping) and isinstance(e.get("type"), str):
            out.append({k: e[k] for k in ("type", "state_key", "sender", "content") if k in e})
    return out


async def persist_out_of_band_membership(
    storage: Storage,
    notifier: Notifier,
    event: Event,
    stripped_state: Sequence[Any] | None = None,
    hooks: Sequence[PersistHook] = (),
) -> int:
    """Store `event` (an m.room.member of one of our users) as the user's membership in a room
    we are not in; returns its stream position. Idempotent for the same event. `hooks` are the
    persist hooks (an invite's push, by .m.rule.invite_for_me), run when it is first stored."""
    pdu = dict(event.pdu)
    if stripped_state is not None:
        unsigned = dict(pdu.get("unsigned") or {})
        unsigned[STRIPPED_STATE_KEY] = _stripped_events(stripped_state)
        pdu["unsigned"] = unsigned
    stored = event_from_pdu(pdu, event.room_version)
    creator = next(
        (e.get("sender") for e in stripped_state or () if isinstance(e, Mapping)
         and e.get("type") == "m.room.create"),
        event.sender,
    )
    target = event.state_key
    assert target is not None
    in_txn = [w for hook in hooks if (w := await hook(event.room_id, [stored])) is not None]

    async def write(conn: aiosqlite.Connection) -> int:
        await rooms_table.insert_room(
            conn, room_id=event.room_id, room_version=event.room_version.identifier,
            creator=str(creator), created_ts=int(time.time() * 1000),
        )
        held = await events_table.select_event(conn, event.event_id)
        if held is not None:
            position = held.stream_ordering
        else:
            position = await events_table.insert_event(conn, stored, outlier=True)
            for run in in_txn:
                await run(conn, [(stored, position)])
        await state_table.update_current_state(
            conn, event.room_id, {(MEMBER, target): (event.event_id, event.membership)}
        )
        return position

    position = await storage.db.write(write)
    notifier.notify({target})
    return position
