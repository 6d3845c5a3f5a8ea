"""A normal room's opening chain passes auth in every version, checked both ways."""

from __future__ import annotations

import pytest

from dendrite_lite.events.auth import (
    auth_types_for_event,
    check_auth,
    check_auth_events_selection,
)
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from tests.helpers import make_room

ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS)
BOB = "@bob:example.org"
CAROL = "@carol:other.org"


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_room_chain_passes_against_own_auth_events(version: str) -> None:
    room = make_room(version, members=[BOB, CAROL])
    room.add("m.room.message", BOB, {"body": "hi", "msgtype": "m.text"})
    room.add("m.room.name", room.create.sender, {"name": "n"}, "")
    by_id = {e.event_id: e for e in room.events}
    for event in room.events:
        auth = [by_id[i] for i in event.auth_event_ids]
        check_auth_events_selection(event, auth)
        state = {a.state_tuple: a for a in auth}
        state.setdefault(("m.room.create", ""), room.create)  # v12: derivable from the room id
        check_auth(event, state)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_room_chain_passes_against_state_before(version: str) -> None:
    room = make_room(version, members=[BOB])
    state: dict = {}
    for event in room.events:
        check_auth(event, state)
        state[event.state_tuple] = event


def test_auth_types_for_member_events() -> None:
    v10 = get_room_version("10")
    join = auth_types_for_event(
        v10, "m.room.member", BOB, BOB,
        {"membership": "join", "join_authorised_via_users_server": CAROL},
    )
    assert join == [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.member", BOB),
        ("m.room.join_rules", ""),
        ("m.room.member", CAROL),
    ]
    invite = auth_types_for_event(
        v10, "m.room.member", CAROL, BOB,
        {"membership": "invite", "third_party_invite": {"signed": {"token": "tok", "mxid": CAROL}}},
    )
    assert invite == [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.member", BOB),
        ("m.room.member", CAROL),
        ("m.room.join_rules", ""),
        ("m.room.third_party_invite", "tok"),
    ]
    ban = auth_types_for_event(v10, "m.room.member", CAROL, BOB, {"membership": "ban"})
    assert ban == [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.member", BOB),
        ("m.room.member", CAROL),
    ]


def test_auth_types_version_differences() -> None:
    via = {"membership": "join", "join_authorised_via_users_server": CAROL}
    # Before v8 there are no restricted rooms, so the authorising user is not selected.
    assert ("m.room.member", CAROL) not in auth_types_for_event(
        get_room_version("7"), "m.room.member", BOB, BOB, via
    )
    # v12: the create event is never selected.
    assert auth_types_for_event(get_room_version("12"), "m.room.message", None, BOB, {}) == [
        ("m.room.power_levels", ""),
        ("m.room.member", BOB),
    ]
    # knock selects join rules from v7 only.
    knock = {"membership": "knock"}
    assert ("m.room.join_rules", "") in auth_types_for_event(
        get_room_version("7"), "m.room.member", BOB, BOB, knock
    )
    assert ("m.room.join_rules", "") not in auth_types_for_event(
        get_room_version("6"), "m.room.member", BOB, BOB, knock
    )
    assert auth_types_for_event(get_room_version("1"), "m.room.create", "", BOB, {}) == []
