"""Event <-> JSON shapes: event_from_pdu, the federation PDU and the client event format."""

from __future__ import annotations

from typing import Any

from dendrite_lite.events.ids import compute_event_id
from dendrite_lite.events.pdu import client_format, event_from_pdu, is_create_event, pdu_for_federation
from dendrite_lite.events.room_versions import get_room_version

V1, V10, V11 = (get_room_version(v) for v in ("1", "10", "11"))

PDU: dict[str, Any] = {
    "type": "m.room.redaction",
    "sender": "@a:x",
    "room_id": "!r:x",
    "content": {"reason": "spam"},
    "redacts": "$old",
    "depth": 4,
    "origin_server_ts": 1000,
    "prev_events": ["$p"],
    "auth_events": ["$a"],
    "hashes": {"sha256": "h"},
    "signatures": {"x": {"ed25519:1": "s"}},
    "unsigned": {"age_ts": 900, "other": 1},
}


def test_event_from_pdu_keeps_pdu_and_sets_rejection() -> None:
    ev = event_from_pdu(PDU, V10, rejected_reason="auth")
    assert ev.pdu is PDU
    assert ev.event_id == compute_event_id(PDU, V10)
    assert ev.rejected_reason == "auth"


def test_federation_pdu_v3_plus_has_no_event_id_and_age_from_age_ts() -> None:
    ev = event_from_pdu(PDU, V10)
    out = pdu_for_federation(ev, now_ms=1000)
    assert "event_id" not in out
    assert out["unsigned"] == {"age": 100, "other": 1}
    assert PDU["unsigned"] == {"age_ts": 900, "other": 1}  # not mutated
    # The receiver computes the same id from what we send.
    assert compute_event_id(out, V10) == ev.event_id
    assert pdu_for_federation(ev)["unsigned"] == {"other": 1}


def test_federation_pdu_v1_carries_event_id() -> None:
    pdu = {**PDU, "event_id": "$e:x", "prev_events": [["$p:x", {"sha256": "h"}]], "auth_events": []}
    assert pdu_for_federation(event_from_pdu(pdu, V1))["event_id"] == "$e:x"


def test_client_format_redaction_has_redacts_in_both_places() -> None:
    for rv, pdu in ((V10, PDU), (V11, {**{k: v for k, v in PDU.items() if k != "redacts"}, "content": {"redacts": "$old"}})):
        out = client_format(event_from_pdu(pdu, rv), unsigned={"age": 5})
        assert out["redacts"] == "$old"
        assert out["content"]["redacts"] == "$old"
        assert out["unsigned"] == {"age": 5}
        assert set(out) == {"content", "event_id", "origin_server_ts", "room_id", "sender", "type", "redacts", "unsigned"}
    assert "redacts" not in PDU["content"]  # not mutated


def test_client_format_state_event_and_without_room_id() -> None:
    pdu = {**PDU, "type": "m.room.topic", "state_key": "", "content": {"topic": "t"}}
    pdu.pop("redacts")
    out = client_format(event_from_pdu(pdu, V11), include_room_id=False)
    assert out == {
        "content": {"topic": "t"},
        "event_id": compute_event_id(pdu, V11),
        "origin_server_ts": 1000,
        "sender": "@a:x",
        "type": "m.room.topic",
        "state_key": "",
    }


def test_is_create_event() -> None:
    assert is_create_event({"type": "m.room.create", "state_key": ""})
    assert not is_create_event({"type": "m.room.create"})
    assert not is_create_event({"type": "m.room.create", "state_key": "x"})
