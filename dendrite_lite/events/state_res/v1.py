"""State resolution v1 (room version 1). Spec: content/rooms/v1.md §State resolution.

Known to reset state (the spec's own warning); kept because v1 rooms still exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from dendrite_lite.events.auth import AuthError, auth_types_for_event, check_auth
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.events.state_res._common import (
    POWER_LEVELS_KEY,
    EventLookup,
    StateMap,
    separate,
)

__all__ = ["resolve_v1"]


def resolve_v1(
    room_version: RoomVersion, state_sets: Sequence[StateMap], events: EventLookup
) -> dict[StateKey, str]:
    unconflicted, conflicted = separate(state_sets, missing_is_conflict=False)
    if not conflicted:
        return unconflicted
    # R: the state built so far, as events (only keys the auth rules may read get loaded).
    resolved: dict[StateKey, str] = dict(unconflicted)
    candidates = {key: _candidates(ids, events) for key, ids in conflicted.items()}

    def r_view(evs: list[Event]) -> dict[StateKey, Event]:
        keys = {
            k
            for e in evs
            for k in auth_types_for_event(room_version, e.type, e.state_key, e.sender, e.content)
        }
        return {k: events(resolved[k], "state") for k in keys if k in resolved}

    def phase(keys: list[StateKey]) -> None:
        # Each key of a phase is resolved against R as it was before the phase (so the order of
        # keys cannot matter), then the phase's results join R together (as Synapse does).
        results = {k: _resolve_auth_key(candidates[k], r_view(candidates[k])) for k in keys}
        resolved.update((k, e.event_id) for k, e in results.items())

    phase([k for k in candidates if k == POWER_LEVELS_KEY])
    phase(sorted(k for k in candidates if k[0] == "m.room.join_rules"))
    phase(sorted(k for k in candidates if k[0] == "m.room.member"))
    done = {k for k in candidates if k == POWER_LEVELS_KEY or k[0] in _AUTH_TYPES}
    others = {
        k: _resolve_normal_key(evs, r_view(evs))
        for k, evs in candidates.items()
        if k not in done
    }
    resolved.update((k, e.event_id) for k, e in others.items())
    return resolved


_AUTH_TYPES = ("m.room.join_rules", "m.room.member")


def _candidates(ids: frozenset[str], events: EventLookup) -> list[Event]:
    evs = [events(eid, "conflicted state") for eid in ids]
    # A rejected event should not be in any state set; if one is, prefer the others.
    ok = [e for e in evs if e.rejected_reason is None]
    return ok or evs


def _order_key(e: Event) -> tuple[int, str]:
    """Highest depth first, then lowest sha1(event_id)."""
    return (-int(e.depth), hashlib.sha1(e.event_id.encode("utf-8")).hexdigest())


def _allowed(e: Event, auth: Mapping[StateKey, Event]) -> bool:
    try:
        check_auth(e, auth)
    except AuthError:
        return False
    return True


def _resolve_auth_key(evs: list[Event], r: dict[StateKey, Event]) -> Event:
    """Ascending depth, descending sha1: take the first, then each next one while it is allowed
    in R updated with the one before."""
    ordered = sorted(evs, key=_order_key, reverse=True)
    current = ordered[0]
    for e in ordered[1:]:
        r[current.state_tuple] = current
        if not _allowed(e, r):
            return current
        current = e
    return current


def _resolve_normal_key(evs: list[Event], r: dict[StateKey, Event]) -> Event:
    """The highest depth, lowest sha1 event allowed in R.

    NOTSPEC: the spec does not say what happens when none is allowed; like Synapse, take the
    last one tried so the key keeps a value.
    """
    ordered = sorted(evs, key=_order_key)
    for e in ordered:
        if _allowed(e, r):
            return e
    return ordered[-1]
