"""Verifying the `signed` block of a third-party invite against an m.room.third_party_invite.

Auth rule "If any signature in `signed` matches any public key in the m.room.third_party_invite
event, allow": the identity server signed {mxid, token, ...} and published the verify keys in the
room. Pure: the keys come from the event, so no network is needed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from typing import Any

from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

__all__ = ["decode_base64", "public_keys_of", "verify_signed_block"]


def decode_base64(value: str) -> bytes | None:
    """Unpadded (or padded) standard or URL-safe base64, as identity servers publish keys."""
    s = value.strip().rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def public_keys_of(invite_content: Mapping[str, Any]) -> Iterator[bytes]:
    """The ed25519 public keys of an m.room.third_party_invite.

    `public_key` and `public_keys[].public_key` (the m.room.third_party_invite schema; entries
    carry `public_key` and an optional `key_validity_url`).
    """
    single = invite_content.get("public_key")
    candidates: list[Any] = [single] if single is not None else []
    keys = invite_content.get("public_keys")
    if isinstance(keys, list):
        candidates.extend(k.get("public_key") for k in keys if isinstance(k, dict))
    for candidate in candidates:
        if isinstance(candidate, str):
            raw = decode_base64(candidate)
            if raw is not None and len(raw) == 32:
                yield raw


def verify_signed_block(signed: Mapping[str, Any], invite_content: Mapping[str, Any]) -> bool:
    """True if any ed25519 signature in `signed.signatures` verifies with any published key."""
    signatures = signed.get("signatures")
    if not isinstance(signatures, dict):
        return False
    try:
        message = encode_canonical_json(
            {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
        )
    except (TypeError, ValueError):  # not representable as canonical JSON: cannot be signed
        return False
    verify_keys = [VerifyKey(raw) for raw in public_keys_of(invite_content)]
    if not verify_keys:
        return False
    for per_server in signatures.values():
        if not isinstance(per_server, dict):
            continue
        for key_id, sig_b64 in per_server.items():
            if not (isinstance(key_id, str) and key_id.startswith("ed25519:")):
                continue
            sig = decode_base64(sig_b64) if isinstance(sig_b64, str) else None
            if sig is None or len(sig) != 64:
                continue
            for vk in verify_keys:
                try:
                    vk.verify(message, sig)
                    return True
                except BadSignatureError:
                    continue
    return False
