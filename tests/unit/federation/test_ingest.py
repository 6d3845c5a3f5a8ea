"""FederationIngest against a real temp SQLite database and a fake requester over a DAG of
really signed events from two fake remote servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.storage import events as ev_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as st
from tests.unit.federation.ingest_env import A, ALICE, B, BOB, ME, Env, current, extremities, open_env

MSG = {"msgtype": "m.text", "body": "hi"}


@pytest.fixture
async def env(tmp_path: Path):
    e = await open_env(tmp_path, "10")
    yield e
    await e.storage.close()


async def stored(env: Env, event_id: str):
    return await env.storage.db.read(lambda c: ev_table.select_event(c, event_id))


async def timeline(env: Env) -> list[str]:
    rows = await env.storage.db.read(
        lambda c: ev_table.select_room_events(c, env.room_id, limit=100, backwards=False)
    )
    return [r.event.event_id for r in rows]


@pytest.mark.parametrize("version", ["1", "2", "10", "12"])
async def test_join_state_then_linear_receipt(tmp_path: Path, version: str) -> None:
    env = await open_env(tmp_path, version)
    try:
        join_id = env.dag.head[0]
        assert await timeline(env) == [join_id]
        assert (await current(env))[("m.room.member", ME)] == join_id
        room = await env.storage.db.read(lambda c: rooms_table.select_room(c, env.room_id))
        assert room is not None and room.room_version == version
        m1 = env.dag.add(ALICE, "m.room.message", MSG)
        topic = env.dag.add(BOB, "m.room.topic", {"topic": "t"}, "")
        m2 = env.dag.add(BOB, "m.room.message", MSG)
        assert await env.send(A, m1, topic, m2) == {m1.event_id: {}, topic.event_id: {}, m2.event_id: {}}
        assert await timeline(env) == [join_id, m1.event_id, topic.event_id, m2.event_id]
        assert await extremities(env) == [m2.event_id]
        cur = await current(env)
        assert cur[("m.room.topic", "")] == topic.event_id
        assert cur == env.dag.state_after[m2.event_id]
        assert env.requester.calls == []  # nothing was missing
    finally:
        await env.storage.close()


async def test_rereceipt_is_idempotent(env: Env) -> None:
    m = env.dag.add(ALICE, "m.room.message", MSG)
    assert await env.send(A, m) == {m.event_id: {}}
    before = await stored(env, m.event_id)
    assert await env.send(A, m) == {m.event_id: {}}
    assert await env.send(B, m) == {m.event_id: {}}
    after = await stored(env, m.event_id)
    assert before is not None and after is not None
    assert after.stream_ordering == before.stream_ordering
    assert (await timeline(env)).count(m.event_id) == 1


async def test_unknown_room_and_malformed_pdus_are_dropped(env: Env) -> None:
    join = env.dag.head[0]
    m = env.dag.add(ALICE, "m.room.message", MSG)
    other = dict(pdu_for_federation(m), room_id="!nope:remote.a")
    no_sender = {k: v for k, v in pdu_for_federation(m).items() if k != "sender"}
    res = await env.ingest.receive_pdus(A, [other, no_sender, "junk"])
    errors = [r["error"] for r in res.values()]
    assert any("unknown room" in e for e in errors)
    assert any("invalid event" in e for e in errors)
    assert await extremities(env) == [join]  # our join is still the head
    assert await stored(env, m.event_id) is None


async def test_bad_signature_is_dropped(env: Env) -> None:
    m = env.dag.add(ALICE, "m.room.message", MSG)
    pdu = pdu_for_federation(m)
    sigs = {A: {k: "A" * 86 for k in pdu["signatures"][A]}}
    res = await env.ingest.receive_pdus(A, [dict(pdu, signatures=sigs)])
    assert "signature" in res[m.event_id]["error"]
    assert await stored(env, m.event_id) is None
    unsigned = dict(pdu, signatures={})
    res = await env.ingest.receive_pdus(A, [unsigned])
    assert "signature" in res[m.event_id]["error"]


async def test_bad_content_hash_means_redacted(env: Env) -> None:
    m = env.dag.add(ALICE, "m.room.message", MSG)
    tampered = pdu_for_federation(m)
    tampered["content"] = {"msgtype": "m.text", "body": "tampered"}  # signature still covers the redacted form
    res = await env.ingest.receive_pdus(A, [tampered])
    assert res == {m.event_id: {}}
    s = await stored(env, m.event_id)
    assert s is not None and dict(s.event.content) == {}
    assert m.event_id in await timeline(env)


async def test_failing_auth_is_rejected_and_not_in_state(env: Env) -> None:
    # bob (PL 50) may not change power levels (100 needed): rejected on its auth events.
    head = env.dag.head[0]
    pl = env.dag.add(BOB, "m.room.power_levels", {"users": {BOB: 100}}, "")
    res = await env.send(B, pl)
    assert res == {pl.event_id: {}}  # processed: rejected, not dropped
    s = await stored(env, pl.event_id)
    assert s is not None and s.event.rejected_reason is not None
    assert (await current(env))[("m.room.power_levels", "")] != pl.event_id
    assert pl.event_id not in await timeline(env)
    assert pl.event_id not in await extremities(env)
    # A later event citing it is fine if it passes auth; the state ignores the rejected one.
    m = env.dag.add(ALICE, "m.room.message", MSG, prevs=[pl.event_id], state=env.dag.state_after[head])
    assert await env.send(A, m) == {m.event_id: {}}
    sm = await stored(env, m.event_id)
    assert sm is not None and sm.state_group is not None
    group = await env.storage.db.read(lambda c: st.select_state_group(c, sm.state_group))
    assert group[("m.room.power_levels", "")] != pl.event_id


async def test_sender_not_in_room_is_rejected(env: Env) -> None:
    # A server with no member in the room sends a message from its user.
    m = env.dag.add("@eve:remote.b", "m.room.message", MSG)
    res = await env.send(B, m)
    assert res == {m.event_id: {}}
    s = await stored(env, m.event_id)
    assert s is not None and "sender_not_joined" in (s.event.rejected_reason or "")
    assert m.event_id not in await timeline(env)


async def test_missing_prev_events_fetched_with_get_missing_events(env: Env) -> None:
    m1 = env.dag.add(ALICE, "m.room.message", MSG)
    m2 = env.dag.add(BOB, "m.room.name", {"name": "n"}, "")
    m3 = env.dag.add(ALICE, "m.room.message", MSG)
    assert await env.send(A, m3) == {m3.event_id: {}}
    calls = env.requester.called("get_missing_events")
    assert calls and calls[0][1] == [m3.event_id]
    tl = await timeline(env)
    assert tl[-3:] == [m1.event_id, m2.event_id, m3.event_id]
    assert await extremities(env) == [m3.event_id]
    assert (await current(env))[("m.room.name", "")] == m2.event_id
    assert env.requester.called("get_state_ids") == []


async def test_gap_uses_state_ids(env: Env) -> None:
    m1 = env.dag.add(ALICE, "m.room.message", MSG)
    name = env.dag.add(BOB, "m.room.name", {"name": "n"}, "")
    m3 = env.dag.add(ALICE, "m.room.message", MSG)
    env.requester.hidden = {m1.event_id}  # /get_missing_events gives `name`, not its prev event
    assert await env.send(A, m3) == {m3.event_id: {}}
    # At the gap, before the fetched event: its prev event, as Synapse asks.
    assert env.requester.called("get_state_ids") == [m1.event_id]
    assert m1.event_id in env.requester.called("get_event")
    held_m1 = await stored(env, m1.event_id)
    assert held_m1 is not None and held_m1.outlier  # fetched as the gap's edge, not in the timeline
    assert (await current(env))[("m.room.name", "")] == name.event_id
    # Forked now: our join branch and m3 (on a prev we lacked) are both extremities.
    assert m3.event_id in await extremities(env)
    assert [name.event_id, m3.event_id] == (await timeline(env))[-2:]


async def test_a_sent_event_whose_prev_events_stay_missing_is_dropped(env: Env) -> None:
    """As from Synapse: no /state_ids for the event itself (SyTest "Federation rejects inbound
    events where the prev_events cannot be found")."""
    m1 = env.dag.add(ALICE, "m.room.message", MSG)
    m2 = env.dag.add(ALICE, "m.room.message", MSG)
    env.requester.hidden = {m1.event_id}
    result = await env.send(A, m2)
    assert "error" in result[m2.event_id]
    assert env.requester.called("get_missing_events") and env.requester.called("get_state_ids") == []
    assert m2.event_id not in await timeline(env)


async def test_fork_merge_resolves_ban_and_power_levels(env: Env) -> None:
    base = list(env.dag.head)
    # Fork 1 (alice, PL 100): bans bob. Fork 2 (bob, PL 50): sets the topic, then a message.
    ban = env.dag.add(ALICE, "m.room.member", {"membership": "ban"}, BOB, prevs=base, advance=False)
    topic = env.dag.add(BOB, "m.room.topic", {"topic": "bob's"}, "", prevs=base, advance=False)
    assert await env.send(A, ban) == {ban.event_id: {}}
    assert (await current(env))[("m.room.member", BOB)] == ban.event_id
    # bob's topic cites the pre-ban state: passes the state before it, fails the current state.
    assert await env.send(B, topic) == {topic.event_id: {}}
    s = await stored(env, topic.event_id)
    assert s is not None and s.soft_failed
    assert topic.event_id not in await timeline(env)
    assert await extremities(env) == [ban.event_id]
    assert ("m.room.topic", "") not in await current(env)
    # alice merges both forks: state resolution must keep the ban (and then the topic falls,
    # since bob is banned in the resolved power/member state).
    merge = env.dag.add(ALICE, "m.room.message", MSG, prevs=[ban.event_id, topic.event_id])
    assert await env.send(A, merge) == {merge.event_id: {}}
    cur = await current(env)
    expected = env.dag.state_after[merge.event_id]
    assert cur == expected
    assert cur[("m.room.member", BOB)] == ban.event_id
    assert await extremities(env) == [merge.event_id]


async def test_fork_with_conflicting_power_levels(env: Env) -> None:
    base = list(env.dag.head)
    pl_content = dict(env.dag.events[env.dag.state_after[base[0]][("m.room.power_levels", "")]].content)
    pl1 = env.dag.add(ALICE, "m.room.power_levels", {**pl_content, "users_default": 10}, "", prevs=base, advance=False)
    pl2 = env.dag.add(ALICE, "m.room.power_levels", {**pl_content, "users_default": 20}, "", prevs=base, advance=False)
    assert await env.send(A, pl1) == {pl1.event_id: {}}
    assert await env.send(A, pl2) == {pl2.event_id: {}}
    # Two extremities now; current state is the resolution of both, as the remote computes it.
    assert await extremities(env) == sorted([pl1.event_id, pl2.event_id])
    expected = env.dag.state_before([pl1.event_id, pl2.event_id])
    assert await current(env) == expected
    room = await env.storage.db.read(lambda c: rooms_table.select_room(c, env.room_id))
    assert room is not None and room.current_state_group is not None
    group = await env.storage.db.read(lambda c: st.select_state_group(c, room.current_state_group))
    assert group == expected


async def test_soft_failed_banned_user_message(env: Env) -> None:
    before_ban = list(env.dag.head)
    ban = env.dag.add(ALICE, "m.room.member", {"membership": "ban"}, BOB)
    assert await env.send(A, ban) == {ban.event_id: {}}
    evading = env.dag.add(BOB, "m.room.message", MSG, prevs=before_ban, advance=False)
    assert await env.send(B, evading) == {evading.event_id: {}}
    s = await stored(env, evading.event_id)
    assert s is not None and s.soft_failed and s.event.rejected_reason is None
    assert evading.event_id not in await timeline(env)
    assert await extremities(env) == [ban.event_id]


async def test_notifies_local_members(env: Env) -> None:
    m = env.dag.add(ALICE, "m.room.message", MSG)
    with env.notifier.listen(ME) as listener:
        await env.send(A, m)
        assert await listener.wait(0.1)


async def test_at_most_50_pdus_per_transaction(env: Env) -> None:
    events = [env.dag.add(ALICE, "m.room.message", {**MSG, "body": str(i)}) for i in range(55)]
    res = await env.send(A, *events)
    assert len(res) == 50
    assert events[50].event_id not in await timeline(env)


async def test_missing_auth_events_fetched_with_event_auth(env: Env) -> None:
    carol = "@carol:remote.b"
    join = env.dag.add(carol, "m.room.member", {"membership": "join"}, carol)
    # /get_missing_events gives alice's message; before it, carol's join, which only
    # /event_auth and /state_ids (at that gap) give.
    between = env.dag.add(ALICE, "m.room.message", MSG)
    m = env.dag.add(carol, "m.room.message", MSG)
    env.requester.hidden = {join.event_id}
    assert await env.send(B, m) == {m.event_id: {}}
    assert env.requester.called("get_state_ids") == [join.event_id]
    assert between.event_id in await timeline(env)
    assert env.requester.called("get_event_auth") == [m.event_id]
    held = await stored(env, join.event_id)
    assert held is not None and held.outlier and held.event.rejected_reason is None
    assert (await current(env))[("m.room.member", carol)] == join.event_id
    assert m.event_id in await timeline(env)


async def test_join_state_with_a_forged_state_event_leaves_it_out(tmp_path: Path) -> None:
    from tests.unit.federation.ingest_env import make_keys, open_room_dag
    from dendrite_lite.federation.ingest import FederationIngest
    from dendrite_lite.storage import Storage
    from dendrite_lite.sync.notifier import Notifier
    from tests.unit.federation.ingest_env import FakeRequester

    keys, store = make_keys()
    dag = open_room_dag("10", keys)
    topic = dag.add(BOB, "m.room.topic", {"topic": "real"}, "")
    state_ids = dag.state_before(dag.head)
    join = dag.add(ME, "m.room.member", {"membership": "join"}, ME)
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    try:
        ingest = FederationIngest(storage, key_store=store, requester=FakeRequester(dag), notifier=Notifier())
        state = [dag.pdu(dag.events[i]) for i in state_ids.values()]
        forged = next(p for p in state if p.get("type") == "m.room.topic")
        forged["signatures"] = {B: {k: "A" * 86 for k in forged["signatures"][B]}}
        chain = [dag.pdu(e) for e in dag.auth_chain(list(state_ids.values()))]
        persisted = await ingest.persist_join_state(dag.rv, state, chain, dag.pdu(join))
        assert persisted.event.event_id == join.event_id
        cur = await storage.db.read(lambda c: st.select_current_state(c, dag.room_id))
        assert ("m.room.topic", "") not in cur
        assert cur[("m.room.member", ME)] == join.event_id
        assert await storage.db.read(lambda c: ev_table.select_event(c, topic.event_id)) is None
    finally:
        await storage.close()
