"""Event ids (v1/v2 carried, v3 standard base64, v4+ URL-safe), v12 room ids, identifier grammar.

The pinned ids below were computed by Synapse 1.163 (tests/interop/synapse_event_worker.py) for
the same PDUs; tests/interop/test_synapse_event_crosscheck.py checks many random events live.
"""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.crypto.canonical import encode_base64
from dendrite_lite.events.hashes import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_reference_hash,
)
from dendrite_lite.events.ids import (
    compute_event_id,
    create_event_id_of_room,
    event_id_from_reference_hash,
    is_valid_event_id,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    new_legacy_event_id,
    new_legacy_room_id,
    room_id_from_create_event,
    server_name_of,
)
from dendrite_lite.events.pdu import event_from_pdu
from dendrite_lite.events.room_versions import get_room_version

V1, V3, V4, V11, V12 = (get_room_version(v) for v in ("1", "3", "4", "11", "12"))

MESSAGE: dict[str, Any] = {
    "auth_events": ["$create", "$pl", "$member"],
    "content": {"body": "hello ? /+", "msgtype": "m.text"},
    "depth": 8,
    "hashes": {"sha256": "x"},
    "origin_server_ts": 1700000000000,
    "prev_events": ["$prev"],
    "room_id": "!room:example.org",
    "sender": "@alice:example.org",
    "signatures": {},
    "type": "m.room.message",
    "unsigned": {"age": 5},
}
CREATE_V12: dict[str, Any] = {
    "auth_events": [],
    "content": {"room_version": "12"},
    "depth": 1,
    "hashes": {"sha256": "x"},
    "origin_server_ts": 1700000000000,
    "prev_events": [],
    "sender": "@alice:example.org",
    "signatures": {},
    "state_key": "",
    "type": "m.room.create",
}


def test_same_reference_hash_standard_base64_in_v3_url_safe_in_v4() -> None:
    ref = compute_reference_hash(MESSAGE, V3)
    assert ref == compute_reference_hash(MESSAGE, V4)
    assert encode_base64(ref) == "UPaZGPDSX+cE0TRHRP/UUY2hVl7t335NDr30vzjxgH4"
    assert compute_event_id(MESSAGE, V3) == "$UPaZGPDSX+cE0TRHRP/UUY2hVl7t335NDr30vzjxgH4"
    assert compute_event_id(MESSAGE, V4) == "$UPaZGPDSX-cE0TRHRP_UUY2hVl7t335NDr30vzjxgH4"
    assert event_id_from_reference_hash(ref, V11) == "$UPaZGPDSX-cE0TRHRP_UUY2hVl7t335NDr30vzjxgH4"
    assert encode_base64(compute_content_hash(MESSAGE)) == "vnfbtqmngSTALMyq1hIj1WJdAmpAGVH99NP7mEZhUuY"


def test_event_id_ignores_unsigned_signatures_and_unredacted_content() -> None:
    changed = {**MESSAGE, "unsigned": {"age": 99}, "signatures": {"x": {"ed25519:1": "y"}}, "content": {"body": "other"}}
    assert compute_event_id(changed, V4) == compute_event_id(MESSAGE, V4)
    assert compute_event_id({**MESSAGE, "depth": 9}, V4) != compute_event_id(MESSAGE, V4)


def test_v12_room_id_is_the_create_event_hash() -> None:
    event = event_from_pdu(CREATE_V12, V12)
    assert event.event_id == "$nGK6SXKCW5tf_-nWPCNeVk_MjldXzpRX5ZlToEXFYdo"
    assert event.room_id == "!nGK6SXKCW5tf_-nWPCNeVk_MjldXzpRX5ZlToEXFYdo"
    assert room_id_from_create_event(CREATE_V12, V12) == event.room_id
    assert create_event_id_of_room(event.room_id, V12) == event.event_id
    assert create_event_id_of_room("!r:x", V11) is None
    with pytest.raises(ValueError):
        room_id_from_create_event(CREATE_V12, V11)


def test_v12_non_create_event_keeps_its_room_id() -> None:
    pdu = {**MESSAGE, "room_id": "!nGK6SXKCW5tf_-nWPCNeVk_MjldXzpRX5ZlToEXFYdo"}
    assert event_from_pdu(pdu, V12).room_id == pdu["room_id"]


def test_v1_event_id_is_carried_in_the_event() -> None:
    pdu = {**MESSAGE, "event_id": "$abc:example.org"}
    assert compute_event_id(pdu, V1) == "$abc:example.org"
    assert event_from_pdu(pdu, V1).event_id == "$abc:example.org"
    with pytest.raises(ValueError):
        compute_event_id(MESSAGE, V1)
    with pytest.raises(ValueError):
        event_id_from_reference_hash(b"x" * 32, V1)


def test_content_hash_add_and_check() -> None:
    hashed = add_content_hash({**MESSAGE, "hashes": {"sha256": "old", "other": "kept"}})
    assert hashed["hashes"] == {"sha256": "vnfbtqmngSTALMyq1hIj1WJdAmpAGVH99NP7mEZhUuY", "other": "kept"}
    assert check_content_hash(hashed)
    assert check_content_hash({**hashed, "unsigned": {"changed": True}, "signatures": {"a": {}}})
    assert not check_content_hash({**hashed, "content": {"body": "edited"}})
    assert not check_content_hash({**hashed, "hashes": {"sha256": "!!"}})
    assert not check_content_hash({**hashed, "hashes": "junk"})
    assert not check_content_hash({k: v for k, v in hashed.items() if k != "hashes"})


@pytest.mark.parametrize(
    "name",
    ["matrix.org", "matrix.org:8888", "1.2.3.4", "1.2.3.4:1234", "[1234:5678::abcd]", "[1234:5678::abcd]:5678", "localhost"],
)
def test_valid_server_names(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize("name", ["", "matrix.org:", "matrix.org:123456", "ex ample.org", "[::1", "a_b.org", "é.org", None])
def test_invalid_server_names(name: object) -> None:
    assert not is_valid_server_name(name)


def test_user_ids() -> None:
    assert is_valid_user_id("@alice:example.org", historical=False)
    assert is_valid_user_id("@a.b_c=d-e/f+1:example.org:8448", historical=False)
    assert not is_valid_user_id("@Alice:example.org", historical=False)
    # Historical localparts (anything but ':' and NUL, even empty) are accepted over federation.
    assert is_valid_user_id("@Alice:example.org")
    assert is_valid_user_id("@:example.org")
    assert not is_valid_user_id("@a\x00b:example.org")
    assert not is_valid_user_id("alice:example.org")
    assert not is_valid_user_id("@alice")
    assert not is_valid_user_id("@alice:bad server")
    assert not is_valid_user_id("@" + "a" * 250 + ":example.org")  # over 255 bytes


def test_room_ids_per_version() -> None:
    hash_id = "!nGK6SXKCW5tf_-nWPCNeVk_MjldXzpRX5ZlToEXFYdo"
    assert is_valid_room_id("!abc:example.org", V11)
    assert not is_valid_room_id(hash_id, V11)
    assert is_valid_room_id(hash_id, V12)
    assert not is_valid_room_id("!abc:example.org", V12)
    assert not is_valid_room_id("!nGK6SXKCW5tf/+nWPCNeVk/MjldXzpRX5ZlToEXFYdo", V12)  # not URL-safe


def test_event_ids_per_version() -> None:
    assert is_valid_event_id("$abc:example.org", V1)
    assert not is_valid_event_id("$UPaZGPDSX-cE0TRHRP_UUY2hVl7t335NDr30vzjxgH4", V1)
    assert is_valid_event_id("$UPaZGPDSX+cE0TRHRP/UUY2hVl7t335NDr30vzjxgH4", V3)
    assert not is_valid_event_id("$UPaZGPDSX-cE0TRHRP_UUY2hVl7t335NDr30vzjxgH4", V3)
    assert is_valid_event_id("$UPaZGPDSX-cE0TRHRP_UUY2hVl7t335NDr30vzjxgH4", V4)
    assert not is_valid_event_id("$UPaZGPDSX+cE0TRHRP/UUY2hVl7t335NDr30vzjxgH4", V4)


def test_server_name_of_and_fresh_ids() -> None:
    assert server_name_of("@a:example.org:8448") == "example.org:8448"
    with pytest.raises(ValueError):
        server_name_of("$hashonly")
    eid = new_legacy_event_id("example.org")
    assert is_valid_event_id(eid, V1) and server_name_of(eid) == "example.org"
    assert eid != new_legacy_event_id("example.org")
    rid = new_legacy_room_id("example.org")
    assert is_valid_room_id(rid, V11) and rid[1:-12].isalpha()
