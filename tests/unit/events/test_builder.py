"""Building local events: prev_events, depth, auth_events selection, hashes, signature, ids.

Rooms are built from scratch with build_event itself, and every built event is also run through
validate_pdu, the signature check and the auth rules, so the builder's output is what the rest
of the pipeline accepts.
"""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key

from dendrite_lite.crypto.canonical import encode_base64
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import InMemoryKeyStore, ServerVerifyKey
from dendrite_lite.events.auth import check_auth, check_auth_events_selection
from dendrite_lite.events.builder import BuildError, EventRef, build_event, select_prev_events
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.format import validate_pdu
from dendrite_lite.events.hashes import check_content_hash, compute_reference_hash
from dendrite_lite.events.ids import is_valid_event_id, room_id_from_create_event
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version
from dendrite_lite.events.signing import verify_event_signatures

SERVER = "hs.example"
KEY = ServerKey(generate_signing_key("k"))
KEYS = InMemoryKeyStore({(SERVER, KEY.key_id): ServerVerifyKey(SERVER, KEY.key_id, KEY.verify_key, valid_until_ts=2**53)})
ALICE, BOB = f"@alice:{SERVER}", f"@bob:{SERVER}"
TS = 1_700_000_000_000


class Room:
    """A linear room built with build_event, tracking state and the forward extremity."""

    def __init__(self, rv: RoomVersion) -> None:
        self.rv = rv
        self.state: dict[StateKey, Event] = {}
        self.events: dict[str, Event] = {}
        self.extremities: list[Event] = []
        room_id = None if rv.room_id_is_create_event_hash else f"!room:{SERVER}"
        create_content = {"room_version": rv.identifier}
        if not rv.implicit_room_creator:
            create_content["creator"] = ALICE
        self.send("m.room.create", ALICE, create_content, state_key="", room_id=room_id)
        self.send("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE)
        # v12 creators have infinite power and must not be listed (auth rule 10.4).
        users = {} if rv.privileged_creators else {ALICE: 100}
        self.send("m.room.power_levels", ALICE, {"users": users}, state_key="")
        self.send("m.room.join_rules", ALICE, {"join_rule": "public"}, state_key="")

    def send(self, etype: str, sender: str, content: dict[str, Any], **kw: Any) -> Event:
        ev = build_event(
            room_version=self.rv,
            server_name=SERVER,
            key=KEY,
            sender=sender,
            event_type=etype,
            content=content,
            origin_server_ts=TS + len(self.events),
            state=self.state,
            prev_events=self.extremities,
            **kw,
        )
        # What the pipeline will do with it: format, signatures, hashes, auth.
        validate_pdu(ev.pdu, self.rv)
        verify_event_signatures(ev, self.rv, KEYS)
        assert check_content_hash(ev.pdu)
        auth = [self.events[i] for i in ev.auth_event_ids]
        check_auth_events_selection(ev, auth)
        check_auth(ev, self.state)
        self.events[ev.event_id] = ev
        self.extremities = [ev]
        if ev.is_state():
            self.state[ev.state_tuple] = ev
        return ev


ALL = list(KNOWN_ROOM_VERSIONS)


@pytest.mark.parametrize("version", ALL)
def test_built_room_passes_format_signature_hash_and_auth(version: str) -> None:
    room = Room(get_room_version(version))
    msg = room.send("m.room.message", ALICE, {"body": "hi"})
    assert is_valid_event_id(msg.event_id, room.rv)
    assert msg.depth == 5
    create = room.state[("m.room.create", "")]
    assert msg.room_id == create.room_id
    expected_auth = {room.state[("m.room.power_levels", "")].event_id, room.state[("m.room.member", ALICE)].event_id}
    if not room.rv.room_id_is_create_event_hash:
        expected_auth.add(create.event_id)
    assert set(msg.auth_event_ids) == expected_auth


def test_create_event_shape_v11_and_v12() -> None:
    v11 = Room(get_room_version("11")).state[("m.room.create", "")]
    assert v11.pdu["room_id"] == f"!room:{SERVER}"
    assert v11.pdu["prev_events"] == [] and v11.pdu["auth_events"] == [] and v11.depth == 1
    v12 = Room(get_room_version("12")).state[("m.room.create", "")]
    assert "room_id" not in v12.pdu
    assert v12.room_id == "!" + v12.event_id[1:] == room_id_from_create_event(v12.pdu, v12.room_version)


def test_v12_never_cites_the_create_event() -> None:
    room = Room(get_room_version("12"))
    join = room.send("m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    create_id = room.state[("m.room.create", "")].event_id
    assert create_id not in join.auth_event_ids
    assert set(join.auth_event_ids) == {
        room.state[("m.room.power_levels", "")].event_id,
        room.state[("m.room.join_rules", "")].event_id,
    }


def test_member_auth_events_include_target_and_join_rules() -> None:
    room = Room(get_room_version("10"))
    invite = room.send("m.room.member", ALICE, {"membership": "invite"}, state_key=BOB)
    assert set(invite.auth_event_ids) == {
        room.state[k].event_id
        for k in [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", ALICE), ("m.room.join_rules", "")]
    }
    join = room.send("m.room.member", BOB, {"membership": "join"}, state_key=BOB)
    assert invite.event_id in join.auth_event_ids  # the target's (= sender's) current membership


def test_v1_references_are_id_hash_pairs_and_ids_carry_the_server() -> None:
    room = Room(get_room_version("1"))
    msg = room.send("m.room.message", ALICE, {"body": "hi"})
    assert msg.event_id.endswith(":" + SERVER) and msg.pdu["event_id"] == msg.event_id
    prev = room.state[("m.room.join_rules", "")]
    assert msg.pdu["prev_events"] == [[prev.event_id, {"sha256": encode_base64(compute_reference_hash(prev.pdu, room.rv))}]]
    assert all(isinstance(r, list) and len(r) == 2 for r in msg.pdu["auth_events"])


@pytest.mark.parametrize(("version", "top_level"), [("10", True), ("11", False), ("12", False)])
def test_redacts_placement(version: str, top_level: bool) -> None:
    room = Room(get_room_version(version))
    msg = room.send("m.room.message", ALICE, {"body": "oops"})
    red = room.send("m.room.redaction", ALICE, {"reason": "r"}, redacts=msg.event_id)
    assert red.redacts == msg.event_id
    assert ("redacts" in red.pdu) is top_level
    assert ("redacts" in red.content) is (not top_level)


def test_prev_events_are_the_20_deepest_extremities() -> None:
    rv = get_room_version("11")
    refs = [EventRef(f"$e{i:02d}", depth=i) for i in range(30)] + [EventRef("$e29", depth=29)]
    chosen = select_prev_events(refs)
    assert [r.event_id for r in chosen] == [f"$e{i:02d}" for i in range(29, 9, -1)]
    room = Room(rv)
    ev = build_event(
        room_version=rv, server_name=SERVER, key=KEY, sender=ALICE, event_type="m.room.message",
        content={"body": "x"}, origin_server_ts=TS, state=room.state, prev_events=refs,
    )
    assert len(ev.prev_event_ids) == 20
    assert ev.depth == 30


def test_depth_is_capped_at_the_version_maximum() -> None:
    for version, cap in (("5", 2**63 - 1), ("6", 2**53 - 1)):
        room = Room(get_room_version(version))
        ev = build_event(
            room_version=room.rv, server_name=SERVER, key=KEY, sender=ALICE, event_type="m.room.message",
            content={}, origin_server_ts=TS, state=room.state, prev_events=[EventRef("$deep", depth=cap)],
        )
        assert ev.depth == cap
        validate_pdu(ev.pdu, room.rv)


def test_build_errors() -> None:
    rv = get_room_version("11")
    common: dict[str, Any] = dict(room_version=rv, server_name=SERVER, key=KEY, sender=ALICE, origin_server_ts=TS, prev_events=[])
    with pytest.raises(BuildError, match="no m.room.create in the state"):
        build_event(event_type="m.room.message", content={}, state={}, **common)
    with pytest.raises(BuildError, match="needs a room_id"):
        build_event(event_type="m.room.create", content={}, state_key="", state={}, **common)
    v1 = get_room_version("1")
    with pytest.raises(BuildError, match="needs its reference hash"):
        build_event(
            **{**common, "room_version": v1, "prev_events": [EventRef("$x:hs.example", 1)]},
            event_type="m.room.message", content={}, state={}, room_id="!r:hs.example",
        )


def test_unsigned_is_kept_but_not_signed() -> None:
    room = Room(get_room_version("11"))
    ev = room.send("m.room.message", ALICE, {"body": "x"}, unsigned={"transaction_id": "t1"})
    assert ev.unsigned == {"transaction_id": "t1"}
