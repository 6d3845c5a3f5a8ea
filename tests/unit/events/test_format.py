"""PDU format validation per room version (pdu_v*.yaml, §Size limits, strict canonical JSON)."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.crypto.canonical import encode_canonical_json
from dendrite_lite.events.format import FormatError, max_depth, validate_pdu
from dendrite_lite.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version

V1, V3, V5, V6, V11, V12 = (get_room_version(v) for v in ("1", "3", "5", "6", "11", "12"))
V12_ROOM = "!nGK6SXKCW5tf_-nWPCNeVk_MjldXzpRX5ZlToEXFYdo"


def good_pdu(rv: RoomVersion, **changes: Any) -> dict[str, Any]:
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "sender": "@alice:example.org",
        "content": {"body": "hi"},
        "depth": 5,
        "origin_server_ts": 1700000000000,
        "hashes": {"sha256": "abc"},
        "signatures": {"example.org": {"ed25519:1": "sig"}},
        "room_id": V12_ROOM if rv.room_id_is_create_event_hash else "!room:example.org",
        "prev_events": ["$prev"],
        "auth_events": ["$pl", "$member"],
    }
    if rv.event_id_in_event:
        pdu["event_id"] = "$e1:example.org"
        pdu["prev_events"] = [["$prev:example.org", {"sha256": "h"}]]
        pdu["auth_events"] = [["$pl:example.org", {"sha256": "h"}]]
    pdu.update(changes)
    return {k: v for k, v in pdu.items() if v is not _DELETE}


_DELETE = object()


@pytest.mark.parametrize("version", list(KNOWN_ROOM_VERSIONS))
def test_good_pdu_passes_in_every_version(version: str) -> None:
    rv = get_room_version(version)
    validate_pdu(good_pdu(rv), rv)
    validate_pdu(good_pdu(rv, state_key="", unsigned={"age": 1}), rv)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type": _DELETE}, "'type' must be a string"),
        ({"sender": 5}, "'sender' must be a string"),
        ({"sender": "alice"}, "'sender' 'alice' is not a valid user id"),
        ({"content": []}, "'content' must be an object"),
        ({"content": _DELETE}, "'content' must be an object"),
        ({"state_key": None}, "'state_key' must be a string"),
        ({"origin_server_ts": "1"}, "'origin_server_ts' must be an integer"),
        ({"origin_server_ts": True}, "'origin_server_ts' must be an integer"),
        ({"depth": _DELETE}, "'depth' must be an integer"),
        ({"depth": -1}, "'depth' -1 out of range"),
        ({"hashes": {}}, "'hashes' must be an object with a string 'sha256'"),
        ({"hashes": {"sha256": 1}}, "'hashes' must be an object with a string 'sha256'"),
        ({"signatures": {"x": "sig"}}, "'signatures' must map server names to objects of strings"),
        ({"signatures": _DELETE}, "'signatures' must map"),
        ({"unsigned": []}, "'unsigned' must be an object"),
        ({"redacts": 5}, "'redacts' must be a string"),
        ({"prev_events": "$a"}, "'prev_events' must be an array"),
        ({"auth_events": _DELETE}, "'auth_events' must be an array"),
        ({"prev_events": [["$a", {}]]}, "'prev_events' entry"),
        ({"auth_events": ["nodollar"]}, "'auth_events' entry"),
        ({"prev_events": [f"$p{i}" for i in range(21)]}, "'prev_events' has 21 entries, at most 20"),
        ({"auth_events": [f"$a{i}" for i in range(11)]}, "'auth_events' has 11 entries, at most 10"),
        ({"room_id": "!noserver"}, "'room_id' '!noserver' is not a valid room id for room version 11"),
        ({"room_id": _DELETE}, "'room_id' None is not a valid room id"),
        ({"event_id": "$abc"}, "'event_id' must not be present in a room version 3+ PDU"),
    ],
)
def test_v11_format_errors(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(FormatError) as e:
        validate_pdu(good_pdu(V11, **changes), V11)
    assert e.value.reason.startswith(reason)
    assert not e.value.too_large


def test_not_an_object() -> None:
    with pytest.raises(FormatError, match="not a JSON object"):
        validate_pdu([1], V11)


def test_v1_needs_event_id_and_pairs() -> None:
    with pytest.raises(FormatError, match="'event_id' must be an event id"):
        validate_pdu(good_pdu(V1, event_id=_DELETE), V1)
    with pytest.raises(FormatError, match="'event_id' must be an event id"):
        validate_pdu(good_pdu(V1, event_id="$nodomain"), V1)
    with pytest.raises(FormatError, match="'prev_events' entry"):
        validate_pdu(good_pdu(V1, prev_events=["$a:example.org"]), V1)
    with pytest.raises(FormatError, match="'auth_events' entry"):
        validate_pdu(good_pdu(V1, auth_events=[["$a:example.org"]]), V1)
    with pytest.raises(FormatError, match="'prev_events' entry"):
        validate_pdu(good_pdu(V3, prev_events=[["$a:example.org", {"sha256": "h"}]]), V3)


def test_depth_limit_per_version() -> None:
    assert max_depth(V5) == 2**63 - 1 and max_depth(V6) == 2**53 - 1
    validate_pdu(good_pdu(V5, depth=2**63 - 1), V5)
    with pytest.raises(FormatError, match="out of range"):
        validate_pdu(good_pdu(V5, depth=2**63), V5)
    validate_pdu(good_pdu(V6, depth=2**53 - 1), V6)
    with pytest.raises(FormatError, match="out of range"):
        validate_pdu(good_pdu(V6, depth=2**53), V6)


def test_strict_canonical_json_from_v6() -> None:
    big = good_pdu(V5, content={"n": 2**60})
    validate_pdu(big, V5)  # v1-v5 must tolerate out-of-range integers
    with pytest.raises(FormatError, match="not canonical JSON: integer out of canonical JSON range at /content/n"):
        validate_pdu(good_pdu(V6, content={"n": 2**60}), V6)
    validate_pdu(good_pdu(V5, content={"f": 1.5}), V5)
    with pytest.raises(FormatError, match="float not allowed in canonical JSON at /content/f"):
        validate_pdu(good_pdu(V6, content={"f": 1.5}), V6)


def test_v12_room_ids_and_create_event() -> None:
    with pytest.raises(FormatError, match="not a valid room id for room version 12"):
        validate_pdu(good_pdu(V12, room_id="!room:example.org"), V12)
    create = good_pdu(V12, type="m.room.create", state_key="", room_id=_DELETE, prev_events=[], auth_events=[])
    validate_pdu(create, V12)
    # The create event's id is implied by the room id and must not be cited.
    with pytest.raises(FormatError, match="must not contain the create event"):
        validate_pdu(good_pdu(V12, auth_events=["$" + V12_ROOM[1:], "$pl"]), V12)
    # Only a state m.room.create event may omit room_id.
    with pytest.raises(FormatError, match="'room_id' None"):
        validate_pdu(good_pdu(V12, type="m.room.create", room_id=_DELETE), V12)


@pytest.mark.parametrize("key", ["sender", "room_id", "state_key", "type"])
def test_identifier_size_limits_are_bytes(key: str) -> None:
    # 128 two-byte characters: 128 code points, 256 bytes.
    long_value = {"sender": "@" + "é" * 127 + ":x", "room_id": "!" + "é" * 127 + ":x", "state_key": "é" * 128, "type": "é" * 128}[key]
    with pytest.raises(FormatError) as e:
        validate_pdu(good_pdu(V11, **{key: long_value}), V11)
    assert e.value.too_large
    assert e.value.reason == f"'{key}' is longer than 255 bytes"
    ok_value = "a" * 255 if key in ("state_key", "type") else None
    if ok_value:
        validate_pdu(good_pdu(V11, **{key: ok_value}), V11)


def test_event_id_size_limit_v1() -> None:
    with pytest.raises(FormatError, match="'event_id' is longer than 255 bytes") as e:
        validate_pdu(good_pdu(V1, event_id="$" + "a" * 250 + ":example.org"), V1)
    assert e.value.too_large


def test_whole_event_size_limit() -> None:
    pdu = good_pdu(V11, content={"body": ""})
    room = 65536 - len(encode_canonical_json(pdu))
    validate_pdu(good_pdu(V11, content={"body": "x" * room}), V11)  # exactly 65536 bytes
    with pytest.raises(FormatError, match="event is 65537 bytes, more than 65536") as e:
        validate_pdu(good_pdu(V11, content={"body": "x" * (room + 1)}), V11)
    assert e.value.too_large


def test_lone_surrogate_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="not encodable as canonical JSON"):
        validate_pdu(good_pdu(V11, content={"body": "\ud800"}), V11)


def test_v11_content_redacts_must_be_a_string() -> None:
    bad = good_pdu(V11, type="m.room.redaction", content={"redacts": 5})
    with pytest.raises(FormatError, match="'content.redacts' must be a string"):
        validate_pdu(bad, V11)
    validate_pdu(good_pdu(V11, type="m.room.redaction", content={"redacts": "$x"}), V11)
    validate_pdu(good_pdu(V5, type="m.room.redaction", content={"redacts": 5}), V5)  # just content before v11
