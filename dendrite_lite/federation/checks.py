"""The per-event checks of server-server-api.md §Checks performed on receipt of a PDU that need
no room state: format (1), signatures (2), content hash (3), and the auth rules against the
event's own auth events (4); plus the helper that runs the auth rules against a state map (5, 6).

Failures of 1 and 2 drop the event (PduDropped); a hash mismatch redacts it; failures of 4-6 are
reasons (strings) the caller records as a rejection or a soft failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from dendrite_lite.crypto.signing import KeyStore
from dendrite_lite.events.auth import AuthError, check_auth, check_auth_events_selection
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.format import FormatError, validate_pdu
from dendrite_lite.events.hashes import check_content_hash
from dendrite_lite.events.ids import create_event_id_of_room
from dendrite_lite.events.pdu import event_from_pdu
from dendrite_lite.events.redaction import redact
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.events.signing import (
    KeyRequest,
    SignatureError,
    key_requests_for_event,
    verify_event_signatures,
)

__all__ = [
    "PduDropped",
    "KeyFetcher",
    "parse_pdu",
    "verify_pdu",
    "implied_create_id",
    "auth_event_ids_needed",
    "check_against_auth_events",
    "check_against_state",
    "auth_order",
]

log = logging.getLogger(__name__)

_CREATE_KEY: StateKey = ("m.room.create", "")


class PduDropped(Exception):
    """The PDU is not used at all (bad format, bad signature, unknown room...); `reason` is
    what the /send response reports for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@runtime_checkable
class KeyFetcher(Protocol):
    """A key store that can fetch missing keys first (federation.keyring.Keyring is one)."""

    async def fetch_keys(self, requests: Iterable[KeyRequest]) -> None: ...


def parse_pdu(raw: Any, rv: RoomVersion) -> Event:
    """Check the PDU's format for its room version and make an Event. Raises PduDropped."""
    try:
        validate_pdu(raw, rv)
        return event_from_pdu(raw, rv)
    except FormatError as e:
        raise PduDropped(f"invalid event: {e.reason}") from None
    except ValueError as e:
        raise PduDropped(f"invalid event: {e}") from None


async def verify_pdu(event: Event, key_store: KeyStore) -> Event:
    """Check the signatures (dropping the event if they fail) and the content hash: on a
    mismatch the event used from here on is the redacted copy (§Validating hashes and
    signatures on received events). Raises PduDropped."""
    rv = event.room_version
    try:
        if isinstance(key_store, KeyFetcher):
            await key_store.fetch_keys(key_requests_for_event(event, rv))
        verify_event_signatures(event, rv, key_store)
    except SignatureError as e:
        raise PduDropped(f"signature check failed: {e}") from None
    except Exception as e:  # a key fetch failing for any reason means "cannot verify"
        log.warning("key fetch for %s failed: %r", event.event_id, e)
        raise PduDropped(f"signature check failed: cannot get keys ({e})") from None
    if check_content_hash(event.pdu):
        return event
    log.info("content hash mismatch on %s: using the redacted event", event.event_id)
    return Event(redact(event.pdu, rv), rv, event.event_id, room_id=event.room_id)


def implied_create_id(event: Event) -> str | None:
    """v12: the create event every event is authorised by without citing it."""
    if event.type == "m.room.create" and event.state_key == "":
        return None
    return create_event_id_of_room(event.room_id, event.room_version)


def auth_event_ids_needed(event: Event) -> list[str]:
    """The auth events a check of `event` needs: those it cites plus, in v12, the create
    event its room id stands for."""
    ids = list(event.auth_event_ids)
    create = implied_create_id(event)
    if create is not None and create not in ids:
        ids.append(create)
    return ids


def _reason(e: AuthError) -> str:
    return f"auth rule {e.rule}: {e.reason}"


def check_against_auth_events(event: Event, events: Mapping[str, Event]) -> str | None:
    """Check 4: the auth rules against the event's own auth events (all in `events`).
    Returns the rejection reason, or None if the event passes."""
    cited = [events[i] for i in event.auth_event_ids]
    try:
        check_auth_events_selection(event, cited)
    except AuthError as e:
        return _reason(e)
    state = {a.state_tuple: a for a in cited if a.is_state()}
    create = implied_create_id(event)
    if create is not None and create in events:
        state.setdefault(_CREATE_KEY, events[create])
    return check_against_state(event, state)


def check_against_state(event: Event, state: Mapping[StateKey, Event]) -> str | None:
    """Checks 5 and 6: the auth rules against a state map. Reason, or None if it passes."""
    try:
        check_auth(event, state)
    except AuthError as e:
        return _reason(e)
    return None


def auth_order(events: Sequence[Event]) -> list[Event]:
    """`events` ordered so each comes after the ones among them it cites as auth events (a
    topological order of the auth DAG; depth, then id, breaks ties so the order is stable).
    Events in an auth cycle (only forged ones can be) come last, in depth order."""
    by_id = {e.event_id: e for e in events}
    deps = {
        e.event_id: {a for a in auth_event_ids_needed(e) if a in by_id and a != e.event_id}
        for e in events
    }
    out: list[Event] = []
    done: set[str] = set()
    pending = sorted(events, key=lambda e: (e.depth, e.event_id))
    progress = True
    while pending and progress:
        progress = False
        rest: list[Event] = []
        for e in pending:
            if deps[e.event_id] <= done:
                out.append(e)
                done.add(e.event_id)
                progress = True
            else:
                rest.append(e)
        pending = rest
    return out + pending
