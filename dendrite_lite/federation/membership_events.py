"""Membership events built outside the local pipeline: templates a resident server hands out
(make_join/make_leave/make_knock), invites built before the invitee's server countersigns them,
and the checks a received membership event must pass before it enters the pipeline.

Everything here reads the room's current state and forward extremities; nothing is persisted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.auth import AuthError, auth_types_for_event, check_auth
from dendrite_lite.events.builder import BuildError, EventRef, build_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.ids import server_name_of
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version
from dendrite_lite.federation.checks import PduDropped, parse_pdu
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as state_table

__all__ = [
    "MEMBER",
    "RoomHead",
    "load_room_head",
    "build_member_event",
    "template_of",
    "check_room_version_offered",
    "parse_member_event",
    "local_joined_members",
    "is_resident",
]

MEMBER = "m.room.member"
_CREATE: StateKey = ("m.room.create", "")
# Fields a joining server fills in itself; a template never carries them.
_NOT_IN_TEMPLATE = ("hashes", "signatures", "unsigned")


@dataclass(frozen=True, slots=True)
class RoomHead:
    """A room's version, current state ids and forward extremities, as one read saw them."""

    version: RoomVersion
    state: dict[StateKey, str]
    extremities: list[Event | EventRef]


async def load_room_head(storage: Storage, room_id: str) -> RoomHead | None:
    async def read(conn: aiosqlite.Connection) -> RoomHead | None:
        room = await rooms_table.select_room(conn, room_id)
        if room is None:
            return None
        rv = get_room_version(room.room_version)
        state = await state_table.select_current_state(conn, room_id)
        ext = await events_table.select_forward_extremities(conn, room_id)
        refs: list[Event | EventRef] = [EventRef(e, d) for e, d in ext]
        if rv.event_id_in_event:  # v1/v2 cite prev events with their reference hashes
            stored = await events_table.select_events(conn, [e for e, _ in ext])
            refs = [stored[e].event for e, _ in ext if e in stored]
        return RoomHead(rv, state, refs)

    return await storage.db.read(read)


async def build_member_event(
    storage: Storage,
    *,
    server_name: str,
    key: ServerKey,
    room_id: str,
    sender: str,
    target: str,
    content: Mapping[str, Any],
    check: bool = True,
) -> Event:
    """An m.room.member event on top of the room's current state, signed by us, checked against
    the current state unless `check` is False. 404 M_NOT_FOUND for a room we hold no state of,
    403 M_FORBIDDEN when the auth rules refuse it."""
    head = await load_room_head(storage, room_id)
    if head is None or _CREATE not in head.state or not head.extremities:
        raise MatrixError(Errcode.NOT_FOUND, f"Unknown room {room_id}")
    rv = head.version
    keys = auth_types_for_event(rv, MEMBER, target, sender, content)
    keys = [*keys, _CREATE]
    ids = [head.state[k] for k in keys if k in head.state]
    stored = await storage.db.read(lambda c: events_table.select_events(c, ids))
    state = {k: stored[head.state[k]].event for k in keys if k in head.state and head.state[k] in stored}
    try:
        event = build_event(
            room_version=rv, server_name=server_name, key=key, sender=sender,
            event_type=MEMBER, content=content, origin_server_ts=int(time.time() * 1000),
            state=state, prev_events=head.extremities, state_key=target, room_id=room_id,
        )
    except BuildError as e:
        raise MatrixError(Errcode.BAD_JSON, f"cannot build event: {e}") from None
    if check:
        try:
            check_auth(event, state)
        except AuthError as e:
            raise MatrixError(Errcode.FORBIDDEN, e.reason, rule=e.rule) from None
    return event


def template_of(event: Event) -> dict[str, Any]:
    """The unsigned template of a make_* answer: the event without hashes and signatures (and,
    before v3, without our event id: the joining server names its own event)."""
    pdu = {k: v for k, v in event.pdu.items() if k not in _NOT_IN_TEMPLATE}
    pdu.pop("event_id", None)
    pdu["origin"] = server_name_of(event.sender)
    return pdu


def check_room_version_offered(room_version: RoomVersion, offered: Sequence[str]) -> None:
    """make_join/make_knock `ver`: the room's version must be one the joining server supports
    (an absent `ver` means v1 only). 400 M_INCOMPATIBLE_ROOM_VERSION otherwise."""
    supported = list(offered) or ["1"]
    if room_version.identifier not in supported:
        raise MatrixError(
            Errcode.INCOMPATIBLE_ROOM_VERSION,
            f"Your homeserver does not support the features required to join this room "
            f"(version {room_version.identifier})",
            room_version=room_version.identifier,
        )


def supported_room_versions() -> list[str]:
    return list(KNOWN_ROOM_VERSIONS)


def parse_member_event(
    raw: Any,
    rv: RoomVersion,
    *,
    origin: str,
    room_id: str,
    event_id: str,
    membership: str,
    sender_is_target: bool = True,
) -> Event:
    """A membership event sent to one of our send_*/invite endpoints, checked as the spec asks
    (joins-v2.yaml, leaving-v2.yaml, knocks.yaml, invites-v2.yaml): format for the room version,
    the ids in the path, type m.room.member, the membership, the sender of the origin server and,
    except for invites, the state key equal to the sender. 400 M_BAD_JSON / M_INVALID_PARAM;
    403 M_FORBIDDEN for an event on behalf of another server or without the origin's hash and
    signature, as Synapse answers (it checks sender and signatures before the format)."""
    if not isinstance(raw, Mapping):
        raise MatrixError(Errcode.BAD_JSON, "the body must be an event")
    sender = raw.get("sender")
    if isinstance(sender, str) and sender.partition(":")[2] != origin:
        raise MatrixError(Errcode.FORBIDDEN, f"the sender {sender} is not a user of {origin}")
    try:
        event = parse_pdu(dict(raw), rv)
    except PduDropped as e:
        # A well-formed event that only lacks its hash and signature fails the signature check.
        signed_stub = {**raw, "hashes": {"sha256": "A"}, "signatures": {origin: {"ed25519:x": "A"}}}
        if signed_stub != raw and _well_formed(signed_stub, rv):
            raise MatrixError(Errcode.FORBIDDEN, f"signature check failed: not signed by {origin}") from None
        raise MatrixError(Errcode.BAD_JSON, e.reason) from None
    problem = None
    if event.event_id != event_id:
        problem = f"event id {event.event_id} does not match the path's {event_id}"
    elif event.room_id != room_id:
        problem = f"room id {event.room_id} does not match the path's {room_id}"
    elif event.type != MEMBER:
        problem = "the event is not an m.room.member event"
    elif event.membership != membership:
        problem = f"the membership is not {membership!r}"
    elif sender_is_target and event.state_key != event.sender:
        problem = "the state_key is not the sender"
    if problem is not None:
        raise MatrixError(Errcode.INVALID_PARAM, problem)
    return event


def _well_formed(raw: Mapping[str, Any], rv: RoomVersion) -> bool:
    try:
        parse_pdu(dict(raw), rv)
    except PduDropped:
        return False
    return True


def local_joined_members(members: Sequence[str], server_name: str) -> list[str]:
    return [m for m in members if server_name_of(m) == server_name]


async def is_resident(storage: Storage, room_id: str, server_name: str) -> bool:
    """Whether one of our users is joined to the room: only then does our state of it move."""
    members = await storage.db.read(lambda c: state_table.select_members(c, room_id, "join"))
    return bool(local_joined_members(members, server_name))
