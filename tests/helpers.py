"""Event and room builders for tests.

Events get explicit, readable ids (no hashing), so any test can build a room in any version and
refer to its events. `make_event` builds one Event; `make_room` builds the usual opening chain
(create, creator join, power levels, join rules, more joins) and returns a RoomBuilder that keeps
the current state and picks auth events and prev events for the next event.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.events.auth import auth_types_for_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import RoomVersion, get_room_version

__all__ = ["make_event", "make_room", "RoomBuilder", "default_power_levels", "new_event_id"]

_counter = itertools.count(1)


def _version(room_version: RoomVersion | str) -> RoomVersion:
    return room_version if isinstance(room_version, RoomVersion) else get_room_version(room_version)


def new_event_id(room_version: RoomVersion | str, sender: str = "@x:example.org", hint: str = "ev") -> str:
    """A unique event id in the shape of the room version (v1/v2 ids carry a server name)."""
    rv = _version(room_version)
    n = next(_counter)
    if rv.event_id_in_event:
        return f"${hint}{n}:{sender.partition(':')[2] or 'example.org'}"
    return f"${hint}{n}"


def _refs(rv: RoomVersion, refs: Iterable[Event | str]) -> list[Any]:
    ids = [r.event_id if isinstance(r, Event) else r for r in refs]
    if rv.event_id_in_event:  # v1/v2 reference format: [event_id, {hashes}]
        return [[i, {"sha256": "x"}] for i in ids]
    return ids


def make_event(
    room_version: RoomVersion | str,
    type: str,
    sender: str,
    content: Mapping[str, Any] | None = None,
    state_key: str | None = None,
    event_id: str | None = None,
    *,
    room_id: str = "!room:example.org",
    auth_events: Sequence[Event | str] = (),
    prev_events: Sequence[Event | str] = (),
    depth: int = 1,
    origin_server_ts: int = 1_700_000_000_000,
    redacts: str | None = None,
    signatures: Mapping[str, Any] | None = None,
    rejected_reason: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Event:
    """One event. For a v12 m.room.create, room_id is derived from the event id ("!" + id[1:]).

    `redacts` goes to content (v11+) or the top level (before). `signatures` defaults to one
    entry for the sender's server; `extra` adds or overrides top-level PDU fields.
    """
    rv = _version(room_version)
    event_id = event_id or new_event_id(rv, sender, "create" if type == "m.room.create" else "ev")
    content = dict(content or {})
    origin = sender.partition(":")[2]
    pdu: dict[str, Any] = {
        "type": type,
        "sender": sender,
        "content": content,
        "room_id": room_id,
        "auth_events": _refs(rv, auth_events),
        "prev_events": _refs(rv, prev_events),
        "depth": depth,
        "origin_server_ts": origin_server_ts,
        "hashes": {"sha256": "x"},
        "signatures": dict(signatures) if signatures is not None else {origin: {"ed25519:a": "x"}},
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if rv.updated_redaction_rules:
            content["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    if rv.event_id_in_event:
        pdu["event_id"] = event_id
    derived_room_id = None
    if rv.room_id_is_create_event_hash and type == "m.room.create" and state_key == "":
        del pdu["room_id"]
        derived_room_id = "!" + event_id[1:]
    if extra:
        pdu.update(extra)
    return Event(pdu, rv, event_id, room_id=derived_room_id, rejected_reason=rejected_reason)


def default_power_levels(rv: RoomVersion, creator: str) -> dict[str, Any]:
    """Power levels like a fresh createRoom: the creator at 100 (v12: creators are implicit)."""
    return {
        "users": {} if rv.privileged_creators else {creator: 100},
        "users_default": 0,
        "events": {"m.room.power_levels": 100, "m.room.history_visibility": 100},
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
    }


@dataclass
class RoomBuilder:
    """A room under construction: its events in order and its current state."""

    room_version: RoomVersion
    room_id: str
    events: list[Event] = field(default_factory=list)
    state: dict[StateKey, Event] = field(default_factory=dict)

    @property
    def create(self) -> Event:
        return self.state[("m.room.create", "")]

    def auth_events_for(
        self, type: str, sender: str, content: Mapping[str, Any], state_key: str | None
    ) -> list[Event]:
        keys = auth_types_for_event(self.room_version, type, state_key, sender, content)
        return [self.state[k] for k in keys if k in self.state]

    def build(
        self,
        type: str,
        sender: str,
        content: Mapping[str, Any] | None = None,
        state_key: str | None = None,
        *,
        auth_events: Sequence[Event | str] | None = None,
        prev_events: Sequence[Event | str] | None = None,
        **kwargs: Any,
    ) -> Event:
        """The next event (not added): auth events from the current state, prev = last event."""
        content = content or {}
        if auth_events is None:
            auth_events = self.auth_events_for(type, sender, content, state_key)
        if prev_events is None:
            prev_events = self.events[-1:]
        depth = max((e.depth for e in self.events), default=0) + 1
        return make_event(
            self.room_version,
            type,
            sender,
            content,
            state_key,
            room_id=self.room_id,
            auth_events=auth_events,
            prev_events=prev_events,
            depth=depth,
            **kwargs,
        )

    def append(self, event: Event) -> Event:
        """Add an event as accepted: it becomes the last event and, if state, current state."""
        self.events.append(event)
        if event.is_state():
            self.state[event.state_tuple] = event
        return event

    def add(
        self,
        type: str,
        sender: str,
        content: Mapping[str, Any] | None = None,
        state_key: str | None = None,
        **kwargs: Any,
    ) -> Event:
        """build() then append(). No auth check: tests may need states the rules would refuse."""
        return self.append(self.build(type, sender, content, state_key, **kwargs))

    def join(self, user: str, **content: Any) -> Event:
        return self.add("m.room.member", user, {"membership": "join", **content}, user)

    def member(self, sender: str, target: str, membership: str, **content: Any) -> Event:
        return self.add("m.room.member", sender, {"membership": membership, **content}, target)


def make_room(
    room_version: RoomVersion | str = "10",
    creator: str = "@creator:example.org",
    *,
    join_rule: str | None = "public",
    power_levels: Mapping[str, Any] | None = None,
    members: Iterable[str] = (),
    create_content: Mapping[str, Any] | None = None,
) -> RoomBuilder:
    """create, creator join, power_levels, join_rules (if join_rule), then a join per member.

    `power_levels` replaces the default content entirely (None: default_power_levels()). Before
    v11 the create content carries `creator`. Members are appended without auth checks.
    """
    rv = _version(room_version)
    content: dict[str, Any] = {"room_version": rv.identifier}
    if not rv.implicit_room_creator:
        content["creator"] = creator
    content.update(create_content or {})
    create_id = new_event_id(rv, creator, "create")
    room_id = (
        "!" + create_id[1:]
        if rv.room_id_is_create_event_hash
        else f"!room{create_id[1:].partition(':')[0]}:{creator.partition(':')[2]}"
    )
    room = RoomBuilder(rv, room_id)
    room.append(
        make_event(rv, "m.room.create", creator, content, "", create_id, room_id=room_id, depth=1)
    )
    room.join(creator)
    pl = default_power_levels(rv, creator) if power_levels is None else power_levels
    room.add("m.room.power_levels", creator, pl, "")
    if join_rule is not None:
        room.add("m.room.join_rules", creator, {"join_rule": join_rule}, "")
    for user in members:
        room.join(user)
    return room
