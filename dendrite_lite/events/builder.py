"""Building our own events: prev_events, depth, auth_events, hashes, signature, event id
(server-server-api.md §PDUs, §Auth events selection, §Signing Events)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dendrite_lite.crypto.canonical import encode_base64
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.events.auth import auth_types_for_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.format import MAX_PREV_EVENTS, max_depth
from dendrite_lite.events.hashes import compute_reference_hash
from dendrite_lite.events.ids import create_event_id_of_room, new_legacy_event_id
from dendrite_lite.events.pdu import event_from_pdu
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.events.signing import hash_and_sign_event

__all__ = ["EventRef", "build_event", "select_prev_events", "BuildError"]


class BuildError(ValueError):
    """The inputs cannot make a valid event (e.g. no room id, no create event in the state)."""


@dataclass(frozen=True, slots=True)
class EventRef:
    """A forward extremity known by id and depth only. v1/v2 rooms also need its reference
    hash (unpadded base64 sha256), which prev_events cite."""

    event_id: str
    depth: int
    sha256: str | None = None


def _ref_of(e: Event | EventRef) -> EventRef:
    if isinstance(e, EventRef):
        return e
    sha = None
    if e.room_version.event_id_in_event:
        sha = encode_base64(compute_reference_hash(e.pdu, e.room_version))
    return EventRef(e.event_id, e.depth, sha)


def select_prev_events(extremities: Sequence[Event | EventRef]) -> list[EventRef]:
    """The forward extremities to cite, at most MAX_PREV_EVENTS of them.

    Receivers reject events with more than 20 prev_events (pdu_v*.yaml). Citing the deepest
    ones keeps the new event's depth right; the extremities left out stay extremities and are
    picked up by the next event, so the DAG still converges.
    """
    refs = sorted({r.event_id: r for r in map(_ref_of, extremities)}.values(), key=lambda r: (-r.depth, r.event_id))
    return refs[:MAX_PREV_EVENTS]


def _cite(refs: Sequence[EventRef], rv: RoomVersion) -> list[Any]:
    if not rv.event_id_in_event:
        return [r.event_id for r in refs]
    out: list[Any] = []
    for r in refs:
        if r.sha256 is None:
            raise BuildError(f"v1/v2 prev/auth event {r.event_id} needs its reference hash")
        out.append([r.event_id, {"sha256": r.sha256}])
    return out


def _room_id(rv: RoomVersion, room_id: str | None, state: Mapping[StateKey, Event]) -> str:
    if room_id is not None:
        return room_id
    create = state.get(("m.room.create", ""))
    if create is None:
        raise BuildError("no room_id given and no m.room.create in the state")
    return create.room_id


def build_event(
    *,
    room_version: RoomVersion,
    server_name: str,
    key: ServerKey,
    sender: str,
    event_type: str,
    content: Mapping[str, Any],
    origin_server_ts: int,
    state: Mapping[StateKey, Event],
    prev_events: Sequence[Event | EventRef],
    state_key: str | None = None,
    redacts: str | None = None,
    room_id: str | None = None,
    unsigned: Mapping[str, Any] | None = None,
) -> Event:
    """Build, hash and sign a local event and return it with its event id.

    `state` is the room state the event is created against (for auth_events), `prev_events`
    the room's forward extremities. For m.room.create, state and prev_events are ignored; a
    v12 create event gets no room_id, its room id being derived from its hash. For other
    events `room_id` defaults to the create event's room id from `state`.
    Validity under the auth rules is NOT checked here: the pipeline does that.
    """
    rv = room_version
    is_create = event_type == "m.room.create" and state_key == ""
    content = dict(content)
    if redacts is not None and rv.updated_redaction_rules:
        content.setdefault("redacts", redacts)  # v11+: redacts lives in content
    prevs = [] if is_create else select_prev_events(prev_events)
    depth = min(max((r.depth for r in prevs), default=0) + 1, max_depth(rv))

    auth: list[EventRef] = []
    if not is_create:
        rid = _room_id(rv, room_id, state)
        implied_create = create_event_id_of_room(rid, rv)
        for sk in auth_types_for_event(rv, event_type, state_key, sender, content):
            ev = state.get(sk)
            # v12: the create event is implied by the room id and must never be cited.
            if ev is not None and ev.event_id != implied_create and ev.event_id not in {a.event_id for a in auth}:
                auth.append(_ref_of(ev))

    pdu: dict[str, Any] = {
        "auth_events": _cite(auth, rv),
        "content": content,
        "depth": depth,
        "origin_server_ts": origin_server_ts,
        "prev_events": _cite(prevs, rv),
        "sender": sender,
        "type": event_type,
    }
    if not is_create:
        pdu["room_id"] = rid
    elif not rv.room_id_is_create_event_hash:
        if room_id is None:
            raise BuildError("a create event before v12 needs a room_id")
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None and not rv.updated_redaction_rules:
        pdu["redacts"] = redacts
    if rv.event_id_in_event:
        pdu["event_id"] = new_legacy_event_id(server_name)
    if unsigned:
        pdu["unsigned"] = dict(unsigned)
    return event_from_pdu(hash_and_sign_event(pdu, rv, server_name, key), rv)
