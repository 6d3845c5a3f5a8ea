"""Signing JSON and checking signatures (appendices §Signing JSON, §Checking for a Signature).

Also the `KeyStore` protocol through which signature checks find other servers' verify keys.
It is synchronous on purpose: protocol code stays pure, and callers that must fetch keys over
the network first ask `events.signing.key_requests_for_event` which keys are needed, fetch them,
then verify against a store that answers from memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nacl.exceptions import BadSignatureError
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import sign_json as _signedjson_sign
from signedjson.types import VerifyKey

from dendrite_lite.crypto.canonical import decode_base64, encode_canonical_json
from dendrite_lite.crypto.keys import ServerKey

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "SignatureError",
    "ServerVerifyKey",
    "KeyStore",
    "InMemoryKeyStore",
    "sign_json",
    "signature_key_ids",
    "verify_json_signature",
    "decode_verify_key",
    "effective_valid_until_ts",
    "MAX_KEY_VALIDITY_MS",
]

SUPPORTED_ALGORITHMS = frozenset({"ed25519"})

# fragments/v5-signing-requirements.md: use the lesser of valid_until_ts and 7 days ahead, so a
# key published with a far-future validity can still be revoked within a week.
MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000


class SignatureError(Exception):
    """A signature is missing, malformed or wrong; the message says which and why."""


@dataclass(frozen=True, slots=True)
class ServerVerifyKey:
    """A verify key of a server as the key store knows it.

    `valid_until_ts` comes from `verify_keys` of a key response (already capped with
    `effective_valid_until_ts`); `expired_ts` is set for `old_verify_keys` (the key signed
    nothing after that time). Either may be None when unknown.
    """

    server_name: str
    key_id: str
    verify_key: VerifyKey
    valid_until_ts: int | None = None
    expired_ts: int | None = None


class KeyStore(Protocol):
    def get_verify_key(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> ServerVerifyKey | None:
        """The key `key_id` of `server_name`, or None if unknown.

        `minimum_valid_until_ts` is a hint (the event's origin_server_ts, or 0): a store
        backed by remote fetching uses it to decide whether a cached key needs refreshing.
        The caller still checks validity itself, so a store may ignore it.
        """
        ...


class InMemoryKeyStore:
    """A KeyStore over a dict; for tests, and for callers that pre-fetched the keys they need."""

    def __init__(self, keys: Mapping[tuple[str, str], ServerVerifyKey] | None = None) -> None:
        self._keys: dict[tuple[str, str], ServerVerifyKey] = dict(keys or {})

    def add(self, key: ServerVerifyKey) -> None:
        self._keys[(key.server_name, key.key_id)] = key

    def get_verify_key(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> ServerVerifyKey | None:
        return self._keys.get((server_name, key_id))


def effective_valid_until_ts(valid_until_ts: int, fetched_at_ms: int) -> int:
    """The validity to record for a freshly fetched key (v5-signing-requirements)."""
    return min(valid_until_ts, fetched_at_ms + MAX_KEY_VALIDITY_MS)


def decode_verify_key(key_id: str, key_base64: str) -> VerifyKey:
    """A VerifyKey from `ed25519:<version>` and its unpadded-base64 public key.
    Raises ValueError for an unsupported algorithm or a malformed key."""
    alg, _, version = key_id.partition(":")
    if alg not in SUPPORTED_ALGORITHMS or not version:
        raise ValueError(f"unsupported key id {key_id!r}")
    raw = decode_base64(key_base64)
    if len(raw) != 32:
        raise ValueError(f"key {key_id!r} is not 32 bytes")
    return decode_verify_key_bytes(key_id, raw)


def sign_json(obj: Mapping[str, Any], signing_name: str, key: ServerKey) -> dict[str, Any]:
    """A copy of `obj` with our signature added under signatures[signing_name][key_id].

    Existing signatures are kept; `unsigned` is kept but not covered by the signature.
    """
    copy = dict(obj)
    # Copy the nested signature maps too, so the caller's object is never mutated.
    sigs = copy.get("signatures")
    copy["signatures"] = {k: dict(v) for k, v in sigs.items()} if isinstance(sigs, dict) else {}
    signed: dict[str, Any] = _signedjson_sign(copy, signing_name, key.signing_key)
    return signed


def signature_key_ids(obj: Mapping[str, Any], signing_name: str) -> list[str]:
    """Key ids of `signing_name`'s signatures on `obj` whose algorithm we understand."""
    sigs = obj.get("signatures")
    if not isinstance(sigs, Mapping):
        return []
    entry = sigs.get(signing_name)
    if not isinstance(entry, Mapping):
        return []
    return sorted(k for k in entry if isinstance(k, str) and k.split(":", 1)[0] in SUPPORTED_ALGORITHMS)


def verify_json_signature(
    obj: Mapping[str, Any], signing_name: str, key_id: str, verify_key: VerifyKey
) -> None:
    """Check `signing_name`'s signature with `key_id` on `obj`; raise SignatureError if it is
    missing, not base64, or does not verify over the canonical JSON without
    `signatures`/`unsigned`."""
    sigs = obj.get("signatures")
    entry = sigs.get(signing_name) if isinstance(sigs, Mapping) else None
    sig_b64 = entry.get(key_id) if isinstance(entry, Mapping) else None
    if sig_b64 is None:
        raise SignatureError(f"no signature from {signing_name} with key {key_id}")
    try:
        sig = decode_base64(sig_b64)
    except ValueError:
        raise SignatureError(f"signature from {signing_name} ({key_id}) is not base64") from None
    message = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    try:
        verify_key.verify(encode_canonical_json(message), sig)
    except (BadSignatureError, ValueError):
        # nacl raises ValueError for a signature of the wrong length.
        raise SignatureError(f"bad signature from {signing_name} ({key_id})") from None
