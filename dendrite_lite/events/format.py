"""Is a PDU a valid event of its room version? (server-server-api.md §Checks performed on
receipt of a PDU, step 1; data/api/server-server/definitions/pdu_v*.yaml; size limits from
client-server-api §Size limits; strict canonical JSON from fragments/v6-canonical-json.md).

`validate_pdu` raises FormatError with a precise reason. Services translate: over federation
the event is dropped; on the client API FormatError.too_large -> M_TOO_LARGE, else M_BAD_JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dendrite_lite.crypto.canonical import CanonicalJSONError, check_strict_canonical, encode_canonical_json
from dendrite_lite.events.ids import (
    MAX_ID_BYTES,
    create_event_id_of_room,
    is_valid_event_id,
    is_valid_room_id,
    is_valid_user_id,
)
from dendrite_lite.events.room_versions import RoomVersion

__all__ = [
    "FormatError",
    "validate_pdu",
    "max_depth",
    "MAX_PDU_BYTES",
    "MAX_PREV_EVENTS",
    "MAX_AUTH_EVENTS",
]

MAX_PDU_BYTES = 65536
# pdu_v*.yaml: "Must contain less than or equal to 20 [prev] events" / "10 [auth] events".
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
_MAX_DEPTH_V1 = 2**63 - 1
_MAX_DEPTH_V6 = 2**53 - 1  # depth_v6.yaml: strict canonical JSON bounds every integer


class FormatError(ValueError):
    """The PDU is not a valid event for its room version."""

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


def max_depth(rv: RoomVersion) -> int:
    return _MAX_DEPTH_V6 if rv.strict_canonicaljson else _MAX_DEPTH_V1


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _byte_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def validate_pdu(pdu: Any, rv: RoomVersion) -> None:
    """Raise FormatError unless `pdu` (as received over federation, or as built) has the keys,
    types and sizes its room version requires."""
    if not isinstance(pdu, Mapping):
        raise FormatError("event is not a JSON object")
    _check_id_lengths(pdu)
    _check_base(pdu, rv)
    _check_refs(pdu, rv)
    _check_room_id(pdu, rv)
    _check_json(pdu, rv)


def _check_base(pdu: Mapping[str, Any], rv: RoomVersion) -> None:
    for key in ("type", "sender"):
        if not isinstance(pdu.get(key), str):
            raise FormatError(f"'{key}' must be a string")
    if not isinstance(pdu.get("content"), Mapping):
        raise FormatError("'content' must be an object")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise FormatError("'state_key' must be a string")
    if not _is_int(pdu.get("origin_server_ts")):
        raise FormatError("'origin_server_ts' must be an integer")
    depth = pdu.get("depth")
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise FormatError("'depth' must be an integer")
    if not 0 <= depth <= max_depth(rv):
        raise FormatError(f"'depth' {depth} out of range [0, {max_depth(rv)}]")
    if not is_valid_user_id(pdu["sender"]):
        raise FormatError(f"'sender' {pdu['sender']!r} is not a valid user id")
    hashes = pdu.get("hashes")
    if not isinstance(hashes, Mapping) or not isinstance(hashes.get("sha256"), str):
        raise FormatError("'hashes' must be an object with a string 'sha256'")
    sigs = pdu.get("signatures")
    if not isinstance(sigs, Mapping) or not all(
        isinstance(entry, Mapping) and all(isinstance(s, str) for s in entry.values())
        for entry in sigs.values()
    ):
        raise FormatError("'signatures' must map server names to objects of strings")
    if "unsigned" in pdu and not isinstance(pdu["unsigned"], Mapping):
        raise FormatError("'unsigned' must be an object")
    if "redacts" in pdu and not isinstance(pdu["redacts"], str):
        raise FormatError("'redacts' must be a string")
    if (
        rv.updated_redaction_rules
        and pdu["type"] == "m.room.redaction"
        and not isinstance(pdu["content"].get("redacts", ""), str)
    ):
        # v11 moved `redacts` into content, where redaction keeps it; it must be an event id.
        raise FormatError("'content.redacts' must be a string")
    if rv.event_id_in_event:
        if not is_valid_event_id(pdu.get("event_id"), rv):
            raise FormatError("'event_id' must be an event id of the form $opaque:server")
    elif "event_id" in pdu:
        # v3+ ids are the event's hash; a PDU naming its own id is malformed (Synapse agrees).
        raise FormatError("'event_id' must not be present in a room version 3+ PDU")


def _check_refs(pdu: Mapping[str, Any], rv: RoomVersion) -> None:
    for key, limit in (("prev_events", MAX_PREV_EVENTS), ("auth_events", MAX_AUTH_EVENTS)):
        refs = pdu.get(key)
        if not isinstance(refs, list):
            raise FormatError(f"'{key}' must be an array")
        if len(refs) > limit:
            raise FormatError(f"'{key}' has {len(refs)} entries, at most {limit} allowed")
        for ref in refs:
            if rv.event_id_in_event:
                # v1/v2: [event_id, {"sha256": reference hash}] pairs
                ok = (
                    isinstance(ref, list)
                    and len(ref) == 2
                    and isinstance(ref[0], str)
                    and isinstance(ref[1], Mapping)
                )
            else:
                ok = isinstance(ref, str)
            if not ok or not _ref_id(ref).startswith("$"):
                raise FormatError(f"'{key}' entry {ref!r} is not an event reference")


def _ref_id(ref: Any) -> str:
    return ref[0] if isinstance(ref, list) else ref  # type: ignore[no-any-return]


def _check_room_id(pdu: Mapping[str, Any], rv: RoomVersion) -> None:
    room_id = pdu.get("room_id")
    if rv.room_id_is_create_event_hash and pdu.get("type") == "m.room.create" and "state_key" in pdu:
        # v12 create events carry no room_id: it is derived from their hash. One that has a
        # room_id is still well-formed; auth rule 1.2 rejects it.
        if room_id is not None and not isinstance(room_id, str):
            raise FormatError("'room_id' must be a string")
        return
    if not isinstance(room_id, str) or not is_valid_room_id(room_id, rv):
        raise FormatError(f"'room_id' {room_id!r} is not a valid room id for room version {rv.identifier}")
    create_id = create_event_id_of_room(room_id, rv)
    if create_id is not None and create_id in pdu["auth_events"]:
        # v12: the create event is implied by the room id and MUST NOT be in auth_events.
        raise FormatError("'auth_events' must not contain the create event")


def _check_id_lengths(pdu: Mapping[str, Any]) -> None:
    for key in ("sender", "room_id", "state_key", "type", "event_id"):
        value = pdu.get(key)
        if isinstance(value, str) and _byte_len(value) > MAX_ID_BYTES:
            raise FormatError(f"'{key}' is longer than {MAX_ID_BYTES} bytes", too_large=True)


def _check_json(pdu: Mapping[str, Any], rv: RoomVersion) -> None:
    if rv.strict_canonicaljson:
        try:
            check_strict_canonical(pdu)
        except CanonicalJSONError as e:
            raise FormatError(f"not canonical JSON: {e}") from None
    try:
        size = len(encode_canonical_json(pdu))
    except CanonicalJSONError as e:
        raise FormatError(f"not encodable as canonical JSON: {e}") from None
    if size > MAX_PDU_BYTES:
        raise FormatError(f"event is {size} bytes, more than {MAX_PDU_BYTES}", too_large=True)
