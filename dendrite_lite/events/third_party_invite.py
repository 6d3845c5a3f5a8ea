"""Verifying the `signed` block of a third-party invite against an m.room.third_party_invite.

Auth rule "If any signature in `signed` matches any public key in the m.room.third_party_invite
event, allow": the identity server signed {mxid, token, ...} and published the verify keys in the
room. Pure: the keys come from the event, so no network is needed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

__all__ = [
    "PublishedKey",
    "decode_base64",
    "public_keys_of",
    "published_keys",
    "signing_keys",
    "verify_signed_block",
]


def decode_base64(value: str) -> bytes | None:
    """Unpadded (or padded) standard or URL-safe base64, as identity servers publish keys."""
    s = value.strip().rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """One key of an m.room.third_party_invite: as published, decoded, and where its validity
    may be checked (None: "the key must be considered valid indefinitely")."""

    public_key: str
    raw: bytes
    key_validity_url: str | None


def published_keys(invite_content: Mapping[str, Any]) -> list[PublishedKey]:
    """The ed25519 keys of an m.room.third_party_invite: `public_key` (with the top-level
    `key_validity_url`) and each `public_keys[]` entry (with its own), undecodable ones left out."""
    candidates: list[tuple[Any, Any]] = []
    if invite_content.get("public_key") is not None:
        candidates.append((invite_content["public_key"], invite_content.get("key_validity_url")))
    keys = invite_content.get("public_keys")
    if isinstance(keys, list):
        candidates.extend(
            (k.get("public_key"), k.get("key_validity_url")) for k in keys if isinstance(k, dict)
        )
    out = []
    for candidate, url in candidates:
        if isinstance(candidate, str):
            raw = decode_base64(candidate)
            if raw is not None and len(raw) == 32:
                out.append(PublishedKey(candidate, raw, url if isinstance(url, str) else None))
    return out


def public_keys_of(invite_content: Mapping[str, Any]) -> Iterator[bytes]:
    """The ed25519 public keys of an m.room.third_party_invite, decoded."""
    return (k.raw for k in published_keys(invite_content))


def signing_keys(signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> list[PublishedKey]:
    """The published keys of which `signed.signatures` holds a valid ed25519 signature (the
    resident server then checks that each is still valid at its key_validity_url)."""
    signatures = signed.get("signatures")
    if not isinstance(signatures, dict):
        return []
    try:
        message = encode_canonical_json(
            {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
        )
    except (TypeError, ValueError):  # not representable as canonical JSON: cannot be signed
        return []
    sigs = []
    for per_server in signatures.values():
        if not isinstance(per_server, dict):
            continue
        for key_id, sig_b64 in per_server.items():
            if not (isinstance(key_id, str) and key_id.startswith("ed25519:")):
                continue
            sig = decode_base64(sig_b64) if isinstance(sig_b64, str) else None
            if sig is not None and len(sig) == 64:
                sigs.append(sig)
    found = []
    for key in published_keys(invite_content):
        verify_key = VerifyKey(key.raw)
        for sig in sigs:
            try:
                verify_key.verify(message, sig)
            except BadSignatureError:
                continue
            found.append(key)
            break
    return found


def verify_signed_block(signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> bool:
    """True if any ed25519 signature in `signed.signatures` verifies with any published key."""
    return bool(signing_keys(signed, invite_content))
