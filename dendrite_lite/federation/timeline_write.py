"""Writing one checked remote event into the room, in one transaction (DESIGN.md §The event
pipeline, step 4): state group of the state after it, the event row, forward extremities,
current state delta, rooms.current_state_group, redaction link.

What goes where:
- accepted: a timeline event; it replaces its prev events among the forward extremities and the
  current state becomes the resolved state of the new extremities.
- rejected: stored with its reason; its state group is the state BEFORE it (a later event citing
  it as a prev event sees the state as if it had not happened: §Rejection).
- soft failed: stored with soft_failed=1 and the state after it, but it is no forward extremity
  and does not touch the current state (§Soft failure).
Rejected and soft-failed events are stored with outlier=1, which every timeline query (sync,
/messages, /context) already excludes, so clients never see them; unlike real outliers they keep
their state group, so events citing them still get their state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.federation.state_at import StateAt, StateMap
from dendrite_lite.storage import auth_chains
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import remote_events as remote_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table

__all__ = ["TimelineWrite", "CurrentStateChange", "write_timeline_event", "state_diff"]

StateDelta = dict[StateKey, tuple[str, str | None] | None]


def state_diff(old: Mapping[StateKey, str], new: Mapping[StateKey, str]) -> dict[StateKey, str | None]:
    """What to apply to `old` to get `new` (None removes a key)."""
    out: dict[StateKey, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
    out.update({k: None for k in old if k not in new})
    return out


@dataclass(frozen=True, slots=True)
class CurrentStateChange:
    """The room's new current state: `delta` for the current_state table ((event id,
    membership) per changed key), and the full state when it differs from the state after the
    event (several forward extremities), so it gets a state group of its own."""

    delta: StateDelta
    resolved: StateMap | None


@dataclass(frozen=True, slots=True)
class TimelineWrite:
    event: Event  # rejected_reason set when rejected
    before: StateAt
    soft_failed: bool
    current: CurrentStateChange | None  # None: current state and extremities untouched
    replaces_outlier: bool


async def _store_state(conn: aiosqlite.Connection, room_id: str, at: StateAt) -> int:
    if at.group is not None:
        return at.group
    if at.base_group is not None and at.base_state is not None:
        return await state_table.insert_state_group(
            conn, room_id, prev_group=at.base_group, delta=state_diff(at.base_state, at.state)
        )
    return await state_table.insert_state_group(conn, room_id, prev_group=None, full_state=at.state)


async def write_timeline_event(conn: aiosqlite.Connection, w: TimelineWrite) -> int:
    """Write `w` (caller: inside storage.db.write, holding the room lock); return the event's
    stream position."""
    event = w.event
    room_id = event.room_id
    accepted = event.rejected_reason is None
    group = await _store_state(conn, room_id, w.before)
    after = dict(w.before.state)
    if accepted and event.is_state():
        after[event.state_tuple] = event.event_id
        group = await state_table.insert_state_group(
            conn, room_id, prev_group=group, delta={event.state_tuple: event.event_id}
        )
    if w.replaces_outlier:
        await remote_table.delete_outlier(conn, event.event_id)
    visible = accepted and not w.soft_failed
    position = await events_table.insert_event(
        conn, event, outlier=not visible, soft_failed=w.soft_failed, state_group=group
    )
    await auth_chains.index_events(conn, [event.event_id])
    if not visible or w.current is None:
        return position
    await events_table.replace_forward_extremities(
        conn, room_id, remove=event.prev_event_ids, add=[event.event_id]
    )
    if event.type == "m.room.redaction" and event.redacts:
        await events_table.insert_redaction(conn, event.event_id, event.redacts)
    await state_table.update_current_state(conn, room_id, w.current.delta)
    current_group = group
    if w.current.resolved is not None:
        current_group = await state_table.insert_state_group(
            conn, room_id, prev_group=group, delta=state_diff(after, w.current.resolved)
        )
    await rooms_table.update_current_state_group(conn, room_id, current_group)
    return position
