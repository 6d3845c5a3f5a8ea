"""Storing events we hold for their content only (auth chains, state fetched from another
server, the state of a room we join) as outliers, after checking each against its auth events.

An outlier is not part of the timeline and has no state group. One that fails the auth rules
against its auth events is stored with its rejection reason, so events citing it are rejected
in turn (check_auth_events_selection) and it never enters a state map.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.federation.checks import (
    auth_event_ids_needed,
    auth_order,
    check_against_auth_events,
)
from dendrite_lite.storage import Storage
from dendrite_lite.storage import auth_chains
from dendrite_lite.storage import events as events_table

__all__ = ["persist_outliers"]

log = logging.getLogger(__name__)


async def persist_outliers(
    storage: Storage, events: Sequence[Event], *, index: bool = True
) -> dict[str, Event]:
    """Auth-check verified `events` in auth order and store those we do not hold as outliers.

    An event whose auth events are neither among `events` nor stored is left out (we cannot
    check it). Returns every event of `events` we now hold, as held: with `rejected_reason`
    set for rejected ones; events held before keep their stored form.
    `index=False` leaves indexing the auth chains to the caller (auth_chains.index_events).
    """
    if not events:
        return {}
    ids = {e.event_id for e in events}
    wanted = ids | {a for e in events for a in auth_event_ids_needed(e)}
    stored = await storage.db.read(lambda c: events_table.select_events(c, wanted))
    known: dict[str, Event] = {eid: s.event for eid, s in stored.items()}
    fresh: list[Event] = []
    for event in auth_order(events):
        if event.event_id in known:
            continue
        missing = [a for a in auth_event_ids_needed(event) if a not in known]
        if missing:
            log.info("not storing %s: auth events %s unavailable", event.event_id, missing)
            continue
        reason = check_against_auth_events(event, known)
        if reason is not None:
            log.info("outlier %s rejected: %s", event.event_id, reason)
        checked = Event(
            event.pdu, event.room_version, event.event_id, room_id=event.room_id,
            rejected_reason=reason,
        )
        known[event.event_id] = checked
        fresh.append(checked)

    if fresh:

        async def write(conn: aiosqlite.Connection) -> None:
            have = await events_table.select_events(conn, [e.event_id for e in fresh])
            for e in fresh:
                if e.event_id not in have:  # stored meanwhile by a concurrent fetch
                    await events_table.insert_event(conn, e, outlier=True)
            # Indexed now, while their auth events are at hand, rather than by the first state
            # resolution that needs them (a joined room's whole state arrives here).
            if index:
                await auth_chains.index_events(conn, [e.event_id for e in fresh])

        await storage.db.write(write)
    return {eid: ev for eid, ev in known.items() if eid in ids}
