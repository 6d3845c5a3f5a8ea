"""Event signature verification (server-server-api.md §Validating hashes and signatures on
received events; fragments/v5-signing-requirements.md): who must sign, key expiry, validity."""

from __future__ import annotations

from typing import Any

import pytest
from signedjson.key import generate_signing_key

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import InMemoryKeyStore, ServerVerifyKey, sign_json
from dendrite_lite.events.pdu import event_from_pdu
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import RoomVersion, get_room_version
from dendrite_lite.events.signing import (
    KeyRequest,
    SignatureError,
    add_event_signature,
    hash_and_sign_event,
    key_requests_for_event,
    key_usable_for_event,
    required_signers,
    verify_event_signatures,
)

V1, V4, V5, V8, V11 = (get_room_version(v) for v in ("1", "4", "5", "8", "11"))
TS = 1_700_000_000_000
A = ServerKey(generate_signing_key("a1"))
A_OLD = ServerKey(generate_signing_key("old"))
B = ServerKey(generate_signing_key("b1"))


def pdu_for(rv: RoomVersion, **changes: Any) -> dict[str, Any]:
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "sender": "@alice:a.example",
        "room_id": "!room:a.example",
        "content": {"body": "hi"},
        "depth": 3,
        "origin_server_ts": TS,
        "prev_events": [],
        "auth_events": [],
    }
    if rv.event_id_in_event:
        pdu["event_id"] = "$e:a.example"
    pdu.update(changes)
    return pdu


def store(*keys: ServerVerifyKey) -> InMemoryKeyStore:
    s = InMemoryKeyStore()
    for k in keys:
        s.add(k)
    return s


def vk(server: str, key: ServerKey, **validity: int | None) -> ServerVerifyKey:
    return ServerVerifyKey(server, key.key_id, key.verify_key, **validity)  # type: ignore[arg-type]


GOOD_A = vk("a.example", A, valid_until_ts=TS + 1)
GOOD_B = vk("b.example", B, valid_until_ts=TS + 1)


@pytest.mark.parametrize("version", ["1", "3", "4", "10", "11", "12"])
def test_signed_event_verifies_in_every_format(version: str) -> None:
    rv = get_room_version(version)
    changes = {"room_id": "!nGK6SXKCW5tf_-nWPCNeVk_MjldXzpRX5ZlToEXFYdo"} if rv.room_id_is_create_event_hash else {}
    signed = hash_and_sign_event(pdu_for(rv, **changes), rv, "a.example", A)
    verify_event_signatures(signed, rv, store(GOOD_A))
    verify_event_signatures(event_from_pdu(signed, rv), rv, store(GOOD_A))
    # Still valid after redaction: signatures cover the redacted form.
    verify_event_signatures(redact(signed, rv), rv, store(GOOD_A))
    with pytest.raises(SignatureError, match="bad signature from a.example"):
        verify_event_signatures({**signed, "depth": 4}, rv, store(GOOD_A))


def test_missing_signature_and_unknown_key() -> None:
    unsigned = pdu_for(V11)
    with pytest.raises(SignatureError, match="event is not signed by a.example"):
        verify_event_signatures(unsigned, V11, store(GOOD_A))
    signed = hash_and_sign_event(unsigned, V11, "a.example", A)
    with pytest.raises(SignatureError, match=r"no known valid key of a.example among ed25519:a1"):
        verify_event_signatures(signed, V11, store())


def test_signature_from_another_server_is_not_enough() -> None:
    signed_by_b = hash_and_sign_event(pdu_for(V11), V11, "b.example", B)
    with pytest.raises(SignatureError, match="not signed by a.example"):
        verify_event_signatures(signed_by_b, V11, store(GOOD_A, GOOD_B))


def test_unknown_extra_key_is_skipped_but_a_known_bad_one_fails() -> None:
    signed = hash_and_sign_event(pdu_for(V11), V11, "a.example", A)
    extra = {**signed, "signatures": {"a.example": {**signed["signatures"]["a.example"], "ed25519:zzz": "AAAA"}}}
    verify_event_signatures(extra, V11, store(GOOD_A))  # ed25519:zzz unknown -> ignored
    bad_known = {**signed, "signatures": {"a.example": {"ed25519:a1": signed["signatures"]["a.example"]["ed25519:a1"], "ed25519:b1": "AAAA"}}}
    with pytest.raises(SignatureError, match=r"bad signature from a.example \(ed25519:b1\)"):
        verify_event_signatures(bad_known, V11, store(GOOD_A, vk("a.example", B, valid_until_ts=TS)))


def test_old_key_honoured_until_its_expiry() -> None:
    signed = hash_and_sign_event(pdu_for(V11), V11, "a.example", A_OLD)
    verify_event_signatures(signed, V11, store(vk("a.example", A_OLD, expired_ts=TS)))
    verify_event_signatures(signed, V4, store(vk("a.example", A_OLD, expired_ts=TS)))
    # Expired before the event was created: ignored, so nothing valid is left.
    for rv in (V4, V11):
        with pytest.raises(SignatureError, match="no known valid key"):
            verify_event_signatures(signed, rv, store(vk("a.example", A_OLD, expired_ts=TS - 1)))


def test_enforce_key_validity_from_v5() -> None:
    key = vk("a.example", A, valid_until_ts=TS - 1)
    for rv in (V4, V5):
        signed = hash_and_sign_event(pdu_for(rv), rv, "a.example", A)
        if rv.enforce_key_validity:
            with pytest.raises(SignatureError, match="no known valid key"):
                verify_event_signatures(signed, rv, store(key))
            verify_event_signatures(signed, rv, store(vk("a.example", A, valid_until_ts=TS)))
        else:
            verify_event_signatures(signed, rv, store(key))  # v1-v4: valid_until_ts not enforced
    assert not key_usable_for_event(vk("a.example", A), TS, V5)  # unknown validity
    assert key_usable_for_event(vk("a.example", A), TS, V4)


def test_v1_needs_event_id_server_signature_too() -> None:
    pdu = pdu_for(V1, event_id="$e:b.example")
    assert required_signers(pdu, V1) == {"a.example", "b.example"}
    signed_a = hash_and_sign_event(pdu, V1, "a.example", A)
    with pytest.raises(SignatureError, match="not signed by b.example"):
        verify_event_signatures(signed_a, V1, store(GOOD_A, GOOD_B))
    both = {**signed_a, "signatures": {**signed_a["signatures"], **sign_json(redact(signed_a, V1), "b.example", B)["signatures"]}}
    verify_event_signatures(both, V1, store(GOOD_A, GOOD_B))
    # An Event whose pdu lacks event_id still checks the id it was created with.
    assert required_signers(event_from_pdu(both, V1), V1) == {"a.example", "b.example"}


def test_third_party_invite_needs_no_sender_server_signature() -> None:
    content = {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}}
    pdu = pdu_for(V11, type="m.room.member", state_key="@bob:c.example", content=content)
    assert required_signers(pdu, V11) == set()
    verify_event_signatures(hash_and_sign_event(pdu, V11, "b.example", B), V11, store())
    plain_invite = pdu_for(V11, type="m.room.member", state_key="@bob:c.example", content={"membership": "invite"})
    assert required_signers(plain_invite, V11) == {"a.example"}


def test_restricted_join_needs_authorising_server_from_v8() -> None:
    content = {"membership": "join", "join_authorised_via_users_server": "@admin:b.example"}
    pdu = pdu_for(V8, type="m.room.member", state_key="@alice:a.example", content=content)
    assert required_signers(pdu, V8) == {"a.example", "b.example"}
    assert required_signers(pdu_for(get_room_version("7"), **{k: pdu[k] for k in ("type", "state_key", "content")}), get_room_version("7")) == {"a.example"}
    signed = hash_and_sign_event(pdu, V8, "a.example", A)
    with pytest.raises(SignatureError, match="not signed by b.example"):
        verify_event_signatures(signed, V8, store(GOOD_A, GOOD_B))
    cosigned = add_event_signature(signed, V8, "b.example", B)
    assert {k: v for k, v in cosigned.items() if k != "signatures"} == {k: v for k, v in signed.items() if k != "signatures"}
    assert cosigned["signatures"]["a.example"] == signed["signatures"]["a.example"]
    assert "b.example" not in signed["signatures"]  # the input is not modified
    verify_event_signatures(cosigned, V8, store(GOOD_A, GOOD_B))
    bad = {**pdu, "content": {**content, "join_authorised_via_users_server": "nobody"}}
    with pytest.raises(SignatureError, match="not a user id"):
        required_signers(bad, V8)


def test_key_requests_list_what_to_fetch() -> None:
    pdu = pdu_for(V8, type="m.room.member", state_key="@alice:a.example",
                  content={"membership": "join", "join_authorised_via_users_server": "@admin:b.example"})
    signed = hash_and_sign_event(pdu, V8, "a.example", A)
    signed["signatures"]["b.example"] = {"ed25519:b1": "x", "rsa:1": "y"}
    assert key_requests_for_event(signed, V8) == [
        KeyRequest("a.example", "ed25519:a1", TS),
        KeyRequest("b.example", "ed25519:b1", TS),
    ]
    # v1-v4 keys need not be valid at the event's time: no minimum validity.
    assert key_requests_for_event(hash_and_sign_event(pdu_for(V4), V4, "a.example", A), V4) == [
        KeyRequest("a.example", "ed25519:a1", 0)
    ]


def test_sender_without_server_name() -> None:
    with pytest.raises(SignatureError, match="has no server name"):
        required_signers(pdu_for(V11, sender="@alice"), V11)
