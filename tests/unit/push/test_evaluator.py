"""Evaluating rules: kind order, user rules vs defaults, each condition kind, actions, caching."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.push import (
    NO_ACTIONS,
    add_rule,
    compile_ruleset,
    compiled_for_user,
    evaluate,
    full_ruleset,
    prepare_event,
    set_actions,
    set_enabled,
)
from dendrite_lite.push.conditions import parse_member_count, split_key
from dendrite_lite.push.evaluator import actions_from_list

ME = "@alice:example.org"
OTHER = "@bob:example.org"
ROOM = "!room:example.org"


def _message(body: str = "hello", sender: str = OTHER, **content: Any) -> dict[str, Any]:
    return {"type": "m.room.message", "sender": sender, "room_id": ROOM, "event_id": "$e",
            "content": {"msgtype": "m.text", "body": body, **content}}


def _eval(rules: Any, event: Any, *, members: int = 10, display_name: str | None = "Alice",
          sender_level: int = 0, user_id: str = ME) -> Any:
    ruleset = compiled_for_user(user_id, rules) if "global" not in rules else rules
    return evaluate(ruleset, event, user_id=user_id, display_name=display_name,
                    room_member_count=members, sender_power_level=sender_level,
                    power_levels_content=None)


def _override(rules: dict[str, Any], rule_id: str, conditions: list[Any],
              actions: list[Any] | None = None, kind: str = "override") -> dict[str, Any]:
    body = {"conditions": conditions, "actions": ["notify"] if actions is None else actions}
    return add_rule(rules, kind, rule_id, body)


# --- order --------------------------------------------------------------------------------------


def test_kinds_are_checked_in_order() -> None:
    event = _message("I like cake")
    rules: dict[str, Any] = {}
    rules = add_rule(rules, "underride", "u", {"conditions": [], "actions": ["notify"]})
    assert _eval(rules, event).rule_id == "u"  # user underride before default underride
    rules = add_rule(rules, "sender", OTHER, {"actions": ["notify", {"set_tweak": "sound", "value": "s"}]})
    assert _eval(rules, event).rule_id == OTHER
    rules = add_rule(rules, "room", ROOM, {"actions": []})
    assert _eval(rules, event).rule_id == ROOM
    rules = add_rule(rules, "content", "cake", {"pattern": "cake", "actions": ["notify"]})
    assert _eval(rules, event).rule_id == "cake"
    rules = _override(rules, "o", [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}])
    assert (_eval(rules, event).rule_id, _eval(rules, event).kind) == ("o", "override")
    rules = set_enabled(rules, "override", ".m.rule.master", True)
    assert _eval(rules, event).rule_id == ".m.rule.master"


def test_user_override_beats_default_override() -> None:
    notice = _message(msgtype="m.notice")
    rules = _override({}, "loud-notices", [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}])
    result = _eval(rules, notice)
    assert result.rule_id == "loud-notices" and result.notify


def test_order_within_kind_follows_before_after() -> None:
    event = _message("tea time")
    rules = add_rule({}, "content", "tea", {"pattern": "tea", "actions": ["notify"]})
    rules = add_rule(rules, "content", "time", {"pattern": "time", "actions": []})
    assert _eval(rules, event).rule_id == "time"  # newest first
    rules = add_rule(rules, "content", "tea", {"pattern": "tea", "actions": ["notify"]}, before="time")
    assert _eval(rules, event).rule_id == "tea"


def test_disabled_rules_never_match() -> None:
    rules = add_rule({}, "sender", OTHER, {"actions": []})
    rules = set_enabled(rules, "sender", OTHER, False)
    assert _eval(rules, _message()).rule_id == ".m.rule.message"
    rules = set_enabled(rules, "underride", ".m.rule.message", False)
    assert _eval(rules, _message()) is NO_ACTIONS


def test_changed_actions_of_default_rule_apply() -> None:
    rules = set_actions({}, "underride", ".m.rule.message", [])
    result = _eval(rules, _message())
    assert result.rule_id == ".m.rule.message" and not result.notify


# --- room, sender, content rules ---------------------------------------------------------------


def test_room_and_sender_rules_are_exact() -> None:
    rules = add_rule({}, "room", ROOM, {"actions": []})
    assert _eval(rules, _message()).rule_id == ROOM
    assert _eval(rules, {**_message(), "room_id": "!other:example.org"}).rule_id == ".m.rule.message"
    rules = add_rule({}, "sender", OTHER, {"actions": []})
    assert _eval(rules, _message()).rule_id == OTHER
    assert _eval(rules, _message(sender="@BOB:example.org")).rule_id == ".m.rule.message"


def test_content_rule_matches_words_of_the_body_only() -> None:
    rules = add_rule({}, "content", "c", {"pattern": "cake*lie", "actions": ["notify"]})
    assert _eval(rules, _message("The CAKE is a lie.")).rule_id == "c"
    assert _eval(rules, _message("cakes are lies")).rule_id == ".m.rule.message"
    no_body = {"type": "m.room.message", "sender": OTHER, "room_id": ROOM, "content": {"b": "cake lie"}}
    assert _eval(rules, no_body).rule_id == ".m.rule.message"
    int_body = {**no_body, "content": {"body": 5}}
    assert _eval(rules, int_body).rule_id == ".m.rule.message"


# --- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "event_content", "expected"),
    [
        ({"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}, {"topic": "Lunch plans"}, True),
        ({"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}, {"topic": " lunch"}, False),
        ({"kind": "event_match", "key": "content.topic", "pattern": "*"}, {"topic": None}, False),
        ({"kind": "event_match", "key": "content.topic", "pattern": "*"}, {}, False),
        ({"kind": "event_match", "key": "content.topic", "pattern": "*"}, {"topic": ["x"]}, False),
        # only content.body is word-bounded: other keys match the whole value
        ({"kind": "event_match", "key": "content.topic", "pattern": "lunch"}, {"topic": "lunch time"}, False),
        ({"kind": "event_match", "key": "content.body", "pattern": "lunch"}, {"body": "lunch time"}, True),
        # dotted paths with escapes
        ({"kind": "event_match", "key": "content.m\\.x.y", "pattern": "v"}, {"m.x": {"y": "v"}}, True),
        ({"kind": "event_match", "key": "content.m.x.y", "pattern": "v"}, {"m.x": {"y": "v"}}, False),
        ({"kind": "event_match", "key": "content.m.x.y", "pattern": "v"}, {"m": {"x": {"y": "v"}}}, True),
        ({"kind": "event_match", "key": "content.m\\\\foo", "pattern": "v"}, {"m\\foo": "v"}, True),
        ({"kind": "event_match", "key": "content.a\\xb", "pattern": "v"}, {"a\\xb": "v"}, True),
        ({"kind": "event_match", "key": "content.body.x", "pattern": "*"}, {"body": "str"}, False),
        # event_property_is: exact, typed
        ({"kind": "event_property_is", "key": "content.m\\.federate", "value": True}, {"m.federate": True}, True),
        ({"kind": "event_property_is", "key": "content.m\\.federate", "value": True}, {"m.federate": "true"}, False),
        ({"kind": "event_property_is", "key": "content.m\\.federate", "value": True}, {"m.federate": 1}, False),
        ({"kind": "event_property_is", "key": "content.n", "value": 1}, {"n": True}, False),
        ({"kind": "event_property_is", "key": "content.n", "value": 1}, {"n": 1.0}, False),
        ({"kind": "event_property_is", "key": "content.n", "value": 1}, {"n": 1}, True),
        ({"kind": "event_property_is", "key": "content.n", "value": None}, {"n": None}, True),
        ({"kind": "event_property_is", "key": "content.n", "value": None}, {}, False),
        ({"kind": "event_property_is", "key": "content.n", "value": "A"}, {"n": "a"}, False),
        ({"kind": "event_property_is", "key": "content.n", "value": 1}, {"n": [1]}, False),
        # event_property_contains
        ({"kind": "event_property_contains", "key": "content.alt_aliases", "value": "#myroom:example.com"},
         {"alt_aliases": ["#somewhere:example.org", "#myroom:example.com"]}, True),
        ({"kind": "event_property_contains", "key": "content.alt_aliases", "value": ":example.com"},
         {"alt_aliases": ["#myroom:example.com"]}, False),
        ({"kind": "event_property_contains", "key": "content.a", "value": 1}, {"a": [True, {"x": 1}, [1]]}, False),
        ({"kind": "event_property_contains", "key": "content.a", "value": 1}, {"a": [True, 1]}, True),
        ({"kind": "event_property_contains", "key": "content.a", "value": None}, {"a": [None]}, True),
        ({"kind": "event_property_contains", "key": "content.a", "value": "x"}, {"a": "x"}, False),
        # unknown kinds never match
        ({"kind": "org.example.always"}, {}, False),
    ],
)
def test_event_conditions(condition: dict[str, Any], event_content: dict[str, Any], expected: bool) -> None:
    rules = _override({}, "r", [condition])
    event = {"type": "org.example.thing", "sender": OTHER, "room_id": ROOM, "content": event_content}
    assert (_eval(rules, event).rule_id == "r") is expected


def test_event_match_on_top_level_and_unsigned_keys() -> None:
    rules = _override({}, "r", [{"kind": "event_match", "key": "room_id", "pattern": "!ROOM:*"}])
    assert _eval(rules, _message()).rule_id == "r"


def test_unknown_condition_disables_the_whole_rule() -> None:
    rules = _override({}, "r", [{"kind": "event_match", "key": "type", "pattern": "m.room.message"},
                                {"kind": "org.example.new"}])
    assert _eval(rules, _message()).rule_id == ".m.rule.message"


def test_rule_without_conditions_matches_everything() -> None:
    rules = _override({}, "all", [], ["notify", {"set_tweak": "sound", "value": "x"}])
    state = {"type": "m.room.name", "state_key": "", "sender": OTHER, "room_id": ROOM, "content": {}}
    assert _eval(rules, state).rule_id == "all"


@pytest.mark.parametrize(
    ("is_", "members", "expected"),
    [
        ("2", 2, True), ("2", 3, False), ("==2", 2, True), ("==2", 1, False),
        ("<10", 9, True), ("<10", 10, False), (">10", 11, True), (">10", 10, False),
        ("<=10", 10, True), ("<=10", 11, False), (">=10", 10, True), (">=10", 9, False),
        ("0", 0, True),
    ],
)
def test_room_member_count(is_: str, members: int, expected: bool) -> None:
    rules = _override({}, "r", [{"kind": "room_member_count", "is": is_}])
    assert (_eval(rules, _message(), members=members).rule_id == "r") is expected


@pytest.mark.parametrize("bad", ["", "=2", "<>2", "2.5", "-1", " 2", "two", "=<2"])
def test_member_count_parser_rejects(bad: str) -> None:
    assert parse_member_count(bad) is None


def test_member_count_parser() -> None:
    assert parse_member_count("<=10") == ("<=", 10)
    assert parse_member_count("2") == ("==", 2)
    assert parse_member_count(2) is None


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("content.body", ("content", "body")),
        ("content.m\\.relates_to.rel_type", ("content", "m.relates_to", "rel_type")),
        ("content.m\\\\foo", ("content", "m\\foo")),
        ("content.a\\xb", ("content", "a\\xb")),
        ("a\\", ("a\\",)),
        ("a..b", ("a", "", "b")),
        ("", ("",)),
        ("a\\\\.b", ("a\\", "b")),
    ],
)
def test_split_key(key: str, path: tuple[str, ...]) -> None:
    assert split_key(key) == path


def test_contains_display_name() -> None:
    rules = _override({}, "dn", [{"kind": "contains_display_name"}], ["notify", {"set_tweak": "highlight"}])
    assert _eval(rules, _message("hey alice, look")).highlight
    assert _eval(rules, _message("hey Alice")).rule_id == "dn"
    assert _eval(rules, _message("hey alicex")).rule_id == ".m.rule.message"
    assert _eval(rules, _message("hey alicia"), display_name=None).rule_id == ".m.rule.message"
    assert _eval(rules, _message("hey"), display_name="").rule_id == ".m.rule.message"
    assert _eval(rules, _message("hi A*ice"), display_name="A*ice").rule_id == "dn"
    assert _eval(rules, _message("hi Abice"), display_name="A*ice").rule_id == ".m.rule.message"


def test_sender_notification_permission_with_custom_key() -> None:
    rules = _override({}, "r", [{"kind": "sender_notification_permission", "key": "custom"}])
    levels = {"notifications": {"custom": 20}}
    event = _message()
    assert evaluate(compiled_for_user(ME, rules), event, user_id=ME, room_member_count=5,
                    sender_power_level=20, power_levels_content=levels).rule_id == "r"
    assert evaluate(compiled_for_user(ME, rules), event, user_id=ME, room_member_count=5,
                    sender_power_level=19, power_levels_content=levels).rule_id == ".m.rule.message"
    # no key in notifications: default 50
    assert _eval(rules, event, sender_level=49).rule_id == ".m.rule.message"
    assert _eval(rules, event, sender_level=50).rule_id == "r"


# --- actions ------------------------------------------------------------------------------------


def test_actions_parsing() -> None:
    a = actions_from_list(["notify", {"set_tweak": "sound", "value": "bing"},
                           {"set_tweak": "highlight", "value": False}, {"set_tweak": "org.x", "value": 3}])
    assert (a.notify, a.highlight, a.sound) == (True, False, "bing")
    assert dict(a.tweaks) == {"sound": "bing", "highlight": False, "org.x": 3}
    b = actions_from_list(["dont_notify", "coalesce", {"set_tweak": "highlight"}])
    assert (b.notify, b.highlight, b.sound) == (False, True, None)
    assert actions_from_list("notify").notify is False
    assert actions_from_list([{"set_tweak": "sound", "value": 5}]).sound is None


def test_legacy_dont_notify_rule_is_an_empty_rule() -> None:
    # A document written by another server may still hold dont_notify.
    ruleset = full_ruleset(ME, {})
    ruleset["global"]["sender"].append({"rule_id": OTHER, "default": False, "enabled": True,
                                        "actions": ["dont_notify"]})
    result = _eval(ruleset, _message())
    assert result.rule_id == OTHER and not result.notify and not result.highlight


# --- sharing and caching ------------------------------------------------------------------------


def test_one_prepared_event_for_many_members() -> None:
    members = [f"@u{i}:example.org" for i in range(6)]
    event = prepare_event(_message("hi", sender=members[0], **{"m.mentions": {"user_ids": [members[3]]}}))
    results = {m: evaluate(compiled_for_user(m, {}), event, user_id=m, room_member_count=6,
                           sender_power_level=0) for m in members}
    assert results[members[0]] is NO_ACTIONS  # the sender
    assert results[members[3]].rule_id == ".m.rule.is_user_mention" and results[members[3]].highlight
    for m in members[1:3] + members[4:]:
        assert results[m].rule_id == ".m.rule.message" and not results[m].highlight
    # evaluation order does not leak results between members
    again = evaluate(compiled_for_user(members[1], {}), event, user_id=members[1],
                     room_member_count=6, sender_power_level=0)
    assert again.rule_id == ".m.rule.message"


def test_invite_for_me_shared_event() -> None:
    invite = prepare_event({"type": "m.room.member", "state_key": "@u2:x", "sender": OTHER,
                            "room_id": ROOM, "content": {"membership": "invite"}})
    for user, expected in [("@u1:x", ".m.rule.member_event"), ("@u2:x", ".m.rule.invite_for_me"),
                           ("@u3:x", ".m.rule.member_event")]:
        result = evaluate(compiled_for_user(user, {}), invite, user_id=user, room_member_count=3,
                          sender_power_level=0)
        assert result.rule_id == expected


def test_compiled_rules_are_cached_by_content() -> None:
    assert compiled_for_user(ME, {}) is compiled_for_user(ME, {"custom": {}, "defaults": {}})
    assert compiled_for_user(ME, {}) is not compiled_for_user(OTHER, {})
    edited = set_enabled({}, "underride", ".m.rule.message", False)
    assert compiled_for_user(ME, edited) is not compiled_for_user(ME, {})
    assert compiled_for_user(ME, edited) is compiled_for_user(ME, set_enabled({}, "underride", ".m.rule.message", False))
    assert len(compiled_for_user(ME, edited).rules) == len(compiled_for_user(ME, {}).rules) - 1


def test_compile_drops_disabled_and_unusable_rules() -> None:
    compiled = compile_ruleset(full_ruleset(ME, {}))
    # 15 specified defaults + 3 legacy mention rules, minus the disabled master
    assert len(compiled.rules) == 17
    broken = {"override": [{"rule_id": "x", "enabled": True, "conditions": "nope", "actions": []},
                           {"rule_id": "y", "enabled": True, "conditions": [{"kind": "event_match"}],
                            "actions": []}],
              "content": [{"rule_id": "z", "enabled": True, "actions": []}]}
    assert compile_ruleset(broken).rules == ()


def test_ruleset_dict_and_compiled_agree() -> None:
    rules = add_rule({}, "content", "hello", {"pattern": "hello", "actions": ["notify", {"set_tweak": "highlight"}]})
    event = _message("hello there")
    assert _eval(full_ruleset(ME, rules), event) == _eval(rules, event)
    assert _eval(rules, event).rule_id == "hello"
