"""Power level reading: defaults, creators, stringy/floaty values by room version."""

from __future__ import annotations

import math

import pytest

from dendrite_lite.events.power_levels import (
    event_power_level,
    is_valid_user_id,
    named_power_level,
    notification_power_level,
    parse_power_level,
    room_creators,
    user_power_level,
)
from dendrite_lite.events.room_versions import get_room_version
from tests.helpers import make_event

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:other.org"


def _create(version: str, sender: str = ALICE, **content: object):
    rv = get_room_version(version)
    c = dict(content)
    if not rv.implicit_room_creator:
        c.setdefault("creator", sender)
    return make_event(rv, "m.room.create", sender, c, "")


def _pl(version: str, content: dict[str, object]):
    return make_event(version, "m.room.power_levels", ALICE, content, "")


@pytest.mark.parametrize(
    ("version", "value", "expected"),
    [
        ("1", 5, 5),
        ("1", "100", 100),
        ("1", " +007 ", 7),
        ("1", "-100", -100),
        ("1", "1_000", None),  # int() would take it; the spec grammar does not
        ("1", "1.5", None),
        ("1", "abc", None),
        ("1", 50.57, 50),  # v1-floaty-power-levels: truncate
        ("1", -50.9, -50),
        ("1", 5.114698e4, 51146),
        ("5", math.inf, None),
        ("5", math.nan, None),
        ("6", 50.5, None),  # strict canonical JSON: no floats from v6
        ("6", "50", 50),
        ("9", "50", 50),
        ("10", "50", None),
        ("10", 50.0, None),
        ("10", 50, 50),
        ("1", True, None),  # a JSON boolean is not an integer
        ("10", True, None),
        ("1", None, None),
    ],
)
def test_parse_power_level(version: str, value: object, expected: int | None) -> None:
    assert parse_power_level(value, get_room_version(version)) == expected


@pytest.mark.parametrize(
    ("user_id", "ok"),
    [
        ("@alice:example.org", True),
        ("@Alice Historic:example.org:8448", True),
        ("@:example.org", True),  # historical empty localpart must be accepted
        ("alice:example.org", False),
        ("@alice", False),
        ("@alice:", False),
        ("@a\x00b:example.org", False),
        ("@" + "a" * 250 + ":example.org", False),
        (5, False),
    ],
)
def test_is_valid_user_id(user_id: object, ok: bool) -> None:
    assert is_valid_user_id(user_id) is ok


@pytest.mark.parametrize("version", ["1", "6", "10", "11"])
def test_no_power_levels_creator_100_others_0(version: str) -> None:
    create = _create(version)
    assert user_power_level(ALICE, None, create) == 100
    assert user_power_level(BOB, None, create) == 0


def test_v11_creator_is_sender_not_content_creator() -> None:
    create = _create("11", ALICE, creator=BOB)
    assert user_power_level(ALICE, None, create) == 100
    assert user_power_level(BOB, None, create) == 0


def test_v10_creator_is_content_creator() -> None:
    create = make_event("10", "m.room.create", ALICE, {"creator": BOB}, "")
    assert user_power_level(BOB, None, create) == 100
    assert user_power_level(ALICE, None, create) == 0


def test_v12_creators_infinite_with_or_without_power_levels() -> None:
    create = _create("12", ALICE, additional_creators=[BOB])
    pl = _pl("12", {"users": {ALICE: 10, CAROL: 60}, "users_default": 5})
    assert user_power_level(ALICE, None, create) == math.inf
    assert user_power_level(BOB, None, create) == math.inf
    assert user_power_level(CAROL, None, create) == 0
    assert user_power_level(ALICE, pl, create) == math.inf  # cannot be demoted via users
    assert user_power_level(CAROL, pl, create) == 60
    assert user_power_level("@dave:example.org", pl, create) == 5
    assert room_creators(create) == (ALICE, BOB)


def test_users_and_users_default_with_strings_before_v10() -> None:
    create = _create("9")
    pl = _pl("9", {"users": {BOB: "75"}, "users_default": "3"})
    assert user_power_level(BOB, pl, create) == 75
    assert user_power_level(CAROL, pl, create) == 3
    # The creator has no special level once a power levels event exists.
    assert user_power_level(ALICE, pl, create) == 3


def test_string_values_ignored_in_v10() -> None:
    create = _create("10")
    pl = _pl("10", {"users": {BOB: "75"}, "users_default": 1})
    assert user_power_level(BOB, pl, create) == 1


def test_event_power_level_defaults_and_overrides() -> None:
    assert event_power_level("m.room.message", None, None) == 0
    assert event_power_level("m.room.name", "", None) == 50
    pl = _pl("10", {"events": {"m.room.name": 20, "m.custom": 7}, "state_default": 40,
                    "events_default": 3})
    assert event_power_level("m.room.name", "", pl) == 20
    assert event_power_level("m.custom", None, pl) == 7
    assert event_power_level("m.room.topic", "", pl) == 40
    assert event_power_level("m.room.message", None, pl) == 3
    empty = _pl("10", {})
    assert event_power_level("m.room.topic", "", empty) == 50
    assert event_power_level("m.room.message", None, empty) == 0


def test_named_and_notification_levels() -> None:
    assert [named_power_level(n, None) for n in ("invite", "kick", "ban", "redact")] == [0, 50, 50, 50]
    pl = _pl("3", {"invite": "10", "kick": 60.7, "notifications": {"room": "20"}})
    assert named_power_level("invite", pl) == 10
    assert named_power_level("kick", pl) == 60
    assert named_power_level("ban", pl) == 50
    assert notification_power_level("room", pl) == 20
    assert notification_power_level("room", None) == 50
