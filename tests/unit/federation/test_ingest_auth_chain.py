"""Auth chains from storage (recursive CTE over event_auth), checked for content and measured on
a 10,000-member room: `.venv/bin/python -m pytest -s tests/unit/federation/test_ingest_auth_chain.py`
prints the timings."""

from __future__ import annotations

import time
from pathlib import Path

from dendrite_lite.events.event import Event
from dendrite_lite.federation.state_at import StateLoader
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as ev_table
from dendrite_lite.storage import remote_events as remote_table
from tests.helpers import make_event

V = "10"
CREATOR = "@c:example.org"


def _room(members: int) -> tuple[list[Event], dict[tuple[str, str], str]]:
    create = make_event(V, "m.room.create", CREATOR, {}, "")
    join = make_event(V, "m.room.member", CREATOR, {"membership": "join"}, CREATOR, auth_events=[create], depth=2)
    pl = make_event(V, "m.room.power_levels", CREATOR, {"users": {CREATOR: 100}}, "", auth_events=[create, join], depth=3)
    jr = make_event(V, "m.room.join_rules", CREATOR, {"join_rule": "public"}, "", auth_events=[create, join, pl], depth=4)
    events = [create, join, pl, jr]
    for i in range(members):
        user = f"@u{i}:example.org"
        events.append(make_event(
            V, "m.room.member", user, {"membership": "join"}, user,
            auth_events=[create, pl, jr], depth=5 + i,
        ))
    state = {e.state_tuple: e.event_id for e in events}
    return events, state


async def _store(tmp_path: Path, events: list[Event]) -> Storage:
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)

    async def write(conn):  # type: ignore[no-untyped-def]
        for e in events:
            await ev_table.insert_event(conn, e, outlier=True)

    await storage.db.write(write)
    return storage


async def test_auth_chain_is_the_union_of_ancestors(tmp_path: Path) -> None:
    events, _ = _room(3)
    create, join, pl, jr, m0 = events[:5]
    storage = await _store(tmp_path, events)
    try:
        chain = await storage.db.read(lambda c: remote_table.select_auth_chain_ids(c, [m0.event_id]))
        assert chain == {create.event_id, join.event_id, pl.event_id, jr.event_id}
        chain = await storage.db.read(lambda c: remote_table.select_auth_chain_ids(c, [pl.event_id]))
        assert chain == {create.event_id, join.event_id}
        assert await storage.db.read(lambda c: remote_table.select_auth_chain_ids(c, [create.event_id])) == set()
        known = await storage.db.read(
            lambda c: remote_table.select_known_event_ids(c, [m0.event_id, "$nope"])
        )
        assert known == {m0.event_id}
    finally:
        await storage.close()


async def test_auth_chain_of_10k_member_state_is_fast(tmp_path: Path) -> None:
    events, state = _room(10_000)
    storage = await _store(tmp_path, events)
    try:
        t0 = time.perf_counter()
        chain = await storage.db.read(lambda c: remote_table.select_auth_chain_ids(c, state.values()))
        t_chain = time.perf_counter() - t0
        assert len(chain) == 4
        t0 = time.perf_counter()
        loaded = await StateLoader(storage).load_with_auth_chains(state.values())
        t_load = time.perf_counter() - t0
        assert len(loaded) == len(events)
        print(f"\n10k-member state: auth chain CTE {t_chain * 1000:.1f} ms,"
              f" events + chains loaded {t_load * 1000:.1f} ms")
        assert t_chain < 2.0  # measured ~20 ms; a generous bound for slow CI machines
    finally:
        await storage.close()
