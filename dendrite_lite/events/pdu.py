"""Turning PDUs into Events and Events into the JSON shapes the APIs send.

- `event_from_pdu`: a PDU as received or built -> Event with its id (and v12 room id) derived.
- `pdu_for_federation`: the PDU to put in a transaction or a /event response.
- `client_format`: the client-server API event format (client-server-api §Room Event Format).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dendrite_lite.events.event import Event
from dendrite_lite.events.ids import compute_event_id, room_id_from_create_event
from dendrite_lite.events.room_versions import RoomVersion

__all__ = ["event_from_pdu", "is_create_event", "pdu_for_federation", "client_format"]


def is_create_event(pdu: Mapping[str, Any]) -> bool:
    return pdu.get("type") == "m.room.create" and pdu.get("state_key") == ""


def event_from_pdu(pdu: Mapping[str, Any], rv: RoomVersion, *, rejected_reason: str | None = None) -> Event:
    """An Event for `pdu` (not validated: run events.format.validate_pdu first on untrusted
    input). The event id is computed (v3+) or read (v1/v2); a v12 create event's room id is
    derived from its reference hash. Raises ValueError if a v1/v2 PDU has no event_id."""
    event_id = compute_event_id(pdu, rv)
    room_id = None
    if rv.room_id_is_create_event_hash and is_create_event(pdu):
        room_id = room_id_from_create_event(pdu, rv)
    return Event(pdu, rv, event_id, room_id=room_id, rejected_reason=rejected_reason)


def pdu_for_federation(event: Event, *, now_ms: int | None = None) -> dict[str, Any]:
    """The PDU as sent to other servers: v1/v2 carry `event_id`, v3+ must not (it is their hash).

    `unsigned.age_ts` (our receive/creation time) becomes `unsigned.age` relative to `now_ms`
    when given; other unsigned keys are passed through.
    """
    pdu = dict(event.pdu)
    if event.room_version.event_id_in_event:
        pdu["event_id"] = event.event_id
    else:
        pdu.pop("event_id", None)
    unsigned = pdu.get("unsigned")
    if isinstance(unsigned, Mapping) and "age_ts" in unsigned:
        u = dict(unsigned)
        age_ts = u.pop("age_ts")
        if now_ms is not None and isinstance(age_ts, int):
            u["age"] = max(0, now_ms - age_ts)
        pdu["unsigned"] = u
    return pdu


def client_format(
    event: Event,
    *,
    unsigned: Mapping[str, Any] | None = None,
    include_room_id: bool = True,
) -> dict[str, Any]:
    """The ClientEvent shape: content, event_id, origin_server_ts, room_id, sender,
    state_key, type, unsigned. `unsigned` is what the caller computed for this viewer (age,
    transaction_id, redacted_because, ...); PDU-level unsigned data is not copied.

    m.room.redaction events get `redacts` both at the top level and in content, whatever the
    room version (rooms/v11.md asks servers to add each form for compatibility).
    """
    content = dict(event.content)
    out: dict[str, Any] = {
        "content": content,
        "event_id": event.event_id,
        "origin_server_ts": event.origin_server_ts,
        "sender": event.sender,
        "type": event.type,
    }
    if include_room_id:
        out["room_id"] = event.room_id
    if event.is_state():
        out["state_key"] = event.state_key
    if event.type == "m.room.redaction":
        redacts = event.redacts
        if redacts is not None:
            out["redacts"] = redacts
            content.setdefault("redacts", redacts)
    if unsigned:
        out["unsigned"] = dict(unsigned)
    return out
