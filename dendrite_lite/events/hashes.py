"""Content hash and reference hash of an event (server-server-api.md §Calculating the content
hash / reference hash for an event)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from dendrite_lite.crypto.canonical import decode_base64, encode_base64, encode_canonical_json
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import RoomVersion

__all__ = [
    "compute_content_hash",
    "content_hash_base64",
    "check_content_hash",
    "add_content_hash",
    "compute_reference_hash",
]

# Not covered by the content hash: `unsigned` changes in transit, signatures depend on the hash,
# and an existing hash must not feed into itself.
_CONTENT_HASH_EXCLUDED = ("unsigned", "signatures", "hashes")


def compute_content_hash(pdu: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical JSON of the unredacted event without unsigned/signatures/hashes."""
    body = {k: v for k, v in pdu.items() if k not in _CONTENT_HASH_EXCLUDED}
    return hashlib.sha256(encode_canonical_json(body)).digest()


def content_hash_base64(pdu: Mapping[str, Any]) -> str:
    return encode_base64(compute_content_hash(pdu))


def check_content_hash(pdu: Mapping[str, Any]) -> bool:
    """True if `hashes.sha256` matches the event. False if it does not, is missing or is not
    base64: the caller must then use the redacted event (§Validating hashes and signatures)."""
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    try:
        expected = decode_base64(hashes.get("sha256"))  # type: ignore[arg-type]
    except ValueError:
        return False
    return expected == compute_content_hash(pdu)


def add_content_hash(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `pdu` with `hashes.sha256` set (other hash algorithms, if any, are kept)."""
    out = dict(pdu)
    hashes = pdu.get("hashes")
    out["hashes"] = {**(hashes if isinstance(hashes, Mapping) else {}), "sha256": content_hash_base64(pdu)}
    return out


def compute_reference_hash(pdu: Mapping[str, Any], rv: RoomVersion) -> bytes:
    """SHA-256 of the canonical JSON of the redacted event without signatures and unsigned.

    Pass the PDU exactly as sent over federation: for v3+ that has no `event_id` (one that is
    present is hashed, as the spec and Synapse do, so never hash a client-format copy).
    """
    body = redact(pdu, rv)
    body.pop("signatures", None)
    body.pop("unsigned", None)
    return hashlib.sha256(encode_canonical_json(body)).digest()
