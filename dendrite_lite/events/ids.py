"""Identifiers: the grammars of server names, user/room/event ids (appendices §Identifier
Grammar) and how event ids and v12 room ids are derived (rooms/fragments/v1-event-ids.md,
v4-event-ids.md, rooms/v3.md §Event IDs, appendices §Room IDs)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from dendrite_lite.crypto.canonical import encode_base64
from dendrite_lite.events.hashes import compute_reference_hash
from dendrite_lite.events.room_versions import EventFormat, RoomVersion

__all__ = [
    "MAX_ID_BYTES",
    "is_valid_server_name",
    "is_valid_user_id",
    "is_valid_room_id",
    "is_valid_event_id",
    "server_name_of",
    "event_id_from_reference_hash",
    "compute_event_id",
    "room_id_from_create_event",
    "create_event_id_of_room",
    "new_legacy_event_id",
    "new_legacy_room_id",
]

MAX_ID_BYTES = 255

_PORT = r"(?::[0-9]{1,5})?"
_SERVER_NAME_RE = re.compile(
    r"(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})" + _PORT, re.ASCII
)
_USER_LOCALPART_RE = re.compile(r"[a-z0-9._=/+-]+", re.ASCII)
# A sha256 reference hash in unpadded base64 is 43 characters.
_HASH_ID_RE = {
    EventFormat.V2: re.compile(r"[A-Za-z0-9+/]{43}", re.ASCII),
    EventFormat.V3: re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII),
}


def _fits(identifier: str) -> bool:
    try:
        return len(identifier.encode("utf-8")) <= MAX_ID_BYTES
    except UnicodeEncodeError:  # lone surrogates: not valid Unicode text
        return False


def is_valid_server_name(name: object) -> bool:
    """hostname [":" port] where hostname is an IPv4 literal, [IPv6 literal] or DNS name."""
    return isinstance(name, str) and _SERVER_NAME_RE.fullmatch(name) is not None


def _split_sigil_id(identifier: object, sigil: str) -> tuple[str, str] | None:
    """(localpart, domain) of `<sigil>localpart:domain`, or None if it does not have that shape.
    The localpart cannot hold ':' so the first ':' separates them (the domain may have a port)."""
    if not isinstance(identifier, str) or not identifier.startswith(sigil) or not _fits(identifier):
        return None
    local, sep, domain = identifier[1:].partition(":")
    if not sep or "\x00" in local or not is_valid_server_name(domain):
        return None
    return local, domain


def is_valid_user_id(user_id: object, *, historical: bool = True) -> bool:
    """A user id. With `historical` (the default, right for events received over federation)
    any localpart without ':' or NUL is accepted, even an empty one (appendices §Historical
    User IDs); without it only the current grammar [a-z0-9._=/+-]+ is (for new local users)."""
    parts = _split_sigil_id(user_id, "@")
    if parts is None:
        return False
    return historical or _USER_LOCALPART_RE.fullmatch(parts[0]) is not None


def is_valid_room_id(room_id: object, rv: RoomVersion) -> bool:
    """v12: "!" + URL-safe base64 of the create event's reference hash; before: !local:domain."""
    if rv.room_id_is_create_event_hash:
        return (
            isinstance(room_id, str)
            and room_id.startswith("!")
            and _HASH_ID_RE[EventFormat.V3].fullmatch(room_id[1:]) is not None
        )
    return _split_sigil_id(room_id, "!") is not None


def is_valid_event_id(event_id: object, rv: RoomVersion) -> bool:
    """An event id in the exact format of the room version."""
    if rv.event_format is EventFormat.V1:
        return _split_sigil_id(event_id, "$") is not None
    return (
        isinstance(event_id, str)
        and event_id.startswith("$")
        and _HASH_ID_RE[rv.event_format].fullmatch(event_id[1:]) is not None
    )


def server_name_of(identifier: str) -> str:
    """The domain of `@user:domain`, `!room:domain`, `$event:domain` or `#alias:domain`."""
    _, sep, domain = identifier.partition(":")
    if not sep:
        raise ValueError(f"{identifier!r} has no server name")
    return domain


def event_id_from_reference_hash(reference_hash: bytes, rv: RoomVersion) -> str:
    if rv.event_format is EventFormat.V1:
        raise ValueError(f"room version {rv.identifier} event ids are not hashes")
    return "$" + encode_base64(reference_hash, urlsafe=rv.event_format is EventFormat.V3)


def compute_event_id(pdu: Mapping[str, Any], rv: RoomVersion) -> str:
    """The event id of a PDU: carried inside it for v1/v2, its reference hash from v3 on."""
    if rv.event_id_in_event:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError("v1/v2 event has no event_id")
        return event_id
    return event_id_from_reference_hash(compute_reference_hash(pdu, rv), rv)


def room_id_from_create_event(create_pdu: Mapping[str, Any], rv: RoomVersion) -> str:
    """v12: the room id is the create event's id with "!" instead of "$"."""
    if not rv.room_id_is_create_event_hash:
        raise ValueError(f"room version {rv.identifier} room ids are not derived from the create event")
    return "!" + encode_base64(compute_reference_hash(create_pdu, rv), urlsafe=True)


def create_event_id_of_room(room_id: str, rv: RoomVersion) -> str | None:
    """v12: the create event's id, implied by the room id; None for other room versions."""
    if not rv.room_id_is_create_event_hash:
        return None
    return "$" + room_id[1:]


def new_legacy_event_id(server_name: str) -> str:
    """A fresh v1/v2 event id `$opaque:server_name` (fragments/v1-event-ids.md)."""
    return f"${secrets.token_urlsafe(18)}:{server_name}"


def new_legacy_room_id(server_name: str) -> str:
    """A fresh v1-v11 room id; the localpart SHOULD be alphanumeric (appendices §Room IDs)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "!" + "".join(secrets.choice(alphabet) for _ in range(18)) + ":" + server_name
