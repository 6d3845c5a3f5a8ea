"""The redaction algorithm, per room version: every key each version keeps or strips
(rooms/fragments/v1-, v6-, v9-, v11-redactions.md; rooms/v8.md §Redactions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, get_room_version

ALL = list(KNOWN_ROOM_VERSIONS)


def versions(lo: int, hi: int = 12) -> list[str]:
    return [str(n) for n in range(lo, hi + 1)]


BASE: dict[str, Any] = {
    "event_id": "$e:x",
    "type": "m.room.message",
    "room_id": "!r:x",
    "sender": "@u:x",
    "content": {"body": "secret", "msgtype": "m.text"},
    "hashes": {"sha256": "h"},
    "signatures": {"x": {"ed25519:1": "s"}},
    "depth": 5,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "origin_server_ts": 7,
    "origin": "x",
    "membership": "join",
    "prev_state": [],
    "unsigned": {"age_ts": 1, "transaction_id": "t"},
    "redacts": "$old",
    "age_ts": 3,
    "outlier": True,
    "custom": {"a": 1},
}
ALWAYS_KEPT = ["event_id", "type", "room_id", "sender", "hashes", "signatures", "depth", "prev_events",
               "auth_events", "origin_server_ts"]


@pytest.mark.parametrize("version", ALL)
def test_top_level_keys_kept_in_every_version(version: str) -> None:
    out = redact(BASE, get_room_version(version))
    for key in ALWAYS_KEPT:
        assert out[key] == BASE[key], key
    for key in ("unsigned", "redacts", "age_ts", "outlier", "custom"):
        assert key not in out, key
    assert out["content"] == {}


@pytest.mark.parametrize("key", ["origin", "membership", "prev_state"])
def test_origin_membership_prev_state_kept_before_v11_only(key: str) -> None:
    for version in versions(1, 10):
        assert redact(BASE, get_room_version(version))[key] == BASE[key]
    for version in versions(11):
        assert key not in redact(BASE, get_room_version(version))


def test_state_key_kept_including_empty() -> None:
    out = redact({**BASE, "type": "m.room.topic", "state_key": "", "content": {"topic": "t"}}, get_room_version("12"))
    assert out["state_key"] == "" and out["content"] == {}


def test_input_is_not_modified() -> None:
    before = copy.deepcopy(BASE)
    redact(BASE, get_room_version("1"))
    assert BASE == before


MEMBER_CONTENT = {
    "membership": "join",
    "displayname": "Alice",
    "avatar_url": "mxc://x/y",
    "join_authorised_via_users_server": "@admin:x",
    "third_party_invite": {"display_name": "a...@b", "signed": {"mxid": "@u:x", "token": "t", "signatures": {}}},
    "reason": "hi",
}


@pytest.mark.parametrize(
    ("version_range", "expected"),
    [
        (versions(1, 8), {"membership": "join"}),
        (versions(9, 10), {"membership": "join", "join_authorised_via_users_server": "@admin:x"}),
        (
            versions(11),
            {
                "membership": "join",
                "join_authorised_via_users_server": "@admin:x",
                "third_party_invite": {"signed": {"mxid": "@u:x", "token": "t", "signatures": {}}},
            },
        ),
    ],
)
def test_member_content(version_range: list[str], expected: dict[str, Any]) -> None:
    for version in version_range:
        pdu = {**BASE, "type": "m.room.member", "state_key": "@u:x", "content": MEMBER_CONTENT}
        assert redact(pdu, get_room_version(version))["content"] == expected, version


@pytest.mark.parametrize(
    ("tpi", "kept"),
    [({"display_name": "x"}, {"third_party_invite": {}}), ({"signed": None}, {"third_party_invite": {"signed": None}}),
     ("junk", {}), ([1], {})],
)
def test_v11_third_party_invite_object_kept_with_only_signed(tpi: object, kept: dict[str, Any]) -> None:
    pdu = {**BASE, "type": "m.room.member", "content": {"membership": "invite", "third_party_invite": tpi}}
    assert redact(pdu, get_room_version("11"))["content"] == {"membership": "invite", **kept}
    assert redact(pdu, get_room_version("10"))["content"] == {"membership": "invite"}


CREATE_CONTENT = {"creator": "@u:x", "room_version": "1", "m.federate": False, "predecessor": {"room_id": "!o:x"}}


def test_create_content() -> None:
    pdu = {**BASE, "type": "m.room.create", "state_key": "", "content": CREATE_CONTENT}
    for version in versions(1, 10):
        assert redact(pdu, get_room_version(version))["content"] == {"creator": "@u:x"}, version
    for version in versions(11):
        assert redact(pdu, get_room_version(version))["content"] == CREATE_CONTENT, version


JOIN_RULES_CONTENT = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "!s:x"}], "other": 1}


def test_join_rules_content_allow_kept_from_v8() -> None:
    pdu = {**BASE, "type": "m.room.join_rules", "state_key": "", "content": JOIN_RULES_CONTENT}
    for version in versions(1, 7):
        assert redact(pdu, get_room_version(version))["content"] == {"join_rule": "restricted"}, version
    for version in versions(8):
        assert redact(pdu, get_room_version(version))["content"] == {
            "join_rule": "restricted",
            "allow": JOIN_RULES_CONTENT["allow"],
        }, version


PL_CONTENT = {
    "ban": 50, "events": {"m.room.name": 50}, "events_default": 0, "invite": 0, "kick": 50, "redact": 50,
    "state_default": 50, "users": {"@u:x": 100}, "users_default": 0, "notifications": {"room": 50},
}


def test_power_levels_content() -> None:
    pdu = {**BASE, "type": "m.room.power_levels", "state_key": "", "content": PL_CONTENT}
    pre_v11 = {k: v for k, v in PL_CONTENT.items() if k not in ("invite", "notifications")}
    for version in versions(1, 10):
        # `notifications` is in no version's list (v6 only changed the auth rules for it).
        assert redact(pdu, get_room_version(version))["content"] == pre_v11, version
    for version in versions(11):
        assert redact(pdu, get_room_version(version))["content"] == {**pre_v11, "invite": 0}, version


def test_aliases_content_kept_only_v1_to_v5() -> None:
    pdu = {**BASE, "type": "m.room.aliases", "state_key": "x", "content": {"aliases": ["#a:x"], "other": 1}}
    for version in versions(1, 5):
        assert redact(pdu, get_room_version(version))["content"] == {"aliases": ["#a:x"]}, version
    for version in versions(6):
        assert redact(pdu, get_room_version(version))["content"] == {}, version


def test_history_visibility_content() -> None:
    pdu = {**BASE, "type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared", "x": 1}}
    for version in ALL:
        assert redact(pdu, get_room_version(version))["content"] == {"history_visibility": "shared"}


def test_redaction_event_redacts() -> None:
    pdu = {**BASE, "type": "m.room.redaction", "content": {"redacts": "$old", "reason": "spam"}}
    for version in versions(1, 10):
        out = redact(pdu, get_room_version(version))
        assert out["content"] == {} and "redacts" not in out, version  # top-level redacts not kept either
    for version in versions(11):
        assert redact(pdu, get_room_version(version))["content"] == {"redacts": "$old"}, version


@pytest.mark.parametrize("etype", ["m.room.name", "m.room.topic", "m.room.third_party_invite", "m.room.encrypted"])
def test_other_event_types_lose_all_content(etype: str) -> None:
    for version in ALL:
        assert redact({**BASE, "type": etype, "state_key": "", "content": {"a": 1}}, get_room_version(version))["content"] == {}


def test_missing_or_non_object_content_becomes_empty_object() -> None:
    pdu = {k: v for k, v in BASE.items() if k != "content"}
    assert redact(pdu, get_room_version("12"))["content"] == {}
    assert redact({**BASE, "content": "junk"}, get_room_version("12"))["content"] == {}
