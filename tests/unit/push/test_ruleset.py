"""Editing a user's push rules (pushrules.yaml) and the GET /pushrules/ shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from dendrite_lite.errors import MatrixError
from dendrite_lite.push import (
    add_rule,
    delete_rule,
    empty_user_rules,
    full_ruleset,
    get_rule,
    set_actions,
    set_enabled,
)
from dendrite_lite.push.default_rules import DEFAULT_RULE_IDS, KINDS
from tests.spec_paths import CS_API_DIR

ME = "@alice:example.org"
API_DIR = CS_API_DIR


# The one server-default content rule (legacy, shipped as Synapse does): after the user's rules.
CONTENT_DEFAULTS = [".m.rule.contains_user_name"]


def _ids(ruleset: dict[str, Any], kind: str) -> list[str]:
    return [r["rule_id"] for r in ruleset["global"][kind]]


def _errcode(exc: pytest.ExceptionInfo[MatrixError]) -> tuple[str, int]:
    return exc.value.errcode, exc.value.status


# --- schema -------------------------------------------------------------------------------------


def _retrieve(uri: str) -> Resource[Any]:
    path = Path(uri.removeprefix("file://"))
    return Resource.from_contents(yaml.safe_load(path.read_text()), default_specification=DRAFT202012)


def _get_pushrules_validator() -> jsonschema.protocols.Validator:
    """The 200 schema of GET /pushrules/, its $refs resolved relative to pushrules.yaml."""
    api_file = API_DIR / "pushrules.yaml"
    api = yaml.safe_load(api_file.read_text())
    schema = api["paths"]["/pushrules/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    schema = {"$id": api_file.as_uri(), **schema}
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    validator_cls = jsonschema.validators.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema"})
    return validator_cls(schema, registry=registry)


def _full_rule_validator() -> jsonschema.protocols.Validator:
    rule_file = API_DIR / "definitions" / "push_rule.yaml"
    schema = {"$id": rule_file.as_uri(), **yaml.safe_load(rule_file.read_text())}
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _busy_rules() -> dict[str, Any]:
    rules = empty_user_rules()
    rules = add_rule(rules, "override", "beer", {
        "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                       {"kind": "room_member_count", "is": "<=10"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}]})
    rules = add_rule(rules, "content", "cake", {"pattern": "cake", "actions": ["notify"]})
    rules = add_rule(rules, "room", "!dj234r78wl45Gh4D:matrix.org", {"actions": []})
    rules = add_rule(rules, "sender", "@spambot:matrix.org", {"actions": []})
    rules = add_rule(rules, "underride", "late", {"conditions": [], "actions": ["notify"]})
    return set_enabled(rules, "override", ".m.rule.master", True)


@pytest.mark.parametrize("user_rules", [{}, empty_user_rules(), _busy_rules()])
def test_get_response_validates_against_spec_schema(user_rules: dict[str, Any]) -> None:
    body = full_ruleset(ME, user_rules)
    _get_pushrules_validator().validate(body)
    json.dumps(body)  # plain JSON all the way down
    assert set(body) == {"global"} and tuple(body["global"]) == KINDS


def test_schema_validator_is_not_vacuous() -> None:
    body = full_ruleset(ME, {})
    del body["global"]["override"][0]["enabled"]
    with pytest.raises(jsonschema.ValidationError):
        _get_pushrules_validator().validate(body)
    bad_condition = full_ruleset(ME, {})
    bad_condition["global"]["override"][1]["conditions"][0] = {"key": "type"}  # no kind
    with pytest.raises(jsonschema.ValidationError):
        _get_pushrules_validator().validate(bad_condition)


def test_single_rule_validates_against_spec_schema() -> None:
    rules = _busy_rules()
    validator = _full_rule_validator()
    for kind, rule_id in [("content", "cake"), ("room", "!dj234r78wl45Gh4D:matrix.org"),
                          ("override", ".m.rule.is_user_mention"), ("underride", "late")]:
        validator.validate(get_rule(ME, rules, kind, rule_id))


# --- the full ruleset ---------------------------------------------------------------------------


def test_defaults_only() -> None:
    body = full_ruleset(ME, {})
    for kind in KINDS:
        assert _ids(body, kind) == list(DEFAULT_RULE_IDS[kind])
    assert all(r["default"] is True for kind in KINDS for r in body["global"][kind])


def test_user_rules_come_before_defaults_but_after_master() -> None:
    body = full_ruleset(ME, _busy_rules())
    assert _ids(body, "override")[:3] == [".m.rule.master", "beer", ".m.rule.suppress_notices"]
    assert _ids(body, "underride")[0] == "late"
    assert _ids(body, "underride")[1:] == list(DEFAULT_RULE_IDS["underride"])
    assert _ids(body, "content") == ["cake"] + CONTENT_DEFAULTS
    master = body["global"]["override"][0]
    assert master["enabled"] is True and master["default"] is True
    beer = body["global"]["override"][1]
    assert beer == {
        "rule_id": "beer", "default": False, "enabled": True,
        "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                       {"kind": "room_member_count", "is": "<=10"}],
        "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}],
    }
    assert body["global"]["room"] == [
        {"rule_id": "!dj234r78wl45Gh4D:matrix.org", "default": False, "enabled": True, "actions": []}
    ]
    assert body["global"]["content"][0]["pattern"] == "cake"


# --- add_rule -----------------------------------------------------------------------------------


def _add(rules: dict[str, Any], rule_id: str, **kw: Any) -> dict[str, Any]:
    return add_rule(rules, "content", rule_id, {"pattern": rule_id, "actions": ["notify"]}, **kw)


def test_new_rule_is_most_important_user_rule() -> None:
    rules = _add(_add(_add({}, "a"), "b"), "c")
    assert _ids(full_ruleset(ME, rules), "content") == ["c", "b", "a"] + CONTENT_DEFAULTS


def test_before_and_after() -> None:
    rules = _add(_add({}, "a"), "b")  # b, a
    rules = _add(rules, "x", before="a")
    assert _ids(full_ruleset(ME, rules), "content") == ["b", "x", "a"] + CONTENT_DEFAULTS
    rules = _add(rules, "y", after="a")
    assert _ids(full_ruleset(ME, rules), "content") == ["b", "x", "a", "y"] + CONTENT_DEFAULTS
    rules = _add(rules, "z", after="b")
    assert _ids(full_ruleset(ME, rules), "content") == ["b", "z", "x", "a", "y"] + CONTENT_DEFAULTS
    # both given: `before` wins
    rules = _add(rules, "w", before="b", after="y")
    assert _ids(full_ruleset(ME, rules), "content") == ["w", "b", "z", "x", "a", "y"] + CONTENT_DEFAULTS


def test_replacing_keeps_place_and_enabled_flag_unless_moved() -> None:
    rules = _add(_add(_add({}, "a"), "b"), "c")  # c, b, a
    rules = set_enabled(rules, "content", "b", False)
    rules = add_rule(rules, "content", "b", {"pattern": "bee", "actions": []})
    assert _ids(full_ruleset(ME, rules), "content") == ["c", "b", "a"] + CONTENT_DEFAULTS
    b = get_rule(ME, rules, "content", "b")
    assert b == {"rule_id": "b", "default": False, "enabled": False, "pattern": "bee", "actions": []}
    rules = _add(rules, "b", after="a")
    assert _ids(full_ruleset(ME, rules), "content") == ["c", "a", "b"] + CONTENT_DEFAULTS


def test_edits_do_not_mutate_their_argument() -> None:
    rules = _add({}, "a")
    snapshot = json.dumps(rules, sort_keys=True)
    _add(rules, "b")
    set_enabled(rules, "content", "a", False)
    set_actions(rules, "content", "a", [])
    set_enabled(rules, "override", ".m.rule.master", True)
    delete_rule(rules, "content", "a")
    assert json.dumps(rules, sort_keys=True) == snapshot


def test_rule_ids_are_unique_per_kind_only() -> None:
    rules = _add({}, "same")
    rules = add_rule(rules, "override", "same", {"actions": []})
    assert _ids(full_ruleset(ME, rules), "content") == ["same"] + CONTENT_DEFAULTS
    assert "same" in _ids(full_ruleset(ME, rules), "override")


def test_override_without_conditions_is_stored_with_empty_conditions() -> None:
    rules = add_rule({}, "underride", "all", {"actions": ["notify"]})
    assert get_rule(ME, rules, "underride", "all")["conditions"] == []


def test_room_and_sender_bodies_ignore_conditions_and_pattern() -> None:
    rules = add_rule({}, "room", "!r:x", {"actions": [], "conditions": [{"kind": "x"}], "pattern": "p"})
    assert get_rule(ME, rules, "room", "!r:x") == {"rule_id": "!r:x", "default": False,
                                                   "enabled": True, "actions": []}


def test_historical_actions_are_read_back_as_set() -> None:
    # The evaluator ignores them (test_evaluator.py); a client reads back what it set.
    rules = add_rule({}, "sender", "@spam:x", {"actions": ["dont_notify"]})
    assert get_rule(ME, rules, "sender", "@spam:x")["actions"] == ["dont_notify"]
    rules = set_actions(rules, "sender", "@spam:x", ["notify", "coalesce"])
    assert get_rule(ME, rules, "sender", "@spam:x")["actions"] == ["notify", "coalesce"]
    rules = set_actions(rules, "override", ".m.rule.master", ["dont_notify"])
    assert get_rule(ME, rules, "override", ".m.rule.master")["actions"] == ["dont_notify"]


def test_room_rule_id_need_not_be_a_room_id() -> None:
    rules = add_rule({}, "room", "#spam:example.com", {"actions": ["notify"]})
    assert get_rule(ME, rules, "room", "#spam:example.com")["rule_id"] == "#spam:example.com"


@pytest.mark.parametrize(
    ("kind", "rule_id", "body", "errcode"),
    [
        ("content", ".m.rule.mine", {"pattern": "x", "actions": []}, "M_INVALID_PARAM"),
        ("override", ".m.rule.master", {"conditions": [], "actions": []}, "M_INVALID_PARAM"),
        ("content", "a/b", {"pattern": "x", "actions": []}, "M_INVALID_PARAM"),
        ("content", "a\\b", {"pattern": "x", "actions": []}, "M_INVALID_PARAM"),
        ("content", "", {"pattern": "x", "actions": []}, "M_INVALID_PARAM"),
        ("global", "x", {"actions": []}, "M_INVALID_PARAM"),
        ("postcontent", "x", {"actions": []}, "M_INVALID_PARAM"),
        ("sender", "bob", {"actions": []}, "M_INVALID_PARAM"),
        ("sender", "@bob", {"actions": []}, "M_INVALID_PARAM"),
        ("content", "x", {"actions": []}, "M_BAD_JSON"),  # no pattern
        ("content", "x", {"pattern": 5, "actions": []}, "M_BAD_JSON"),
        ("content", "x", {"pattern": "x"}, "M_BAD_JSON"),  # no actions
        ("content", "x", {"pattern": "x", "actions": "notify"}, "M_BAD_JSON"),
        ("content", "x", {"pattern": "x", "actions": ["explode"]}, "M_BAD_JSON"),
        ("content", "x", {"pattern": "x", "actions": [{"value": 1}]}, "M_BAD_JSON"),
        ("content", "x", ["not", "an", "object"], "M_BAD_JSON"),
        ("override", "x", {"conditions": {}, "actions": []}, "M_BAD_JSON"),
        ("override", "x", {"conditions": ["event_match"], "actions": []}, "M_BAD_JSON"),
        ("override", "x", {"conditions": [{"key": "type"}], "actions": []}, "M_BAD_JSON"),
        ("override", "x", {"conditions": [{"kind": "event_match", "key": "type"}], "actions": []},
         "M_BAD_JSON"),
        ("override", "x", {"conditions": [{"kind": "event_property_is", "key": "k"}], "actions": []},
         "M_BAD_JSON"),
        ("override", "x", {"conditions": [{"kind": "event_property_is", "key": "k", "value": [1]}],
                           "actions": []}, "M_BAD_JSON"),
        ("override", "x", {"conditions": [{"kind": "event_property_contains", "key": "k",
                                           "value": 2**53}], "actions": []}, "M_BAD_JSON"),
        ("underride", "x", {"conditions": [{"kind": "room_member_count", "is": "=<2"}], "actions": []},
         "M_BAD_JSON"),
        ("underride", "x", {"conditions": [{"kind": "room_member_count", "is": 2}], "actions": []},
         "M_BAD_JSON"),
        ("underride", "x", {"conditions": [{"kind": "sender_notification_permission"}], "actions": []},
         "M_BAD_JSON"),
    ],
)
def test_add_rule_errors(kind: str, rule_id: str, body: Any, errcode: str) -> None:
    with pytest.raises(MatrixError) as exc:
        add_rule(_busy_rules(), kind, rule_id, body)
    assert _errcode(exc) == (errcode, 400)


def test_unknown_condition_kinds_are_accepted() -> None:
    # push.md: unrecognised conditions never match; storing them is fine.
    rules = add_rule({}, "override", "future", {"conditions": [{"kind": "org.example.future"}],
                                                "actions": ["notify"]})
    assert get_rule(ME, rules, "override", "future")["conditions"] == [{"kind": "org.example.future"}]


def test_room_ids_without_server_part_are_fine() -> None:
    rules = add_rule({}, "room", "!Abc123_-hashfromv12", {"actions": []})
    assert _ids(full_ruleset(ME, rules), "room") == ["!Abc123_-hashfromv12"]


def test_before_after_errors() -> None:
    rules = _add({}, "a")
    with pytest.raises(MatrixError) as exc:
        _add(rules, "x", before="missing")
    assert _errcode(exc) == ("M_UNKNOWN", 400)
    assert "missing" in exc.value.error
    with pytest.raises(MatrixError) as exc:
        _add(rules, "x", after="missing")
    assert _errcode(exc) == ("M_UNKNOWN", 400)
    with pytest.raises(MatrixError) as exc:
        add_rule(rules, "override", "x", {"actions": []}, before=".m.rule.suppress_notices")
    assert _errcode(exc) == ("M_INVALID_PARAM", 400)
    with pytest.raises(MatrixError) as exc:
        _add(rules, "a", before="a")
    assert _errcode(exc) == ("M_INVALID_PARAM", 400)
    # the anchor must be of the same kind
    rules = add_rule(rules, "override", "o", {"actions": []})
    with pytest.raises(MatrixError) as exc:
        _add(rules, "x", before="o")
    assert _errcode(exc) == ("M_UNKNOWN", 400)


# --- delete, enabled, actions, get ----------------------------------------------------------------


def test_delete() -> None:
    rules = _add(_add({}, "a"), "b")
    rules = delete_rule(rules, "content", "a")
    assert _ids(full_ruleset(ME, rules), "content") == ["b"] + CONTENT_DEFAULTS
    with pytest.raises(MatrixError) as exc:
        delete_rule(rules, "content", "a")
    assert _errcode(exc) == ("M_NOT_FOUND", 404)
    with pytest.raises(MatrixError) as exc:
        delete_rule(rules, "override", "b")  # wrong kind
    assert _errcode(exc) == ("M_NOT_FOUND", 404)


@pytest.mark.parametrize(("kind", "rule_id"), [("override", ".m.rule.master"), ("underride", ".m.rule.message")])
def test_predefined_rules_cannot_be_deleted(kind: str, rule_id: str) -> None:
    with pytest.raises(MatrixError) as exc:
        delete_rule({}, kind, rule_id)
    assert _errcode(exc) == ("M_INVALID_PARAM", 400)


def test_enable_disable_predefined_and_custom() -> None:
    rules = set_enabled({}, "underride", ".m.rule.message", False)
    assert get_rule(ME, rules, "underride", ".m.rule.message")["enabled"] is False
    assert rules["defaults"] == {"underride": {".m.rule.message": {"enabled": False}}}
    rules = set_enabled(rules, "underride", ".m.rule.message", True)
    assert get_rule(ME, rules, "underride", ".m.rule.message")["enabled"] is True
    rules = _add(rules, "a")
    rules = set_enabled(rules, "content", "a", False)
    assert full_ruleset(ME, rules)["global"]["content"][0]["enabled"] is False


def test_set_actions_of_predefined_rule() -> None:
    loud = ["notify", {"set_tweak": "highlight"}]
    rules = set_actions({}, "override", ".m.rule.suppress_notices", loud)
    rule = get_rule(ME, rules, "override", ".m.rule.suppress_notices")
    assert rule["actions"] == loud and rule["default"] is True and rule["enabled"] is True
    # conditions stay the spec's
    assert rule["conditions"] == [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}]


@pytest.mark.parametrize(
    ("call", "errcode", "status"),
    [
        (lambda r: set_enabled(r, "content", "nope", True), "M_NOT_FOUND", 404),
        (lambda r: set_enabled(r, "content", ".m.rule.master", True), "M_NOT_FOUND", 404),
        (lambda r: set_enabled(r, "content", "a", "yes"), "M_BAD_JSON", 400),
        (lambda r: set_actions(r, "room", "!nope:x", []), "M_NOT_FOUND", 404),
        (lambda r: set_actions(r, "content", "a", "notify"), "M_BAD_JSON", 400),
        (lambda r: set_actions(r, "override", ".m.rule.master", ["boom"]), "M_BAD_JSON", 400),
        (lambda r: set_actions(r, "sideways", "a", []), "M_INVALID_PARAM", 400),
        (lambda r: get_rule(ME, r, "content", "nope"), "M_NOT_FOUND", 404),
        (lambda r: get_rule(ME, r, "underride", ".m.rule.master"), "M_NOT_FOUND", 404),
        (lambda r: get_rule(ME, r, "sideways", "a"), "M_INVALID_PARAM", 400),
        (lambda r: delete_rule(r, "sideways", "a"), "M_INVALID_PARAM", 400),
    ],
)
def test_attribute_errors(call: Any, errcode: str, status: int) -> None:
    with pytest.raises(MatrixError) as exc:
        call(_add({}, "a"))
    assert _errcode(exc) == (errcode, status)


def test_get_rule_fills_in_user_id() -> None:
    rule = get_rule("@zed:example.com", {}, "override", ".m.rule.is_user_mention")
    assert rule["conditions"][0]["value"] == "@zed:example.com"
    assert rule["actions"][-1] == {"set_tweak": "highlight"}
