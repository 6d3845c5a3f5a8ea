"""invite_room_state / knock_room_state over federation (invites-v2.yaml, knocks.yaml; Matrix
1.16): the state that lets an invitee or knocker identify a room.

Outbound: full PDUs of the room's current state events of the stripped-state types
(client-server-api §Stripped state, m.room.create first), formatted for the room version.

Inbound: entries should be PDUs of the room (its version's format, valid signatures) and the
create event must be among them; servers SHOULD refuse other invites in room versions past 11
(400 M_INVALID_PARAM) and only warn for versions 1-11 while the ecosystem migrates. Entries that
claim to be PDUs (they carry PDU-only fields) but fail those checks are refused past version 11
and left out before. NOTSPEC: the older stripped form (type, state_key, sender, content only)
and a missing create event are accepted with a warning in every version, as Synapse does until
mid-2027 ("servers SHOULD consider their local ecosystems"): refusing them would break invites
from servers that have not moved yet. What we keep is reduced to stripped events, the form
/sync shows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.federation.checks import PduDropped, parse_pdu, verify_pdu

__all__ = ["state_hint_pdus", "checked_state_hints"]

log = logging.getLogger(__name__)

_STRIPPED_KEYS = ("type", "state_key", "sender", "content")
# Fields only a PDU has: an entry with any of them is meant as one.
_PDU_ONLY = ("auth_events", "prev_events", "hashes", "signatures", "depth", "origin_server_ts")
_LAST_LENIENT_VERSION = 11  # spec: MAY validate v1-v11 (warn while migrating), SHOULD after


def state_hint_pdus(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The federation form of `events` (the room's state events to describe it), create first."""
    ordered = sorted(events, key=lambda e: (e.type != "m.room.create", e.type, e.state_key or ""))
    return [pdu_for_federation(e) for e in ordered]


def _strict(rv: RoomVersion) -> bool:
    return not rv.identifier.isdigit() or int(rv.identifier) > _LAST_LENIENT_VERSION


async def checked_state_hints(
    entries: Sequence[Any],
    rv: RoomVersion,
    room_id: str,
    key_store: KeyStore,
    *,
    what: str,
    refuse: bool = True,
) -> list[dict[str, Any]]:
    """The stripped events to show for `entries` (an invite_room_state / knock_room_state
    received in room `room_id`). Raises MatrixError 400 M_INVALID_PARAM when a room version
    past 11 gets entries that claim to be PDUs but are not valid PDUs of the room, unless
    `refuse` is False (a knock answer: the knock happened, bad entries are only left out)."""
    strict = _strict(rv) and refuse
    out: list[dict[str, Any]] = []
    problems: list[str] = []  # refused past v11
    warnings: list[str] = []
    for raw in entries:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("type"), str):
            problems.append("an entry that is not an event")
            continue
        if not any(k in raw for k in _PDU_ONLY):
            warnings.append(f"{raw['type']} in the stripped form, not a PDU")
            out.append({k: raw[k] for k in _STRIPPED_KEYS if k in raw})
            continue
        try:
            event = await _checked_pdu(raw, rv, room_id, key_store)
        except PduDropped as e:
            problems.append(f"{raw['type']}: {e.reason}")
            continue
        # A content hash mismatch leaves the redacted event: what we show then.
        out.append({"type": event.type, "state_key": event.state_key, "sender": event.sender,
                    "content": dict(event.content)})
    if not any(e.get("type") == "m.room.create" for e in out):
        warnings.append("no m.room.create event")
    if problems and strict:
        raise MatrixError(Errcode.INVALID_PARAM, f"{what}: " + "; ".join(problems))
    if problems or warnings:
        log.warning("%s for %s (room version %s) does not follow Matrix 1.16: %s",
                    what, room_id, rv.identifier, "; ".join([*problems, *warnings]))
    return out


async def _checked_pdu(
    raw: Mapping[str, Any], rv: RoomVersion, room_id: str, key_store: KeyStore
) -> Event:
    """Raises PduDropped (format, room, signatures)."""
    event = parse_pdu(raw, rv)
    if event.room_id != room_id:
        raise PduDropped(f"from another room ({event.room_id})")
    return await verify_pdu(event, key_store)
