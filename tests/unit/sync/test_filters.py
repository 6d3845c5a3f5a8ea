"""Filters: validation (errcodes, messages), matching, event_fields, the filter query parameter."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import yaml
from referencing.jsonschema import DRAFT202012

from dendrite_lite.errors import MatrixError
from dendrite_lite.push.conditions import split_key
from tests.spec_paths import CS_API_DIR
from dendrite_lite.sync.filters import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    EventFilter,
    Filter,
    RoomEventFilter,
    RoomFilter,
    apply_event_fields,
    event_contains_url,
    filter_from_stored,
    inline_filter_or_id,
    parse_filter,
    parse_filter_param,
    parse_room_event_filter,
    parse_room_event_filter_param,
)

SPEC_API = CS_API_DIR


def msg(type_: str = "m.room.message", sender: str = "@alice:a", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "sender": sender, "room_id": "!r:a", "content": {}, **extra}


def bad(value: Any) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        parse_filter(value)
    return info.value


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field_path"),
    [
        ({"room": {"timeline": {"limit": "10"}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"limit": -1}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"limit": 1.5}}}, "room.timeline.limit"),
        ({"room": {"timeline": {"limit": True}}}, "room.timeline.limit"),
        ({"presence": {"types": "m.presence"}}, "presence.types"),
        ({"presence": {"types": ["m.presence", 3]}}, "presence.types[1]"),
        ({"account_data": {"not_senders": ["alice"]}}, "account_data.not_senders[0]"),
        ({"room": {"state": {"senders": ["!room:a"]}}}, "room.state.senders[0]"),
        ({"room": {"rooms": ["@user:a"]}}, "room.rooms[0]"),
        ({"room": {"ephemeral": {"not_rooms": ["r:a"]}}}, "room.ephemeral.not_rooms[0]"),
        ({"room": {"include_leave": "true"}}, "room.include_leave"),
        ({"room": {"timeline": {"contains_url": 1}}}, "room.timeline.contains_url"),
        ({"room": {"state": {"lazy_load_members": "yes"}}}, "room.state.lazy_load_members"),
        ({"room": {"account_data": []}}, "room.account_data"),
        ({"room": "all"}, "room"),
        ({"presence": 5}, "presence"),
        ({"event_format": "raw"}, "event_format"),
        ({"event_fields": "content.body"}, "event_fields"),
        ({"event_fields": ["type", None]}, "event_fields[1]"),
    ],
)
def test_invalid_filters_are_bad_json_naming_the_field(body: Any, field_path: str) -> None:
    err = bad(body)
    assert err.errcode == "M_BAD_JSON"
    assert err.status == 400
    assert err.error.startswith(f"Invalid filter: {field_path} ")


def test_filter_must_be_an_object() -> None:
    values: list[Any] = [[], "x", 3, None]
    for value in values:
        err = bad(value)
        assert err.errcode == "M_BAD_JSON"
        assert err.error == "Invalid filter: filter must be a JSON object"


def test_error_message_shows_the_bad_value() -> None:
    assert bad({"room": {"timeline": {"limit": -5}}}).error == (
        "Invalid filter: room.timeline.limit must be a non-negative integer, got -5"
    )
    assert bad({"room": {"rooms": ["#alias:a"]}}).error == (
        'Invalid filter: room.rooms[0] must be one of the room IDs, got "#alias:a"'
    )


def test_empty_filter_is_all_defaults() -> None:
    f = parse_filter({})
    assert f == Filter()
    assert f.timeline_limit == DEFAULT_LIMIT == 10
    assert f.event_format == "client" and f.event_fields is None
    assert not f.lazy_load_members and not f.room.include_leave


def test_unknown_keys_and_nulls_are_accepted() -> None:
    f = parse_filter(
        {
            "org.example.future": {"x": 1},
            "room": {"timeline": {"org.matrix.labels": ["x"], "types": None, "limit": None}},
            "presence": None,
        }
    )
    assert f == Filter()


def test_limits_default_cap_and_zero() -> None:
    assert parse_filter({"room": {"timeline": {"limit": 20}}}).timeline_limit == 20
    assert parse_filter({"room": {"timeline": {"limit": 0}}}).timeline_limit == 0
    capped = parse_filter({"room": {"timeline": {"limit": 10**9}}})
    assert capped.timeline_limit == MAX_LIMIT == 100
    # The cap changes the effective limit, not what GET returns.
    assert capped.to_json() == {"room": {"timeline": {"limit": 10**9}}}
    # Other sections have no default limit: applying one would drop account data.
    assert parse_filter({}).room.account_data.limit is None
    assert parse_filter({"presence": {"limit": 3}}).presence.limit == 3


def test_fields_are_parsed_into_tuples() -> None:
    f = parse_filter(
        {
            "event_fields": ["type", "content.body"],
            "event_format": "federation",
            "room": {
                "rooms": ["!a:x"],
                "not_rooms": ["!b:x"],
                "include_leave": True,
                "timeline": {
                    "senders": ["@a:x"],
                    "contains_url": False,
                    "unread_thread_notifications": True,
                },
                "state": {"lazy_load_members": True, "include_redundant_members": True},
            },
        }
    )
    assert f.event_fields == ("type", "content.body")
    assert f.event_format == "federation"
    assert f.room.rooms == ("!a:x",) and f.room.not_rooms == ("!b:x",)
    assert f.room.include_leave is True
    assert f.room.timeline == RoomEventFilter(
        senders=("@a:x",), contains_url=False, unread_thread_notifications=True
    )
    assert f.lazy_load_members and f.include_redundant_members and f.unread_thread_notifications


def test_redundant_members_needs_lazy_loading() -> None:
    f = parse_filter({"room": {"state": {"include_redundant_members": True}}})
    assert not f.include_redundant_members


# --- matching ----------------------------------------------------------------------------------


def test_absent_lists_match_everything_empty_lists_nothing() -> None:
    assert EventFilter().matches(msg())
    assert not EventFilter(types=()).matches(msg())
    assert not EventFilter(senders=()).matches(msg())
    assert EventFilter(types=()).blocks_all() and EventFilter(senders=()).blocks_all()
    assert EventFilter(not_types=("*",)).blocks_all()
    assert not EventFilter(not_types=("m.*",)).blocks_all()
    assert RoomEventFilter(rooms=()).blocks_all() and not RoomEventFilter().blocks_all()


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("m.room.message", "m.room.message", True),
        ("m.room.message", "m.room.message.extra", False),
        ("m.room.*", "m.room.member", True),
        ("m.room.*", "m.room.", True),
        ("m.room.*", "m.roomx", False),
        ("*", "anything.at.all", True),
        ("*.call.*", "m.call.invite", True),
        ("*.call.*", "m.call", False),
        ("m.*.member", "m.room.member", True),
        ("m.*.member", "m.room.members", False),
        ("m.room.?", "m.room.x", False),  # only * is special
        ("m.room.[a]", "m.room.[a]", True),
        ("m.room.*", "M.ROOM.MEMBER", False),  # case-sensitive
    ],
)
def test_type_wildcards(pattern: str, event_type: str, expected: bool) -> None:
    assert EventFilter(types=(pattern,)).matches(msg(event_type)) is expected
    assert EventFilter(not_types=(pattern,)).matches(msg(event_type)) is not expected


def test_not_types_win_over_types() -> None:
    f = EventFilter(types=("m.room.*",), not_types=("m.room.member",))
    assert f.matches(msg("m.room.message"))
    assert not f.matches(msg("m.room.member"))
    assert not EventFilter(types=("m.room.message",), not_types=("*",)).matches(msg())


def test_senders_and_not_senders() -> None:
    f = EventFilter(senders=("@alice:a", "@bob:a"), not_senders=("@bob:a",))
    assert f.matches(msg(sender="@alice:a"))
    assert not f.matches(msg(sender="@bob:a"))  # not_senders wins
    assert not f.matches(msg(sender="@carol:a"))
    assert EventFilter(not_senders=("@bob:a",)).matches(msg(sender="@carol:a"))
    # Global account data has no sender: kept unless the filter names senders.
    account_data = {"type": "m.push_rules", "content": {}}
    assert EventFilter(not_senders=("@bob:a",)).matches(account_data)
    assert not EventFilter(senders=("@bob:a",)).matches(account_data)


def test_event_without_type_only_passes_without_type_list() -> None:
    assert EventFilter().matches({"sender": "@a:a"})
    assert EventFilter(not_types=("*",)).matches({"sender": "@a:a"})
    assert not EventFilter(types=("*",)).matches({"sender": "@a:a"})


def test_rooms_and_not_rooms() -> None:
    f = RoomEventFilter(rooms=("!r:a", "!s:a"), not_rooms=("!s:a",))
    assert f.matches(msg())  # room_id "!r:a" from the event
    assert not f.matches(msg(), "!s:a")  # not_rooms wins over rooms
    assert not f.matches(msg(), "!t:a")
    assert f.room_allowed("!r:a") and not f.room_allowed("!s:a")
    # An ephemeral event carries no room_id; the caller supplies it.
    typing = {"type": "m.typing", "content": {"user_ids": []}}
    assert f.matches(typing, "!r:a") and not f.matches(typing, "!t:a")
    assert RoomEventFilter(not_rooms=("!x:a",)).matches(typing)


def test_room_filter_room_allowed() -> None:
    f = parse_filter({"room": {"rooms": ["!a:x", "!b:x"], "not_rooms": ["!b:x"]}}).room
    assert f.room_allowed("!a:x")
    assert not f.room_allowed("!b:x")
    assert not f.room_allowed("!c:x")
    assert RoomFilter(not_rooms=("!a:x",)).room_allowed("!z:x")
    assert not RoomFilter(rooms=()).room_allowed("!a:x")


def test_contains_url() -> None:
    image = msg(content={"msgtype": "m.image", "url": "mxc://a/b"})
    text = msg(content={"msgtype": "m.text", "body": "hi"})
    assert event_contains_url(image) and not event_contains_url(text)
    assert not event_contains_url({"type": "x", "content": "not an object"})
    with_url = RoomEventFilter(contains_url=True)
    without_url = RoomEventFilter(contains_url=False)
    assert with_url.matches(image) and not with_url.matches(text)
    assert without_url.matches(text) and not without_url.matches(image)
    assert RoomEventFilter().matches(image) and RoomEventFilter().matches(text)


def test_room_event_filter_also_checks_types_and_senders() -> None:
    f = RoomEventFilter(types=("m.room.message",), not_senders=("@spam:a",))
    assert f.matches(msg())
    assert not f.matches(msg("m.reaction"))
    assert not f.matches(msg(sender="@spam:a"))


def test_include_leave() -> None:
    assert parse_filter({"room": {"include_leave": True}}).room.include_leave is True
    assert parse_filter({"room": {}}).room.include_leave is False


# --- event_fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("content.body", ["content", "body"]),
        ("type", ["type"]),
        (r"content.m\.relates_to", ["content", "m.relates_to"]),
        (r"content.m\\foo", ["content", "m\\foo"]),
        (r"content.m\xfoo", ["content", "m\\xfoo"]),  # other escapes stay literal
        ("content.", ["content", ""]),
        ("a\\", ["a\\"]),  # trailing lone backslash is literal
        (r"a\\.b", ["a\\", "b"]),  # escaped backslash, then a separating dot
    ],
)
def test_field_paths_split_per_the_appendix(path: str, parts: list[str]) -> None:
    # event_fields relies on push's parser for the appendix grammar; pin the cases it needs.
    assert list(split_key(path)) == parts


EVENT = {
    "type": "m.room.message",
    "sender": "@alice:a",
    "event_id": "$e",
    "content": {
        "body": "hi",
        "msgtype": "m.text",
        "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
        "m\\foo": 1,
    },
    "unsigned": {"age": 5},
}


def test_event_fields_projection() -> None:
    assert apply_event_fields(EVENT, ["type", "content.body"]) == {
        "type": "m.room.message",
        "content": {"body": "hi"},
    }
    assert apply_event_fields(EVENT, ["content.body", "content.msgtype", "missing.x"]) == {
        "content": {"body": "hi", "msgtype": "m.text"}
    }
    assert apply_event_fields(EVENT, [r"content.m\.relates_to.rel_type", r"content.m\\foo"]) == {
        "content": {"m.relates_to": {"rel_type": "m.thread"}, "m\\foo": 1}
    }
    # A path through a non-object, or to nothing, adds nothing.
    assert apply_event_fields(EVENT, ["type.x", "content.nope"]) == {}


def test_event_fields_whole_object_wins_and_original_is_untouched() -> None:
    original = json.loads(json.dumps(EVENT))
    for fields in (["content", "content.body"], ["content.body", "content"]):
        out = apply_event_fields(EVENT, fields)
        assert out == {"content": EVENT["content"]}
    out = apply_event_fields(EVENT, ["content.m\\.relates_to.rel_type"])
    out["content"]["extra"] = 1
    assert EVENT == original


def test_event_fields_absent_or_empty_keeps_the_event() -> None:
    assert apply_event_fields(EVENT, None) is EVENT
    assert apply_event_fields(EVENT, []) is EVENT


# --- the filter query parameter and stored filters ----------------------------------------------


def test_filter_param_inline_json() -> None:
    calls: list[str] = []

    def load(filter_id: str) -> dict[str, Any] | None:
        calls.append(filter_id)
        return None

    f = parse_filter_param('{"room":{"timeline":{"limit":3}}}', load)
    assert f.timeline_limit == 3 and calls == []
    assert parse_filter_param(None, load) == Filter()
    assert parse_filter_param("", load) == Filter()
    assert calls == []


def test_filter_param_by_id() -> None:
    stored = {"7": {"room": {"timeline": {"limit": 4}}}}
    f = parse_filter_param("7", stored.get)
    assert f.timeline_limit == 4
    with pytest.raises(MatrixError) as info:
        parse_filter_param("8", stored.get)
    assert (info.value.errcode, info.value.status) == ("M_INVALID_PARAM", 400)
    assert "8" in info.value.error


def test_filter_param_errors() -> None:
    with pytest.raises(MatrixError) as info:
        parse_filter_param("{not json", lambda _: None)
    assert (info.value.errcode, info.value.status) == ("M_NOT_JSON", 400)
    with pytest.raises(MatrixError) as info:
        parse_filter_param('{"room": {"timeline": {"limit": "x"}}}', lambda _: None)
    assert info.value.errcode == "M_BAD_JSON"
    assert "room.timeline.limit" in info.value.error


def test_inline_or_id_split_for_async_callers() -> None:
    assert inline_filter_or_id("abc") == "abc"
    assert inline_filter_or_id('{"event_format":"federation"}') == Filter(event_format="federation")
    assert filter_from_stored("abc", {"event_fields": ["type"]}).event_fields == ("type",)


def test_messages_filter_param() -> None:
    f = parse_room_event_filter_param('{"contains_url":true,"types":["m.room.message"]}')
    assert f == RoomEventFilter(contains_url=True, types=("m.room.message",))
    assert parse_room_event_filter_param(None) == RoomEventFilter()
    with pytest.raises(MatrixError) as info:
        parse_room_event_filter_param("[1")
    assert info.value.errcode == "M_NOT_JSON"
    with pytest.raises(MatrixError) as info:
        parse_room_event_filter_param('{"rooms":"!a:b"}')
    assert (info.value.errcode, info.value.error) == (
        "M_BAD_JSON",
        "Invalid filter: filter.rooms must be a list of room IDs",
    )
    with pytest.raises(MatrixError) as info:
        parse_room_event_filter_param("[]")
    assert info.value.errcode == "M_BAD_JSON"


def test_stored_filter_round_trips_exactly() -> None:
    # What was uploaded is what GET returns (matrix-js-sdk compares them), unknown keys included.
    body = {
        "room": {"timeline": {"limit": 10, "not_types": []}, "state": {"lazy_load_members": True}},
        "org.matrix.msc9999": True,
    }
    f = parse_filter(body)
    assert f.to_json() == body
    assert f.source == json.dumps(body, sort_keys=True, separators=(",", ":"))
    # The stored JSON parses back to the same filter.
    assert parse_filter(f.to_json()) == f
    assert filter_from_stored("1", json.loads(f.source)) == f


def test_filter_built_in_code_serialises_its_non_defaults() -> None:
    f = Filter(
        event_fields=("type",),
        presence=EventFilter(types=()),
        room=RoomFilter(
            include_leave=True,
            timeline=RoomEventFilter(limit=20, not_senders=("@x:a",), contains_url=False),
        ),
    )
    expected = {
        "event_fields": ["type"],
        "presence": {"types": []},
        "room": {
            "include_leave": True,
            "timeline": {"limit": 20, "not_senders": ["@x:a"], "contains_url": False},
        },
    }
    assert f.to_json() == expected
    assert parse_filter(expected) == f
    assert Filter().to_json() == {}


def test_filters_are_frozen_and_hashable() -> None:
    f = parse_filter({"room": {"timeline": {"types": ["a"]}}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.event_format = "federation"  # type: ignore[misc]
    assert hash(f) == hash(parse_filter({"room": {"timeline": {"types": ["a"]}}}))


# --- the spec's examples ------------------------------------------------------------------------


def _spec_filter_examples() -> list[Any]:
    api = yaml.safe_load((SPEC_API / "filter.yaml").read_text())
    post = api["paths"]["/user/{userId}/filter"]["post"]
    get = api["paths"]["/user/{userId}/filter/{filterId}"]["get"]
    return [
        post["requestBody"]["content"]["application/json"]["schema"]["example"],
        get["responses"]["200"]["content"]["application/json"]["examples"]["response"]["value"],
    ]


@pytest.mark.parametrize("example", _spec_filter_examples())
def test_spec_filter_examples_parse(example: dict[str, Any]) -> None:
    f = parse_filter(example)
    assert f.to_json() == example
    assert f.room.state.types == ("m.room.*",)
    assert f.room.timeline.limit == 10 and f.timeline_limit == 10
    assert f.room.timeline.not_senders == ("@spam:example.com",)
    assert f.room.ephemeral.types == ("m.receipt", "m.typing")
    assert f.presence.not_senders == ("@alice:example.com",)
    assert f.event_fields == ("type", "content", "sender")
    assert not f.room.timeline.matches(msg(), "!726s6s6q:example.com")
    assert f.room.timeline.matches(msg(sender="@bob:example.com"), "!other:example.com")
    assert not f.room.timeline.matches(msg(sender="@spam:example.com"), "!other:example.com")
    assert f.room.state.matches(msg("m.room.topic"), "!x:y")
    assert not f.room.state.matches(msg("m.space.child"), "!x:y")


def test_spec_messages_filter_example_parses() -> None:
    api = yaml.safe_load((SPEC_API / "message_pagination.yaml").read_text())
    params = api["paths"]["/rooms/{roomId}/messages"]["get"]["parameters"]
    example = next(p for p in params if p["name"] == "filter")["example"]
    assert parse_room_event_filter_param(example) == RoomEventFilter(contains_url=True)


class _SpecSchemas:
    """The spec's JSON schemas for the filter types, for cross-checking our validation."""

    def __init__(self) -> None:
        defs = SPEC_API / "definitions"
        self.store = {p.name: yaml.safe_load(p.read_text()) for p in defs.glob("*filter*.yaml")}
        self.registry: referencing.Registry[Any] = referencing.Registry().with_resources(
            (name, DRAFT202012.create_resource(schema)) for name, schema in self.store.items()
        )

    def validate(self, name: str, instance: Any) -> bool:
        validator = jsonschema.Draft202012Validator(self.store[name], registry=self.registry)
        try:
            validator.validate(instance)
        except jsonschema.ValidationError:
            return False
        return True


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"room": {"timeline": {"limit": 5, "types": ["m.*"]}}},
        {"presence": {"not_types": ["*"]}, "account_data": {"senders": ["@a:b"]}},
        {"room": {"include_leave": False, "rooms": ["!a:b"], "state": {"contains_url": True}}},
        {"room": {"timeline": {"limit": "5"}}},
        {"room": {"include_leave": "no"}},
        {"event_format": "other"},
        {"presence": {"types": [1]}},
        {"room": {"state": {"rooms": ["not-a-room"]}}},
    ],
)
def test_agrees_with_the_spec_schema(body: dict[str, Any]) -> None:
    schemas = _SpecSchemas()
    try:
        parse_filter(body)
        accepted = True
    except MatrixError:
        accepted = False
    assert accepted == schemas.validate("sync_filter.yaml", body)
