"""The auth chain index (events.state_res.chain_index): auth chains and auth differences from
chain positions and reaches equal those found by walking auth events, on random auth DAGs, on
random rooms and on the classic state resolution scenarios."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import RoomVersion, get_room_version
from dendrite_lite.events.state_res import resolve_state, split_conflicted
from dendrite_lite.events.state_res._common import EventLookup
from dendrite_lite.events.state_res.chain_index import (
    ChainAllocator,
    ChainPosition,
    difference_ranges,
    merge_reaches,
)
from dendrite_lite.events.state_res.v2 import auth_difference
from tests.interop.graphgen import Action, build_graph
from tests.unit.events import test_state_res as scenarios

V10 = get_room_version("10")


def index(events: Mapping[str, Event], batches: int = 1) -> dict[str, ChainPosition]:
    """Positions of `events` (auth order), placed in `batches` rounds: each round starts from
    only the heads of the chains its events' auth events are on, as storage does."""
    order = _auth_order(events)
    positions: dict[str, ChainPosition] = {}
    next_chain = 1
    size = max(1, -(-len(order) // batches))
    for start in range(0, len(order), size):
        batch = order[start : start + size]
        touched = {positions[a].chain_id for e in batch for a in events[e].auth_event_ids if a in positions}
        heads = {c: max(p.seq for p in positions.values() if p.chain_id == c) for c in touched}
        allocator = ChainAllocator(heads, next_chain)
        for eid in batch:
            positions[eid] = allocator.place([positions[a] for a in events[eid].auth_event_ids])
        next_chain = max((p.chain_id for p in positions.values()), default=0) + 1
    return positions


def _auth_order(events: Mapping[str, Event]) -> list[str]:
    out: list[str] = []
    done: set[str] = set()

    def visit(eid: str) -> None:
        if eid in done:
            return
        done.add(eid)
        for a in events[eid].auth_event_ids:
            visit(a)
        out.append(eid)

    for eid in sorted(events):
        visit(eid)
    return out


def indexed_difference(
    positions: Mapping[str, ChainPosition], state_sets: Sequence[Mapping[StateKey, str]]
) -> set[str]:
    at = {(p.chain_id, p.seq): eid for eid, p in positions.items()}
    reaches = [merge_reaches(positions[e].reach for e in s.values()) for s in state_sets]
    return {
        at[(chain, seq)]
        for chain, low, high in difference_ranges(reaches)
        for seq in range(low + 1, high + 1)
    }


def walked_chain(events: Mapping[str, Event], eid: str) -> set[str]:
    out, stack = {eid}, [eid]
    while stack:
        for a in events[stack.pop()].auth_event_ids:
            if a not in out:
                out.add(a)
                stack.append(a)
    return out


def covered(positions: Mapping[str, ChainPosition], eid: str) -> set[str]:
    reach = positions[eid].reach
    return {e for e, p in positions.items() if p.seq <= reach.get(p.chain_id, 0)}


# --- random auth DAGs ---------------------------------------------------------------------------

dags = st.lists(st.lists(st.integers(0, 10_000), max_size=4), min_size=1, max_size=40)


def _dag(rows: list[list[int]]) -> dict[str, Event]:
    """Event i cites events chosen among 0..i-1 (any DAG can be written so)."""
    events: dict[str, Event] = {}
    for i, picks in enumerate(rows):
        auth = sorted({f"$e{p % i}" for p in picks}) if i else []
        events[f"$e{i}"] = Event({"auth_events": auth, "type": "x", "state_key": str(i)}, V10, f"$e{i}")
    return events


@settings(max_examples=200, deadline=None)
@given(rows=dags, batches=st.integers(1, 4))
def test_reach_covers_exactly_the_auth_chain(rows: list[list[int]], batches: int) -> None:
    events = _dag(rows)
    positions = index(events, batches)
    assert len({(p.chain_id, p.seq) for p in positions.values()}) == len(events)
    for eid in events:
        assert covered(positions, eid) == walked_chain(events, eid)


@settings(max_examples=200, deadline=None)
@given(rows=dags, batches=st.integers(1, 4), sets=st.lists(st.lists(st.integers(0, 10_000), max_size=8), min_size=2, max_size=4))
def test_difference_from_index_equals_walk_on_random_dags(
    rows: list[list[int]], batches: int, sets: list[list[int]]
) -> None:
    events = _dag(rows)
    ids = sorted(events)
    # State sets: events under arbitrary keys; a few keys shared so some are unconflicted.
    state_sets = [{("k", str(p % 5)): ids[p % len(ids)] for p in picks} for picks in sets]
    positions = index(events, batches)
    assert indexed_difference(positions, state_sets) == auth_difference(state_sets, EventLookup(events.get))


def test_allocator_extends_only_a_chain_head() -> None:
    a = ChainAllocator({}, 1)
    create = a.place([])
    pl = a.place([create])
    member1 = a.place([create, pl])
    member2 = a.place([create, pl])  # pl is no longer the head of chain 1: a new chain
    assert (create.chain_id, create.seq) == (1, 1)
    assert (pl.chain_id, pl.seq) == (1, 2)
    assert (member1.chain_id, member1.seq) == (1, 3)
    assert (member2.chain_id, member2.seq) == (2, 1)
    assert member2.reach == {1: 2, 2: 1}
    # Heads unknown to the allocator (another batch) are never extended.
    assert ChainAllocator({}, 7).place([member1]).chain_id == 7


# --- rooms: random ones and the classic scenarios ----------------------------------------------

actions_strategy = st.lists(
    st.tuples(st.integers(0, 9), st.integers(0, 99), st.integers(0, 99)), min_size=5, max_size=50
)


def check_resolution(rv: RoomVersion, events: Mapping[str, Event], states: Sequence[Mapping[StateKey, str]]) -> None:
    positions = index(events)
    walked = auth_difference(states, EventLookup(events.get))
    got = indexed_difference(positions, states)
    assert got == walked
    # The resolution given that difference is the one that walks.
    expected = resolve_state(rv, states, events.get)
    assert resolve_state(rv, states, events.get, auth_difference=got) == expected


@pytest.mark.parametrize("version", ["10", "12"])
@settings(max_examples=40, deadline=None)
@given(actions=actions_strategy)
def test_difference_from_index_equals_walk_in_random_rooms(version: str, actions: list[Action]) -> None:
    g = build_graph(get_room_version(version), actions)
    for states, _ in g.resolutions:
        check_resolution(g.rv, g.events, states)


@pytest.mark.parametrize("version", ["10", "12"])
@pytest.mark.parametrize("scenario", [
    scenarios.test_ban_beats_power_level_change_by_banned_user,
    scenarios.test_join_rule_evasion,
    scenarios.test_offtopic_power_levels,
    scenarios.test_topic_reset_after_ban,
    scenarios.test_topic_basic_demotion_wins,
    scenarios.test_topic_after_merge_keeps_latest,
    scenarios.test_mainline_ordering_beats_timestamps,
])
def test_difference_from_index_equals_walk_in_classic_scenarios(
    monkeypatch: pytest.MonkeyPatch, scenario, version: str  # type: ignore[no-untyped-def]
) -> None:
    """Every resolution the scenario's DAG makes (each merge) is checked on its way."""
    checked: list[int] = []
    resolve = scenarios.Dag.resolve

    def checking(self: scenarios.Dag, states: Sequence[Mapping[StateKey, str]]) -> dict[StateKey, str]:
        if len(states) > 1:
            _, conflicted = split_conflicted(states)
            check_resolution(self.rv, self.events, states)
            checked.append(len(conflicted))
        return resolve(self, states)

    monkeypatch.setattr(scenarios.Dag, "resolve", checking)
    scenario(version)
    assert checked and max(checked) > 0
