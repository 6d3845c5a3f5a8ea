"""JSON signing: the appendix's signing-key seed and §JSON Signing vectors, byte for byte, and
signature checking (appendices §Checking for a Signature)."""

from __future__ import annotations

import pytest
from signedjson.key import decode_signing_key_base64, generate_signing_key

from dendrite_lite.crypto.canonical import encode_base64
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import (
    MAX_KEY_VALIDITY_MS,
    InMemoryKeyStore,
    ServerVerifyKey,
    SignatureError,
    decode_verify_key,
    effective_valid_until_ts,
    sign_json,
    signature_key_ids,
    verify_json_signature,
)

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SPEC_KEY = ServerKey(decode_signing_key_base64("ed25519", "1", SEED))


def test_spec_signing_key_id() -> None:
    assert SPEC_KEY.key_id == "ed25519:1"


def test_spec_vector_sign_empty_object() -> None:
    assert sign_json({}, "domain", SPEC_KEY) == {
        "signatures": {
            "domain": {
                "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
            }
        }
    }


def test_spec_vector_sign_object_with_values() -> None:
    assert sign_json({"one": 1, "two": "Two"}, "domain", SPEC_KEY) == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
            }
        },
        "two": "Two",
    }


def test_sign_json_keeps_unsigned_out_of_the_signature_and_does_not_mutate() -> None:
    original = {"one": 1, "two": "Two", "unsigned": {"age_ts": 5}, "signatures": {"other": {"ed25519:x": "sig"}}}
    signed = sign_json(original, "domain", SPEC_KEY)
    assert original == {"one": 1, "two": "Two", "unsigned": {"age_ts": 5}, "signatures": {"other": {"ed25519:x": "sig"}}}
    # Same signature as the vector without unsigned/other signatures: neither is covered.
    assert signed["signatures"]["domain"]["ed25519:1"].startswith("KqmLSbO39")
    assert signed["signatures"]["other"] == {"ed25519:x": "sig"}
    assert signed["unsigned"] == {"age_ts": 5}


def test_verify_round_trip_and_tampering() -> None:
    signed = sign_json({"a": 1, "unsigned": {"x": 1}}, "domain", SPEC_KEY)
    verify_json_signature(signed, "domain", "ed25519:1", SPEC_KEY.verify_key)
    # unsigned may change in transit
    verify_json_signature({**signed, "unsigned": {"y": 2}}, "domain", "ed25519:1", SPEC_KEY.verify_key)
    with pytest.raises(SignatureError, match="bad signature"):
        verify_json_signature({**signed, "a": 2}, "domain", "ed25519:1", SPEC_KEY.verify_key)
    other = ServerKey(generate_signing_key("1"))
    with pytest.raises(SignatureError, match="bad signature"):
        verify_json_signature(signed, "domain", "ed25519:1", other.verify_key)
    with pytest.raises(SignatureError, match="no signature from elsewhere"):
        verify_json_signature(signed, "elsewhere", "ed25519:1", SPEC_KEY.verify_key)


@pytest.mark.parametrize(("sig", "match"), [("!!notbase64", "not base64"), (encode_base64(b"short"), "bad signature")])
def test_verify_rejects_malformed_signatures(sig: str, match: str) -> None:
    obj = {"a": 1, "signatures": {"domain": {"ed25519:1": sig}}}
    with pytest.raises(SignatureError, match=match):
        verify_json_signature(obj, "domain", "ed25519:1", SPEC_KEY.verify_key)


def test_signature_key_ids_skips_unknown_algorithms() -> None:
    obj = {"signatures": {"d": {"ed25519:b": "x", "curve9:a": "y", "ed25519:a": "z"}}}
    assert signature_key_ids(obj, "d") == ["ed25519:a", "ed25519:b"]
    assert signature_key_ids(obj, "missing") == []
    assert signature_key_ids({"signatures": "junk"}, "d") == []


def test_decode_verify_key() -> None:
    vk = decode_verify_key("ed25519:1", SPEC_KEY.verify_key_base64)
    assert bytes(vk) == bytes(SPEC_KEY.verify_key)
    assert vk.version == "1"
    with pytest.raises(ValueError):
        decode_verify_key("rsa:1", SPEC_KEY.verify_key_base64)
    with pytest.raises(ValueError):
        decode_verify_key("ed25519:1", encode_base64(b"x" * 31))


def test_in_memory_key_store() -> None:
    key = ServerVerifyKey("domain", "ed25519:1", SPEC_KEY.verify_key, valid_until_ts=10)
    store = InMemoryKeyStore()
    assert store.get_verify_key("domain", "ed25519:1", 0) is None
    store.add(key)
    assert store.get_verify_key("domain", "ed25519:1", 0) == key
    assert store.get_verify_key("domain", "ed25519:2", 0) is None


def test_effective_validity_is_capped_at_seven_days() -> None:
    assert effective_valid_until_ts(1_000, 0) == 1_000
    assert effective_valid_until_ts(10**15, 5) == 5 + MAX_KEY_VALIDITY_MS
    assert MAX_KEY_VALIDITY_MS == 604_800_000
