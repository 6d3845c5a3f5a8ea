"""Hashing + signing our events, and checking other servers' signatures on theirs
(server-server-api.md §Signing Events, §Validating hashes and signatures on received events;
fragments/v5-signing-requirements.md).

Signatures always cover the *redacted* event, so they still verify after a redaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import (
    KeyStore,
    ServerVerifyKey,
    SignatureError,
    sign_json,
    signature_key_ids,
    verify_json_signature,
)
from dendrite_lite.events.event import Event
from dendrite_lite.events.hashes import add_content_hash
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import RoomVersion

__all__ = [
    "SignatureError",
    "KeyRequest",
    "hash_and_sign_event",
    "add_event_signature",
    "required_signers",
    "key_requests_for_event",
    "verify_event_signatures",
    "key_usable_for_event",
]


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A verify key needed to check an event, for callers that fetch keys before verifying."""

    server_name: str
    key_id: str
    minimum_valid_until_ts: int


def hash_and_sign_event(
    pdu: Mapping[str, Any], rv: RoomVersion, server_name: str, key: ServerKey
) -> dict[str, Any]:
    """A copy of `pdu` with its content hash and our signature (over the redacted copy)."""
    return add_event_signature(add_content_hash(pdu), rv, server_name, key)


def add_event_signature(
    pdu: Mapping[str, Any], rv: RoomVersion, server_name: str, key: ServerKey
) -> dict[str, Any]:
    """A copy of someone else's event with our signature added and nothing else changed (e.g.
    as the authorising server of a restricted join, or the resident server on send_join)."""
    signed = sign_json(redact(pdu, rv), server_name, key)
    out = dict(pdu)
    out["signatures"] = signed["signatures"]
    return out


def _pdu_and_id(event_or_pdu: Event | Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    if isinstance(event_or_pdu, Event):
        return event_or_pdu.pdu, event_or_pdu.event_id
    event_id = event_or_pdu.get("event_id")
    return event_or_pdu, event_id if isinstance(event_id, str) else None


def _domain(user_or_event_id: Any, what: str) -> str:
    if not isinstance(user_or_event_id, str):
        raise SignatureError(f"{what} is not a string")
    try:
        return server_name_of(user_or_event_id)
    except ValueError:
        raise SignatureError(f"{what} {user_or_event_id!r} has no server name") from None


def required_signers(event_or_pdu: Event | Mapping[str, Any], rv: RoomVersion) -> set[str]:
    """The servers whose signatures the event must carry.

    - The sender's server, except for an invite made from a third-party invite: its sender
      matches the third-party invite but any server may have sent it (the auth rules check the
      third-party signature instead).
    - v1/v2: also the server of the event id, if different.
    - v8+ joins via a restricted join rule: also the server of the authorising user.
    """
    pdu, event_id = _pdu_and_id(event_or_pdu)
    content = pdu.get("content")
    content = content if isinstance(content, Mapping) else {}
    is_member = pdu.get("type") == "m.room.member"
    membership = content.get("membership")
    servers: set[str] = set()
    if not (is_member and membership == "invite" and "third_party_invite" in content):
        servers.add(_domain(pdu.get("sender"), "sender"))
    if rv.event_id_in_event:
        servers.add(_domain(event_id, "event_id"))
    if rv.restricted_join_rule and is_member and membership == "join":
        authoriser = content.get("join_authorised_via_users_server")
        if authoriser is not None:
            if not is_valid_user_id(authoriser):
                raise SignatureError("join_authorised_via_users_server is not a user id")
            servers.add(_domain(authoriser, "join_authorised_via_users_server"))
    return servers


def _key_ts(pdu: Mapping[str, Any], rv: RoomVersion) -> int:
    ts = pdu.get("origin_server_ts")
    return ts if rv.enforce_key_validity and isinstance(ts, int) else 0


def key_requests_for_event(event_or_pdu: Event | Mapping[str, Any], rv: RoomVersion) -> list[KeyRequest]:
    """Every (server, key id) whose verify key the signature check will look up."""
    pdu, _ = _pdu_and_id(event_or_pdu)
    ts = _key_ts(pdu, rv)
    return [
        KeyRequest(server, key_id, ts)
        for server in sorted(required_signers(event_or_pdu, rv))
        for key_id in signature_key_ids(pdu, server)
    ]


def key_usable_for_event(key: ServerVerifyKey, origin_server_ts: int, rv: RoomVersion) -> bool:
    """May `key` vouch for an event created at `origin_server_ts`?

    A key known to have expired before the event is ignored in every room version (an old key
    stays good for events from before its `expired_ts`). From v5 the key must moreover have
    been valid (`valid_until_ts`) at the event's time.
    """
    if key.expired_ts is not None and key.expired_ts < origin_server_ts:
        return False
    if rv.enforce_key_validity:
        # An old key's expiry is its validity limit; a current key's is valid_until_ts.
        limit = key.valid_until_ts if key.valid_until_ts is not None else key.expired_ts
        if limit is None or limit < origin_server_ts:
            return False
    return True


def _verify_server(
    redacted: Mapping[str, Any], server: str, origin_ts: int, rv: RoomVersion, key_store: KeyStore
) -> None:
    key_ids = signature_key_ids(redacted, server)
    if not key_ids:
        raise SignatureError(f"event is not signed by {server}")
    checked = 0
    for key_id in key_ids:
        key = key_store.get_verify_key(server, key_id, origin_ts if rv.enforce_key_validity else 0)
        # Unknown keys, and keys expired before the event, are skipped (not failed): only
        # signatures from known valid keys count.
        if key is None or not key_usable_for_event(key, origin_ts, rv):
            continue
        verify_json_signature(redacted, server, key_id, key.verify_key)
        checked += 1
    if not checked:
        raise SignatureError(f"no known valid key of {server} among {', '.join(key_ids)}")


def verify_event_signatures(
    event_or_pdu: Event | Mapping[str, Any], rv: RoomVersion, key_store: KeyStore
) -> None:
    """Raise SignatureError unless every required server signed the (redacted) event with at
    least one known, valid key and every such signature verifies. Checks nothing about the
    content hash: see events.hashes.check_content_hash (a mismatch means "use the redacted
    event", not "drop")."""
    pdu, event_id = _pdu_and_id(event_or_pdu)
    redacted = redact(pdu, rv)
    if rv.event_id_in_event and event_id is not None:
        # v1/v2 signatures cover the event id, which an Event may hold outside its pdu dict.
        redacted["event_id"] = event_id
    origin_ts = pdu.get("origin_server_ts")
    origin_ts = origin_ts if isinstance(origin_ts, int) else 0
    for server in sorted(required_signers(event_or_pdu, rv)):
        _verify_server(redacted, server, origin_ts, rv, key_store)
