"""Property: resolution depends on the set of state sets and the events, never on their order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dendrite_lite.events.event import StateKey
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.events.state_res import resolve_state
from tests.interop.graphgen import Action, build_graph

actions_strategy = st.lists(
    st.tuples(st.integers(0, 9), st.integers(0, 99), st.integers(0, 99)), min_size=5, max_size=50
)


def _shuffled(d: dict[StateKey, str], rnd: random.Random) -> dict[StateKey, str]:
    items = list(d.items())
    rnd.shuffle(items)
    return dict(items)


@pytest.mark.parametrize("version", ["1", "2", "10", "12"])
@settings(max_examples=40, deadline=None)
@given(actions=actions_strategy, seed=st.integers(0, 2**32 - 1))
def test_order_of_state_sets_and_events_never_matters(
    version: str, actions: list[Action], seed: int
) -> None:
    g = build_graph(get_room_version(version), actions)
    rnd = random.Random(seed)
    event_items = list(g.events.items())
    rnd.shuffle(event_items)
    shuffled_events = dict(event_items)
    for states, expected in g.resolutions:
        reordered = [_shuffled(s, rnd) for s in states]
        rnd.shuffle(reordered)
        got = resolve_state(g.rv, reordered, shuffled_events.get)
        assert got == expected
        # Resolving a set with itself added again changes nothing either.
        assert resolve_state(g.rv, [*reordered, reordered[0]], shuffled_events.get) == expected
