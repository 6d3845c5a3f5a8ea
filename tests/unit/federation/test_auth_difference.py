"""The auth chain index in SQLite (storage.auth_chains) and the resolutions that use it
(federation.auth_difference, StateLoader.resolve): same auth difference and same resolved state
as walking every auth chain, events indexed in batches or on demand, pending (unstored) events,
and a fork in a big room reads only the events it needs."""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.events.state_res import resolve_state, split_conflicted
from dendrite_lite.events.state_res._common import EventLookup
from dendrite_lite.events.state_res.v2 import auth_difference
from dendrite_lite.federation.auth_difference import indexed_auth_difference
from dendrite_lite.federation.state_at import StateLoader, StateUnavailable
from dendrite_lite.storage import Storage
from dendrite_lite.storage import auth_chains
from dendrite_lite.storage import events as ev_table
from tests.helpers import make_event
from tests.interop.graphgen import build_graph

CREATOR = "@c:example.org"


async def _open(tmp_path: Path) -> Storage:
    return await Storage.open(tmp_path / "db.sqlite", readers=2)


async def _store(storage: Storage, events: Iterable[Event], *, index: bool = True) -> set[str]:
    async def write(conn):  # type: ignore[no-untyped-def]
        batch = list(events)
        for e in batch:
            await ev_table.insert_event(conn, e, outlier=True)
        return await auth_chains.index_events(conn, [e.event_id for e in batch]) if index else set()

    return await storage.db.write(write)


@pytest.mark.parametrize("seed", range(10))
async def test_indexed_difference_and_resolution_equal_walking(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    actions = [(rnd.randrange(10), rnd.randrange(100), rnd.randrange(100)) for _ in range(40)]
    g = build_graph(get_room_version("10" if seed % 2 else "12"), actions)
    # The last state event stays unstored: resolutions containing it get it as pending.
    last = next(eid for eid in reversed(g.order) if g.events[eid].is_state())
    stored = [g.events[eid] for eid in g.order if eid != last]
    storage = await _open(tmp_path)
    try:
        # In batches, some indexed when written and some left to the resolution to index.
        third = len(stored) // 3
        assert await _store(storage, stored[:third]) == set()
        assert await _store(storage, stored[third : 2 * third], index=False) == set()
        assert await _store(storage, stored[2 * third :]) == set()
        loader = StateLoader(storage)
        differences = 0
        for states, expected in g.resolutions:
            pending = {last: g.events[last]} if any(last in s.values() for s in states) else {}
            unconflicted, conflicted = split_conflicted(states)
            got = await indexed_auth_difference(storage, states, unconflicted, conflicted, pending)
            assert got == auth_difference(states, EventLookup(g.events.get))
            differences += len(got)
            assert await loader.resolve(g.rv, states, pending) == expected
        assert g.resolutions and differences > 0
    finally:
        await storage.close()


async def test_an_event_whose_auth_event_we_lack_is_not_indexed(tmp_path: Path) -> None:
    v = "10"
    create = make_event(v, "m.room.create", CREATOR, {}, "")
    join = make_event(v, "m.room.member", CREATOR, {"membership": "join"}, CREATOR, auth_events=[create])
    pl = make_event(v, "m.room.power_levels", CREATOR, {"users": {CREATOR: 100}}, "", auth_events=[create, join])
    t1 = make_event(v, "m.room.topic", CREATOR, {"topic": "1"}, "", auth_events=[create, join, pl])
    t2 = make_event(v, "m.room.topic", CREATOR, {"topic": "2"}, "", auth_events=[create, join, pl])
    storage = await _open(tmp_path)
    try:
        # pl is never stored: the events citing it cannot be indexed; create and join can.
        assert await _store(storage, [create, join, t1, t2]) == {pl.event_id, t1.event_id, t2.event_id}
        base = {e.state_tuple: e.event_id for e in (create, join)}
        states = [{**base, t1.state_tuple: t1.event_id}, {**base, t2.state_tuple: t2.event_id}]
        unconflicted, conflicted = split_conflicted(states)
        assert await indexed_auth_difference(storage, states, unconflicted, conflicted, {}) is None
        # The resolution falls back to loading the chains and names the event it lacks.
        with pytest.raises(StateUnavailable) as e:
            await StateLoader(storage).resolve(get_room_version(v), states)
        assert e.value.missing == {pl.event_id}
        # Once it is stored, everything gets indexed on demand and the resolution works.
        await _store(storage, [pl], index=False)
        got = await indexed_auth_difference(storage, states, unconflicted, conflicted, {})
        assert got == {t1.event_id, t2.event_id}
        assert await storage.db.read(lambda c: auth_chains.select_unindexed(c, [t1.event_id, t2.event_id])) == {}
    finally:
        await storage.close()


async def test_fork_in_a_big_room_reads_only_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = "10"
    rv = get_room_version(v)
    create = make_event(v, "m.room.create", CREATOR, {}, "")
    join = make_event(v, "m.room.member", CREATOR, {"membership": "join"}, CREATOR, auth_events=[create])
    pl = make_event(v, "m.room.power_levels", CREATOR, {"users": {CREATOR: 100}}, "", auth_events=[create, join])
    jr = make_event(v, "m.room.join_rules", CREATOR, {"join_rule": "public"}, "", auth_events=[create, join, pl])
    events = [create, join, pl, jr]
    for i in range(2000):
        user = f"@u{i}:example.org"
        events.append(make_event(v, "m.room.member", user, {"membership": "join"}, user, auth_events=[create, pl, jr]))
    base = {e.state_tuple: e.event_id for e in events}
    # Two branches: the creator raises u0 to 50 on one, u1 changes name on the other.
    pl2 = make_event(v, "m.room.power_levels", CREATOR, {"users": {CREATOR: 100, "@u0:example.org": 50}}, "",
                     auth_events=[create, join, pl])
    # Both of u1's member events have the same mainline position and timestamp, so the event id
    # decides (state res v2): "$~" sorts after every "$ev<n>", whatever the id counter is at.
    name = make_event(v, "m.room.member", "@u1:example.org", {"membership": "join", "displayname": "U"},
                      "@u1:example.org", "$~u1-rename",
                      auth_events=[create, pl, jr, base[("m.room.member", "@u1:example.org")]])
    storage = await _open(tmp_path)
    try:
        await _store(storage, [*events, pl2])
        states = [{**base, pl2.state_tuple: pl2.event_id}, {**base, name.state_tuple: name.event_id}]
        read: list[str] = []
        select_events = ev_table.select_events

        async def counting(conn, ids):  # type: ignore[no-untyped-def]
            ids = list(ids)
            read.extend(ids)
            return await select_events(conn, ids)

        monkeypatch.setattr(ev_table, "select_events", counting)
        # `name` is pending (the event being received): not stored, not indexed.
        got = await StateLoader(storage).resolve(rv, states, {name.event_id: name})
        by_id = {e.event_id: e for e in [*events, pl2, name]}
        assert got == resolve_state(rv, states, by_id.get)
        assert got[pl2.state_tuple] == pl2.event_id and got[name.state_tuple] == name.event_id
        # Conflicted: pl/pl2 and u1's two member events; their ancestors; no other member.
        assert len(set(read)) < 20, len(set(read))
    finally:
        await storage.close()
