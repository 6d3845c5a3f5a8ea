"""State resolution for room versions 1-12: pure and synchronous, no I/O.

The caller preloads events (the conflicted ones, their auth chains, the power levels mainline) and
hands them over through `get_event`; `auth_chain` may answer auth chains from a storage index.
The result depends only on the set of state sets and the events, never on the order of either.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import RoomVersion, StateResAlgorithm
from dendrite_lite.events.state_res._common import (
    EventLookup,
    MissingEventError,
    StateMap,
    flatten,
    separate,
)
from dendrite_lite.events.state_res.v1 import resolve_v1
from dendrite_lite.events.state_res.v2 import resolve_v2

__all__ = ["resolve_state", "split_conflicted", "MissingEventError", "StateMap"]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[StateMap],
    get_event: Callable[[str], Event | None],
    *,
    auth_chain: Callable[[str], frozenset[str]] | None = None,
    auth_difference: Collection[str] | None = None,
) -> dict[StateKey, str]:
    """Resolve state sets ((type, state_key) -> event_id) into one state map.

    server-server-api.md §Room State Resolution; the algorithm is the room version's (v1:
    rooms/v1.md, v2-v11: fragments/v2-state-res.md, v12: rooms/v12.md). `auth_chain(event_id)`,
    if given, returns every auth ancestor of the event (not the event itself); otherwise the
    auth_events links are walked through `get_event`. `auth_difference`, if given, is the state
    sets' auth difference (v2 and v2.1) computed from an index (events.state_res.chain_index), so
    no auth chain of the sets is walked and only the events the algorithm reads then need to be
    available. Raises MissingEventError when an event the algorithm needs is not available.
    """
    if not state_sets:
        return {}
    events = EventLookup(get_event)
    if room_version.state_res is StateResAlgorithm.V1:
        return resolve_v1(room_version, state_sets, events)
    return resolve_v2(room_version, state_sets, events, auth_chain, auth_difference)


def split_conflicted(state_sets: Sequence[StateMap]) -> tuple[dict[StateKey, str], set[str]]:
    """(the unconflicted state map, the conflicted event ids) as v2 and v2.1 see them (a key
    missing from some set is conflicted): what a caller needs to compute the auth difference."""
    unconflicted, conflicted = separate(state_sets, missing_is_conflict=True)
    return unconflicted, flatten(conflicted)
