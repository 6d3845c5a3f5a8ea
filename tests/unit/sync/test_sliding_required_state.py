"""Sliding sync required_state (sync/sliding/required_state.py) and request parsing
(sync/sliding/request.py): wildcards, $ME, $LAZY, combining configs, and the fields errors
name."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.sync.sliding.request import MAX_TIMELINE_LIMIT, parse_request
from dendrite_lite.sync.sliding.required_state import RequiredState

ME = "@me:x"


def test_exact_keys_me_and_state_key_wildcards() -> None:
    rs = RequiredState.parse(
        [("m.room.name", ""), ("m.room.member", "$ME"), ("m.space.parent", "*")], ME
    )
    assert rs.matches("m.room.name", "")
    assert not rs.matches("m.room.name", "other")
    assert rs.matches("m.room.member", ME)
    assert not rs.matches("m.room.member", "@you:x")
    assert rs.matches("m.space.parent", "!a:x") and rs.matches("m.space.parent", "!b:x")
    assert not rs.matches("m.room.topic", "")
    assert rs.named_members() == {ME} and not rs.all_members() and not rs.lazy_members


def test_type_wildcard_reaches_members_unless_they_are_lazy() -> None:
    everything = RequiredState.parse([("*", "*")], ME)
    assert everything.matches("m.room.member", "@you:x") and everything.all_members()
    lazy = RequiredState.parse([("*", "*"), ("m.room.member", "$LAZY")], ME)
    assert lazy.lazy_members and lazy.matches("m.room.topic", "")
    assert not lazy.matches("m.room.member", "@you:x") and not lazy.all_members()
    by_key = RequiredState.parse([("*", ""), ("m.room.member", "$LAZY")], ME)
    assert by_key.matches("m.room.create", "") and not by_key.matches(
        "m.space.child", "!a:x"
    )


def test_union_and_json_round_trip() -> None:
    a = RequiredState.parse([("m.room.name", "")], ME)
    b = RequiredState.parse([("m.room.member", "$LAZY"), ("m.room.topic", "")], ME)
    both = a.union(b)
    assert (
        both.lazy_members
        and both.matches("m.room.name", "")
        and both.matches("m.room.topic", "")
    )
    assert RequiredState.from_json(both.to_json()) == both


def test_request_reads_query_over_body_and_caps_the_timeline() -> None:
    req = parse_request(
        ME,
        "DEV",
        {
            "conn_id": "room-list",
            "pos": "1/s1",
            "timeout": 5,
            "lists": {
                "a": {"range": [0, 9], "timeline_limit": 5000, "required_state": []},
            },
            "room_subscriptions": {"!r:x": {"timeline_limit": 3, "required_state": []}},
            "extensions": {"e2ee": {"enabled": True}},
            "txn_id": "t1",
        },
        {"pos": "2/s2", "timeout": "30000"},
    )
    assert (req.pos, req.timeout_ms, req.conn_id, req.txn_id) == (
        "2/s2",
        30000,
        "room-list",
        "t1",
    )
    assert req.lists["a"].ranges == ((0, 9),)
    assert req.lists["a"].config.timeline_limit == MAX_TIMELINE_LIMIT
    assert req.room_subscriptions["!r:x"].timeline_limit == 3
    assert req.extensions == {"e2ee": {"enabled": True}}
    assert parse_request(ME, "DEV", {}, {}).lists == {}


@pytest.mark.parametrize(
    ("lists", "errcode", "field"),
    [
        (
            {"a": {"timeline_limit": True, "required_state": []}},
            "M_BAD_JSON",
            "lists.a.timeline_limit",
        ),
        (
            {"a": {"timeline_limit": 1, "required_state": [["t", 1]]}},
            "M_BAD_JSON",
            "lists.a.required_state[0]",
        ),
        (
            {"a": {"timeline_limit": 1, "required_state": [], "ranges": [[0, 1, 2]]}},
            "M_BAD_JSON",
            "lists.a.ranges[0]",
        ),
        (
            {
                "a": {
                    "timeline_limit": 1,
                    "required_state": [],
                    "filters": {"spaces": "!s:x"},
                }
            },
            "M_BAD_JSON",
            "lists.a.filters.spaces",
        ),
        (
            {
                "a": {
                    "timeline_limit": 1,
                    "required_state": [],
                    "filters": {"tags": [None]},
                }
            },
            "M_BAD_JSON",
            "lists.a.filters.tags",
        ),
        (
            {str(i): {"timeline_limit": 1, "required_state": []} for i in range(101)},
            "M_INVALID_PARAM",
            "lists",
        ),
    ],
)
def test_bad_lists_name_the_field(lists: dict, errcode: str, field: str) -> None:
    with pytest.raises(MatrixError) as err:
        parse_request(ME, "DEV", {"lists": lists}, {})
    assert err.value.errcode == errcode
    assert field in err.value.error
