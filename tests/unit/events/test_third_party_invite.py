"""events/third_party_invite.py: which published keys of an m.room.third_party_invite signed a
`signed` block, with the key_validity_url the resident server then asks (the auth rules only
need "any"; tests/unit/events/test_auth_edges.py covers those)."""

from __future__ import annotations

import base64

from signedjson.key import generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from dendrite_lite.events.third_party_invite import published_keys, signing_keys, verify_signed_block

LONG, EPHEMERAL, OTHER = (generate_signing_key(v) for v in ("0", "eph", "9"))


def _b64(key: object) -> str:
    return base64.b64encode(bytes(get_verify_key(key))).decode().rstrip("=")  # type: ignore[arg-type]


CONTENT = {
    "display_name": "a...@e...",
    "public_key": _b64(LONG),
    "key_validity_url": "https://id.example/_matrix/identity/v2/pubkey/isvalid",
    "public_keys": [
        {"public_key": _b64(LONG), "key_validity_url": "https://id.example/_matrix/identity/v2/pubkey/isvalid"},
        {"public_key": _b64(EPHEMERAL), "key_validity_url": "https://id.example/_matrix/identity/v2/pubkey/ephemeral/isvalid"},
        {"public_key": base64.urlsafe_b64encode(bytes(get_verify_key(OTHER))).decode()},  # no URL
        {"public_key": "not a key"},
        "not an object",
    ],
}


def test_published_keys_in_order_with_their_urls() -> None:
    keys = published_keys(CONTENT)
    assert [k.key_validity_url for k in keys] == [
        "https://id.example/_matrix/identity/v2/pubkey/isvalid",
        "https://id.example/_matrix/identity/v2/pubkey/isvalid",
        "https://id.example/_matrix/identity/v2/pubkey/ephemeral/isvalid",
        None,  # valid indefinitely
    ]
    assert keys[3].raw == bytes(get_verify_key(OTHER))


def test_the_keys_that_signed() -> None:
    block = {"mxid": "@a:b.example", "token": "tok"}
    by_ephemeral = sign_json(dict(block), "id.example", EPHEMERAL)
    assert [k.public_key for k in signing_keys(by_ephemeral, CONTENT)] == [_b64(EPHEMERAL)]
    by_long = sign_json(dict(block), "id.example", LONG)
    # Published twice (public_key and public_keys[0]): both entries, each with its URL.
    assert len(signing_keys(by_long, CONTENT)) == 2
    by_other = sign_json(dict(block), "id.example", OTHER)
    assert [k.key_validity_url for k in signing_keys(by_other, CONTENT)] == [None]
    stranger = sign_json(dict(block), "id.example", generate_signing_key("x"))
    assert signing_keys(stranger, CONTENT) == [] and not verify_signed_block(stranger, CONTENT)
    tampered = {**by_long, "mxid": "@mallory:b.example"}
    assert signing_keys(tampered, CONTENT) == []
    assert signing_keys({**block, "signatures": "nope"}, CONTENT) == []
