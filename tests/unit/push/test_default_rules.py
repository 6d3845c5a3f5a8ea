"""The predefined rules (push.md §Predefined Rules): definitions and behaviour, one by one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.push import compiled_for_user, default_rules, evaluate
from dendrite_lite.push.default_rules import (
    DEFAULT_RULE_IDS,
    LEGACY_MENTION_RULE_IDS,
    default_rule,
    is_default_rule_id,
)
from tests.spec_paths import SPEC_DIR

SPEC_PUSH = SPEC_DIR / "content/client-server-api/modules/push.md"
ME = "@alice:example.org"
OTHER = "@bob:example.org"
ROOM = "!room:example.org"


def _spec_definitions() -> dict[str, list[dict[str, Any]]]:
    """The JSON definitions under §Predefined Rules, split at §Default Underride Rules."""
    text = SPEC_PUSH.read_text()
    section = text[text.index("#### Predefined Rules") : text.index("#### Push Rules: API")]
    overrides, underrides = section.split("##### Default Underride Rules")

    def blocks(part: str) -> list[dict[str, Any]]:
        found = re.findall(r"```json\n(.*?)```", part, re.DOTALL)
        return [json.loads(b.replace("[the user's Matrix ID]", ME)) for b in found]

    return {"override": blocks(overrides), "underride": blocks(underrides)}


def test_defaults_are_exactly_the_spec_definitions_in_order() -> None:
    spec = _spec_definitions()
    ours = {
        kind: [r for r in rules if (kind, r["rule_id"]) not in LEGACY_MENTION_RULE_IDS]
        for kind, rules in default_rules(ME).items()
    }
    assert [r["rule_id"] for r in spec["override"]][:2] == [".m.rule.master", ".m.rule.suppress_notices"]
    assert ours["override"] == spec["override"]
    assert ours["underride"] == spec["underride"]
    # v1.17 (MSC4210) removed the legacy body-mention rules from the specified set; beside them
    # no kind has other defaults.
    assert ours["content"] == ours["room"] == ours["sender"] == []
    assert len(ours["override"]) == 10 and len(ours["underride"]) == 5


def test_legacy_mention_rules_sit_where_synapse_puts_them() -> None:
    # Extra server-default rules (push.md: "Homeservers can specify server-default rules"),
    # kept for clients that mention in `body` only (and SyTest's 61push tests).
    ours = default_rules(ME)
    override_ids = [r["rule_id"] for r in ours["override"]]
    assert override_ids[4:8] == [
        ".m.rule.is_user_mention", ".m.rule.contains_display_name",
        ".m.rule.is_room_mention", ".m.rule.roomnotif",
    ]
    assert ours["content"] == [{
        "rule_id": ".m.rule.contains_user_name", "default": True, "enabled": True,
        "pattern": "alice",
        "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}],
    }]


def test_rule_ids_and_lookup() -> None:
    assert DEFAULT_RULE_IDS["underride"] == (
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    )
    assert is_default_rule_id("override", ".m.rule.room.server_acl")
    assert not is_default_rule_id("underride", ".m.rule.master")
    assert is_default_rule_id("content", ".m.rule.contains_user_name")
    assert not is_default_rule_id("override", ".m.rule.contains_user_name")
    assert default_rule(ME, "override", ".m.rule.invite_for_me")["conditions"][2]["pattern"] == ME
    assert default_rule(ME, "override", ".nope") is None


def test_default_rules_are_fresh_copies() -> None:
    first = default_rules(ME)
    first["override"][1]["actions"].append("notify")
    first["override"][4]["conditions"][0]["value"] = "@mallory:example.org"
    second = default_rules(ME)
    assert second["override"][1]["actions"] == []
    assert second["override"][4]["conditions"][0]["value"] == ME


def _message(body: str = "hello", **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": OTHER,
        "room_id": ROOM,
        "event_id": "$e",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def _eval(event: dict[str, Any], *, members: int = 10, sender_level: int = 0,
          power_levels: dict[str, Any] | None = None, user_rules: dict[str, Any] | None = None,
          display_name: str | None = "Alice") -> Any:
    return evaluate(
        compiled_for_user(ME, user_rules or {}),
        event,
        user_id=ME,
        display_name=display_name,
        room_member_count=members,
        sender_power_level=sender_level,
        power_levels_content=power_levels,
    )


def _state(event_type: str, state_key: str = "", **content: Any) -> dict[str, Any]:
    return {"type": event_type, "state_key": state_key, "sender": OTHER, "room_id": ROOM,
            "event_id": "$s", "content": content}


def test_master_is_disabled_by_default_and_silences_everything_when_enabled() -> None:
    assert _eval(_message()).rule_id == ".m.rule.message"
    silenced = {"defaults": {"override": {".m.rule.master": {"enabled": True}}}}
    mention = _message(**{"m.mentions": {"user_ids": [ME]}})
    result = _eval(mention, user_rules=silenced)
    assert result.rule_id == ".m.rule.master"
    assert not result.notify and not result.highlight


def test_suppress_notices() -> None:
    result = _eval(_message(msgtype="m.notice"))
    assert result.rule_id == ".m.rule.suppress_notices" and not result.notify
    # Even a mention inside a notice: suppress_notices comes first.
    assert _eval(_message(msgtype="m.notice", **{"m.mentions": {"user_ids": [ME]}})).notify is False
    assert _eval(_message(msgtype="m.text")).notify is True


def test_invite_for_me_notifies_with_sound() -> None:
    result = _eval(_state("m.room.member", ME, membership="invite"))
    assert result.rule_id == ".m.rule.invite_for_me"
    assert result.notify and result.sound == "default" and not result.highlight


@pytest.mark.parametrize(
    ("state_key", "membership"),
    [("@carol:example.org", "invite"), (ME, "join"), (ME, "leave"), (OTHER, "join")],
)
def test_other_member_events_do_not_notify(state_key: str, membership: str) -> None:
    result = _eval(_state("m.room.member", state_key, membership=membership))
    assert result.rule_id == ".m.rule.member_event" and not result.notify


def test_member_event_does_not_notify_even_in_one_to_one_rooms() -> None:
    result = _eval(_state("m.room.member", OTHER, membership="join"), members=2)
    assert result.rule_id == ".m.rule.member_event" and not result.notify


def test_user_mention_highlights() -> None:
    result = _eval(_message(**{"m.mentions": {"user_ids": [OTHER, ME]}}))
    assert result.rule_id == ".m.rule.is_user_mention"
    assert result.notify and result.highlight and result.sound == "default"


@pytest.mark.parametrize(
    "mentions",
    [
        {"user_ids": [OTHER]},
        {"user_ids": []},
        {"user_ids": ME},  # not an array
        {"user_ids": [ME.upper()]},  # exact match only
        {},
    ],
)
def test_no_user_mention(mentions: dict[str, Any]) -> None:
    result = _eval(_message(**{"m.mentions": mentions}))
    assert result.rule_id == ".m.rule.message" and not result.highlight


def test_localpart_in_body_is_a_legacy_mention() -> None:
    result = _eval(_message(f"Second message - {ME}"), display_name=None)
    assert result.rule_id == ".m.rule.contains_user_name"
    assert result.notify and result.highlight and result.sound == "default"
    assert _eval(_message("malice aforethought")).rule_id == ".m.rule.message"  # whole words only
    # The display name rule is an override rule: it comes first.
    assert _eval(_message("hi Alice")).rule_id == ".m.rule.contains_display_name"


def test_legacy_mention_rules_are_off_when_the_event_has_m_mentions() -> None:
    # mentions.md: the body rules "were disabled if the m.mentions field was present".
    for mentions in ({}, {"user_ids": [OTHER]}, {"room": False}):
        result = _eval(_message(f"hey {ME} and Alice and @room", **{"m.mentions": mentions}),
                       sender_level=100)
        assert result.rule_id == ".m.rule.message" and not result.highlight


def test_room_notification_in_body_needs_power() -> None:
    assert _eval(_message("@room look"), sender_level=50).rule_id == ".m.rule.roomnotif"
    assert _eval(_message("@room look"), sender_level=0).rule_id == ".m.rule.message"


def test_room_mention_needs_power() -> None:
    event = _message("@room", **{"m.mentions": {"room": True}})
    # notifications.room defaults to 50
    assert _eval(event, sender_level=0).rule_id == ".m.rule.message"
    allowed = _eval(event, sender_level=50)
    assert allowed.rule_id == ".m.rule.is_room_mention"
    assert allowed.notify and allowed.highlight and allowed.sound is None
    lowered = {"notifications": {"room": 0}}
    assert _eval(event, sender_level=0, power_levels=lowered).rule_id == ".m.rule.is_room_mention"
    raised = {"notifications": {"room": 100}}
    assert _eval(event, sender_level=99, power_levels=raised).rule_id == ".m.rule.message"
    stringy = {"notifications": {"room": "10"}}  # room versions before 10 allow strings
    assert _eval(event, sender_level=10, power_levels=stringy).rule_id == ".m.rule.is_room_mention"
    assert _eval(event, sender_level=float("inf")).rule_id == ".m.rule.is_room_mention"  # v12 creator


@pytest.mark.parametrize("room_value", ["true", 1, False, None])
def test_room_mention_needs_boolean_true(room_value: Any) -> None:
    event = _message("@room", **{"m.mentions": {"room": room_value}})
    assert _eval(event, sender_level=100).rule_id == ".m.rule.message"


def test_tombstone_highlights_only_as_state() -> None:
    result = _eval(_state("m.room.tombstone", "", body="moved", replacement_room="!new:x"))
    assert result.rule_id == ".m.rule.tombstone" and result.notify and result.highlight
    not_state = {"type": "m.room.tombstone", "sender": OTHER, "room_id": ROOM, "content": {}}
    assert _eval(not_state).rule_id is None
    assert _eval(_state("m.room.tombstone", "x")).notify is False


def test_reaction_does_not_notify() -> None:
    reaction = {"type": "m.reaction", "sender": OTHER, "room_id": ROOM,
                "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$e", "key": "👍"}}}
    result = _eval(reaction, members=2)
    assert result.rule_id == ".m.rule.reaction" and not result.notify


def test_server_acl_does_not_notify() -> None:
    result = _eval(_state("m.room.server_acl", "", allow=["*"]))
    assert result.rule_id == ".m.rule.room.server_acl" and not result.notify


def test_edits_are_suppressed() -> None:
    edit = _message("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$e"},
                                 "m.new_content": {"body": "fixed", "msgtype": "m.text"}})
    result = _eval(edit, members=2)
    assert result.rule_id == ".m.rule.suppress_edits" and not result.notify
    thread_reply = _message("reply", **{"m.relates_to": {"rel_type": "m.thread", "event_id": "$e"}})
    assert _eval(thread_reply).notify is True


def test_call_invite_rings() -> None:
    call = {"type": "m.call.invite", "sender": OTHER, "room_id": ROOM, "content": {"call_id": "c"}}
    result = _eval(call)
    assert result.rule_id == ".m.rule.call" and result.notify and result.sound == "ring"


def test_encrypted_one_to_one_and_group() -> None:
    encrypted = {"type": "m.room.encrypted", "sender": OTHER, "room_id": ROOM,
                 "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x"}}
    one_to_one = _eval(encrypted, members=2)
    assert one_to_one.rule_id == ".m.rule.encrypted_room_one_to_one"
    assert one_to_one.notify and one_to_one.sound == "default"
    group = _eval(encrypted, members=3)
    assert group.rule_id == ".m.rule.encrypted" and group.notify and group.sound is None


def test_messages_one_to_one_and_group() -> None:
    one_to_one = _eval(_message(), members=2)
    assert one_to_one.rule_id == ".m.rule.room_one_to_one" and one_to_one.sound == "default"
    group = _eval(_message(), members=3)
    assert group.rule_id == ".m.rule.message" and group.notify and group.sound is None
    assert not group.highlight


def test_other_events_do_not_notify() -> None:
    for event in (_state("m.room.topic", "", topic="hi"), _state("m.room.name", "", name="n"),
                  {"type": "m.sticker", "sender": OTHER, "room_id": ROOM, "content": {}}):
        result = _eval(event, members=2)
        assert result.rule_id is None and not result.notify


def test_own_events_never_notify() -> None:
    mine = {**_message(**{"m.mentions": {"user_ids": [ME]}}), "sender": ME}
    result = _eval(mine, members=2)
    assert result.rule_id is None and not result.notify
