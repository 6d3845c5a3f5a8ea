"""Stored events -> the ClientEvent JSON /sync, /messages and /context send to one device.

What depends on the viewer is added here, in one place:
- redacted events are served redacted, with `unsigned.redacted_because` (the redaction event);
- the sender's own events carry `unsigned.transaction_id` for the device that sent them
  (client-server-api §Transaction identifiers: only that device sees it);
- `unsigned.age` is computed at serving time;
- bundled aggregations (`unsigned.m.relations`, rooms.aggregations) when the caller loaded them.
Redactions of a batch are found with one query, so serving N events costs O(1) queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.events.pdu import client_format
from dendrite_lite.events.power_levels import named_power_level, user_power_level
from dendrite_lite.events.redaction import redact
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.events import StoredEvent

__all__ = ["ClientEventSerializer", "load_redactions"]


async def load_redactions(
    conn: aiosqlite.Connection, events: Sequence[StoredEvent]
) -> dict[str, StoredEvent]:
    """redacted event id -> the redaction that applies to it, for the events of the batch.

    The first redaction (in stream order) that is valid applies: its sender is on the same
    server as the redacted event's sender (that server vouched for it, rooms v3+ §Redactions)
    or has the room's redact level now. A redaction from another server without it, stored
    because the auth rules let it in, redacts nothing. Local redactions were checked when sent
    (RoomEventsService.redact) and pass here too."""
    pointers = await events_table.select_all_redactions_of(conn, [s.event.event_id for s in events])
    if not pointers:
        return {}
    loaded = await events_table.select_events(conn, [r for rs in pointers.values() for r in rs])
    targets = {s.event.event_id: s.event for s in events}
    levels: dict[str, tuple[Event | None, Event | None]] = {}  # room -> (power levels, create)
    out: dict[str, StoredEvent] = {}
    for target_id, ids in pointers.items():
        target = targets[target_id]
        for red in (loaded[r] for r in ids if r in loaded):
            if _server_of(red.event.sender) != _server_of(target.sender):
                if target.room_id not in levels:
                    levels[target.room_id] = await _power_and_create(conn, target.room_id)
                power, create = levels[target.room_id]
                if create is None or user_power_level(
                    red.event.sender, power, create
                ) < named_power_level("redact", power):
                    continue
            out[target_id] = red
            break
    return out


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


async def _power_and_create(conn: aiosqlite.Connection, room_id: str) -> tuple[Event | None, Event | None]:
    ids = [
        await state_table.select_current_state_event_id(conn, room_id, t, "")
        for t in ("m.room.power_levels", "m.room.create")
    ]
    found = await events_table.select_events(conn, [i for i in ids if i is not None])
    power, create = (found[i].event if i is not None and i in found else None for i in ids)
    return power, create


class ClientEventSerializer:
    """Formats events for one (user, device) with the batch's redactions preloaded."""

    __slots__ = ("_device_id", "_now_ms", "_redactions", "_relations", "_user_id")

    def __init__(
        self,
        user_id: str,
        device_id: str | None,
        now_ms: int,
        redactions: Mapping[str, StoredEvent],
        relations: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self._user_id = user_id
        self._device_id = device_id
        self._now_ms = now_ms
        self._redactions = redactions
        # event id -> its unsigned.m.relations (built by rooms.aggregations for this viewer).
        self._relations: Mapping[str, Mapping[str, Any]] = relations or {}

    def unsigned(self, stored: StoredEvent, *, nested: bool = False) -> dict[str, Any]:
        event = stored.event
        unsigned: dict[str, Any] = {"age": max(0, self._now_ms - event.origin_server_ts)}
        if (
            stored.txn_id is not None
            and stored.txn_user_id == self._user_id
            and stored.txn_device_id == self._device_id
        ):
            unsigned["transaction_id"] = stored.txn_id
        prev = event.unsigned.get("prev_content")
        if isinstance(prev, Mapping):
            unsigned["prev_content"] = prev
        because = self._redactions.get(event.event_id)
        if because is not None and not nested:
            # One level only: the redaction is shown without its own redacted_because. Room
            # versions 1 and 2 let a redaction redact itself (or two redact each other), which
            # nested without end.
            unsigned["redacted_because"] = self.format(because, nested=True)
            unsigned["redacted_by"] = because.event.event_id  # Synapse's too; SyTest reads it
        bundle = self._relations.get(event.event_id)
        if bundle:
            unsigned["m.relations"] = bundle
        return unsigned

    def format(
        self, stored: StoredEvent, *, include_room_id: bool = True, nested: bool = False
    ) -> dict[str, Any]:
        event = stored.event
        if event.event_id in self._redactions:
            event = Event(
                redact(event.pdu, event.room_version),
                event.room_version,
                event.event_id,
                room_id=event.room_id,
            )
        return client_format(
            event, unsigned=self.unsigned(stored, nested=nested), include_room_id=include_room_id
        )

    def format_all(
        self,
        events: Sequence[StoredEvent],
        *,
        include_room_id: bool = True,
        federation: bool = False,
    ) -> list[dict[str, Any]]:
        """`federation`: the filter's event_format "federation", the PDU as servers see it
        (redacted when redacted), with its event_id, room_id and our unsigned."""
        if federation:
            return [self._federation_format(s) for s in events]
        return [self.format(s, include_room_id=include_room_id) for s in events]

    def _federation_format(self, stored: StoredEvent) -> dict[str, Any]:
        event = stored.event
        pdu = dict(event.pdu)
        if event.event_id in self._redactions:
            pdu = dict(redact(event.pdu, event.room_version))
        pdu.update(event_id=event.event_id, room_id=event.room_id)
        pdu["unsigned"] = {**pdu.get("unsigned", {}), **self.unsigned(stored)}
        return pdu
