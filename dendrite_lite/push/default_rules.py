"""The server-default push rules (push.md §Predefined Rules), in the spec's order.

The spec copy is v1.19+: MSC4210 (v1.17) removed the legacy body-mention rules
(`.m.rule.contains_display_name`, `.m.rule.contains_user_name`, `.m.rule.roomnotif`) from the
specified set. We still ship them as extra server-default rules, where and as Synapse does: the
spec lets a homeserver add its own server-default rules (IDs starting with "."), and clients that
predate `m.mentions` (and SyTest) still mention users only in `body`. As the spec's mentions note
says of them, they are skipped for an event whose content has `m.mentions` (LEGACY_MENTION_RULE_IDS,
applied by the evaluator), so a client that sends `m.mentions` gets only the current behaviour.

`.m.rule.master` is kept apart because it outranks user-defined override rules; every other
default rule ranks below the user's rules of its kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "KINDS",
    "MASTER_RULE_ID",
    "DEFAULT_RULE_IDS",
    "LEGACY_MENTION_RULE_IDS",
    "is_default_rule_id",
    "default_rules",
    "default_rule",
]

# The kinds in the order they are checked (push.md §Push Rules).
KINDS: tuple[str, ...] = ("override", "content", "room", "sender", "underride")

MASTER_RULE_ID = ".m.rule.master"

# Marks where the owner's user ID goes ("[the user's Matrix ID]" in the spec).
_USER_ID = object()
# Marks where the localpart of the owner's user ID goes (.m.rule.contains_user_name).
_LOCALPART = object()

_SOUND_DEFAULT: dict[str, Any] = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT: dict[str, Any] = {"set_tweak": "highlight"}


def _match(key: str, pattern: Any) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _rule(rule_id: str, conditions: list[Any], actions: list[Any], enabled: bool = True) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": enabled,
        "conditions": conditions,
        "actions": actions,
    }


_TEMPLATES: Mapping[str, tuple[dict[str, Any], ...]] = {
    "override": (
        _rule(MASTER_RULE_ID, [], [], enabled=False),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", _USER_ID),
            ],
            ["notify", _SOUND_DEFAULT],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": _USER_ID,
                }
            ],
            ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.contains_display_name",
            [{"kind": "contains_display_name"}],
            ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.roomnotif",
            [
                _match("content.body", "@room"),
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", _HIGHLIGHT],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(
            ".m.rule.room.server_acl",
            [_match("type", "m.room.server_acl"), _match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
    ),
    "content": (
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": _LOCALPART,
            "actions": ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
        },
    ),
    "room": (),
    "sender": (),
    "underride": (
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
            ["notify", _SOUND_DEFAULT],
        ),
        _rule(
            ".m.rule.room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
            ["notify", _SOUND_DEFAULT],
        ),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ),
}

DEFAULT_RULE_IDS: Mapping[str, tuple[str, ...]] = {
    kind: tuple(r["rule_id"] for r in rules) for kind, rules in _TEMPLATES.items()
}
_DEFAULT_ID_SETS = {kind: frozenset(ids) for kind, ids in DEFAULT_RULE_IDS.items()}
# (kind, rule ID) of the legacy body-mention rules: off for an event with `m.mentions`.
LEGACY_MENTION_RULE_IDS: frozenset[tuple[str, str]] = frozenset({
    ("override", ".m.rule.contains_display_name"),
    ("content", ".m.rule.contains_user_name"),
    ("override", ".m.rule.roomnotif"),
})


def is_default_rule_id(kind: str, rule_id: str) -> bool:
    return rule_id in _DEFAULT_ID_SETS.get(kind, frozenset())


def _instantiate(value: Any, user_id: str) -> Any:
    # A fresh deep copy every time, so callers may mutate what they get.
    if value is _USER_ID:
        return user_id
    if value is _LOCALPART:
        return user_id[1:].split(":", 1)[0]
    if isinstance(value, dict):
        return {k: _instantiate(v, user_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_instantiate(v, user_id) for v in value]
    return value


def default_rules(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every default rule of every kind for `user_id`, in spec order, as GET /pushrules/ shows them."""
    return {kind: [_instantiate(r, user_id) for r in rules] for kind, rules in _TEMPLATES.items()}


def default_rule(user_id: str, kind: str, rule_id: str) -> dict[str, Any] | None:
    for rule in _TEMPLATES.get(kind, ()):
        if rule["rule_id"] == rule_id:
            result: dict[str, Any] = _instantiate(rule, user_id)
            return result
    return None
