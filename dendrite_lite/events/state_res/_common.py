"""Pieces shared by the v1 and v2 state resolution algorithms."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.ids import create_event_id_of_room

__all__ = [
    "MissingEventError",
    "EventLookup",
    "StateMap",
    "CREATE_KEY",
    "POWER_LEVELS_KEY",
    "separate",
    "flatten",
    "create_event_id",
]

StateMap = Mapping[StateKey, str]

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")


class MissingEventError(LookupError):
    """State resolution needed an event that `get_event` did not return.

    The caller preloads the events it expects to be needed (the conflicted events, their auth
    chains, the mainline); this says which one it missed.
    """

    def __init__(self, event_id: str, needed_for: str) -> None:
        super().__init__(f"state resolution needs event {event_id} ({needed_for})")
        self.event_id = event_id
        self.needed_for = needed_for


class EventLookup:
    """`get_event` with a clear error and memoised auth event ids.

    One instance lives for one resolution; Event.auth_event_ids re-parses the PDU on every call,
    and the auth chain walks ask for the same events many times.
    """

    __slots__ = ("_get", "_events", "_auth_ids")

    def __init__(self, get_event: Callable[[str], Event | None]) -> None:
        self._get = get_event
        self._events: dict[str, Event] = {}
        self._auth_ids: dict[str, tuple[str, ...]] = {}

    def __call__(self, event_id: str, needed_for: str = "state resolution") -> Event:
        ev = self._events.get(event_id)
        if ev is None:
            ev = self._get(event_id)
            if ev is None:
                raise MissingEventError(event_id, needed_for)
            self._events[event_id] = ev
        return ev

    def maybe(self, event_id: str) -> Event | None:
        """The event, or None when the caller does not have it (an auth event we may skip)."""
        ev = self._events.get(event_id)
        if ev is None:
            ev = self._get(event_id)
            if ev is not None:
                self._events[event_id] = ev
        return ev

    def auth_ids(self, event_id: str) -> tuple[str, ...]:
        ids = self._auth_ids.get(event_id)
        if ids is None:
            ev = self(event_id, "auth chain")
            if ev.room_version.event_id_in_event:
                ids = ev.auth_event_ids
            else:  # v3+: already a list of ids, skip the generic parsing
                ids = tuple(ev.pdu.get("auth_events") or ())
            self._auth_ids[event_id] = ids
        return ids


def separate(
    state_sets: Sequence[StateMap], *, missing_is_conflict: bool
) -> tuple[dict[StateKey, str], dict[StateKey, frozenset[str]]]:
    """Split state sets into the unconflicted state map and the conflicted values per key.

    v2 (fragments/v2-state-res.md §Unconflicted state map): a key missing from one of the sets is
    conflicted. v1 (rooms/v1.md: "a conflict occurs between states where those states have
    different event_ids for the same key"): a key only some sets have is not a conflict.
    """
    # Fast path first: in a big room almost every key has the same value everywhere.
    first, rest = state_sets[0], state_sets[1:]
    unconflicted: dict[StateKey, str] = {}
    others: set[StateKey] = set()
    for key, event_id in first.items():
        for s in rest:
            if s.get(key) != event_id:
                others.add(key)
                break
        else:
            unconflicted[key] = event_id
    for s in rest:
        others.update(k for k in s if k not in unconflicted)
    conflicted: dict[StateKey, frozenset[str]] = {}
    for key in others:
        ids = frozenset(s[key] for s in state_sets if key in s)
        if len(ids) == 1 and not missing_is_conflict:
            unconflicted[key] = next(iter(ids))
        else:
            conflicted[key] = ids
    return unconflicted, conflicted


def flatten(conflicted: Mapping[StateKey, Iterable[str]]) -> set[str]:
    return {eid for ids in conflicted.values() for eid in ids}


def create_event_id(event: Event) -> str | None:
    """The id of the room's create event when the room id is derived from it (v12), else None.

    v12 events do not list the create event in auth_events (rooms/v12.md §Event format).
    """
    if event.type == CREATE_KEY[0]:
        return None
    return create_event_id_of_room(event.room_id, event.room_version)
