"""Backfiller: events fetched with /backfill get the real state before/after each of them (from
their prev events' states, or the server's /state_ids at the event), are auth checked against
it, and /messages history visibility follows it. A real temp SQLite database and a fake remote
over a DAG of really signed events (ingest_env)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.crypto.signing import InMemoryKeyStore
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.federation.backfill import Backfiller
from dendrite_lite.rooms.history import HistoryService, MessagesRequest
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as ev_table
from dendrite_lite.storage import state as st
from tests.unit.federation.ingest_env import (
    A,
    ALICE,
    B,
    BOB,
    ME,
    US,
    FakeRequester,
    RemoteDag,
    join_through_state,
    make_keys,
    open_room_dag,
)

CAROL = "@carol:remote.b"
HV = ("m.room.history_visibility", "")


def msg(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


class BackfillRequester(FakeRequester):
    """The fake remote, answering /backfill too (breadth first from `v` along prev events,
    `v` included, as room_reads does); `state_ids_fail` makes /state_ids fail."""

    state_ids_fail = False

    async def backfill(
        self, destination: str, room_id: str, event_ids: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        self.calls.append(("backfill", (destination, sorted(event_ids), limit)))
        out: list[Event] = []
        seen: set[str] = set()
        queue = list(event_ids)
        while queue and len(out) < limit:
            eid = queue.pop(0)
            if eid in seen or eid not in self.dag.events:
                continue
            seen.add(eid)
            ev = self.dag.events[eid]
            out.append(ev)
            queue.extend(ev.prev_event_ids)
        return [self.dag.pdu(e) for e in out]

    async def get_state_ids(self, destination: str, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        if self.state_ids_fail:
            self.calls.append(("get_state_ids", event_id))
            raise ConnectionError("state_ids refused")
        return await super().get_state_ids(destination, room_id, event_id)


@dataclass
class World:
    storage: Storage
    dag: RemoteDag
    requester: BackfillRequester
    backfiller: Backfiller
    history: HistoryService
    join_id: str
    keys: InMemoryKeyStore

    @property
    def room_id(self) -> str:
        assert self.dag.room_id is not None
        return self.dag.room_id

    async def stored(self, event_id: str) -> ev_table.StoredEvent | None:
        return await self.storage.db.read(lambda c: ev_table.select_event(c, event_id))

    async def state_after(self, event_id: str) -> dict[StateKey, str]:
        s = await self.stored(event_id)
        assert s is not None and s.state_group is not None, event_id
        group = s.state_group
        return await self.storage.db.read(lambda c: st.select_state_group(c, group))

    async def messages(self, user: str = ME, limit: int = 50) -> list[dict[str, Any]]:
        body = await self.history.messages(
            MessagesRequest(user_id=user, device_id=None, room_id=self.room_id, dir="b", limit=limit)
        )
        return list(body["chunk"])


async def joined_after(
    tmp_path: Path, history: Callable[[RemoteDag], None], version: str = "10", min_batch: int = 1
) -> World:
    """The remote room (open_room_dag), then `history`, then our server joins (me@test) through
    persist_join_state: we hold the state at our join as outliers and our join only. Batches
    are as small as the page asks (`min_batch` 1) unless told."""
    keys, store = make_keys()
    dag = open_room_dag(version, keys)
    history(dag)
    requester = BackfillRequester(dag)
    storage, _, _, _, join = await join_through_state(tmp_path, dag, keys, store, requester)
    backfiller = Backfiller(storage, requester, store, server_name=US, min_batch=min_batch)  # type: ignore[arg-type]
    requester.calls.clear()
    history_service = HistoryService(storage, backfill=backfiller.backfill)
    return World(storage, dag, requester, backfiller, history_service, join.event_id, store)


@pytest.fixture
async def worlds() -> AsyncIterator[list[World]]:
    made: list[World] = []
    yield made
    for w in made:
        await w.storage.close()


def by_body(chunk: Sequence[dict[str, Any]]) -> list[str]:
    """Message bodies (redacted messages have none)."""
    return [e["content"]["body"] for e in chunk if e["type"] == "m.room.message" and "body" in e["content"]]


def _visibility_history(names: dict[str, str]) -> Callable[[RemoteDag], None]:
    """shared: "before"; joined (carol joins): "secret", carol leaves: "gone"; shared: "after"."""

    def history(dag: RemoteDag) -> None:
        names["before"] = dag.add(ALICE, "m.room.message", msg("before")).event_id
        names["hv_joined"] = dag.add(ALICE, "m.room.history_visibility", {"history_visibility": "joined"}, "").event_id
        names["carol_join"] = dag.add(CAROL, "m.room.member", {"membership": "join"}, CAROL).event_id
        names["secret"] = dag.add(ALICE, "m.room.message", msg("secret")).event_id
        names["carol_leave"] = dag.add(CAROL, "m.room.member", {"membership": "leave"}, CAROL).event_id
        names["gone"] = dag.add(ALICE, "m.room.message", msg("gone")).event_id
        names["hv_shared"] = dag.add(ALICE, "m.room.history_visibility", {"history_visibility": "shared"}, "").event_id
        names["after"] = dag.add(BOB, "m.room.message", msg("after")).event_id

    return history


@pytest.mark.parametrize("version", ["10", "12"])
async def test_backfilled_events_get_the_real_state_and_visibility(
    tmp_path: Path, worlds: list[World], version: str
) -> None:
    names: dict[str, str] = {}
    w = await joined_after(tmp_path, _visibility_history(names), version)
    worlds.append(w)
    chunk = await w.messages()
    # Events sent while the room was "joined" and we were not in it stay hidden; the
    # visibility change back to shared is shown (its state after allows it).
    assert by_body(chunk) == ["after", "before"]
    ids = [e["event_id"] for e in chunk]
    assert ids[0] == w.join_id
    assert names["hv_shared"] in ids and names["hv_joined"] in ids
    assert names["secret"] not in ids and names["gone"] not in ids
    assert chunk[-1]["type"] == "m.room.create"
    # Every backfilled event holds the state after it as the remote room has it.
    for eid in names.values():
        assert await w.state_after(eid) == w.dag.state_after[eid], eid
    secret_state = await w.state_after(names["secret"])
    assert w.dag.events[secret_state[HV]].content["history_visibility"] == "joined"
    assert w.dag.events[secret_state[("m.room.member", CAROL)]].membership == "join"
    # The history started at the create event: every event had its prevs; no state asked for.
    assert w.requester.called("get_state_ids") == []
    # Carol, who was joined then, may see "secret" (her membership at that point was join).
    stored = await w.stored(names["secret"])
    assert stored is not None and stored.stream_ordering < 0 and not stored.outlier


async def test_state_at_the_batch_boundary_comes_from_state_ids(tmp_path: Path, worlds: list[World]) -> None:
    names: dict[str, str] = {}
    w = await joined_after(tmp_path, _visibility_history(names))
    worlds.append(w)
    # The 5 events before our join: the oldest, "secret", has its prev event (carol's join,
    # held as an outlier: it is in the auth chain of the state at our join) without a state.
    chunk = await w.messages(limit=5)
    assert [e["event_id"] for e in chunk] == [w.join_id, names["after"], names["hv_shared"]]
    assert w.requester.called("backfill")[0][1:] == ([names["after"]], 5)
    assert w.requester.called("get_state_ids") == [names["secret"]]
    for key in ("secret", "carol_leave", "gone"):  # backfilled, hidden by history visibility
        held = await w.stored(names[key])
        assert held is not None and not held.outlier and held.stream_ordering < 0, key
    for key in ("secret", "carol_leave", "gone", "hv_shared", "after"):
        assert await w.state_after(names[key]) == w.dag.state_after[names[key]], key
    # The state at "secret" is the server's: carol is joined and the room "joined" visibility.
    secret_state = await w.state_after(names["secret"])
    assert w.dag.events[secret_state[("m.room.member", CAROL)]].membership == "join"
    assert w.dag.events[secret_state[HV]].content["history_visibility"] == "joined"


async def test_a_small_page_asks_a_batch_that_needs_no_state_ids(tmp_path: Path, worlds: list[World]) -> None:
    """A page of 3 still asks for 100 events (as Synapse does): the batch reaches back to the
    create event, so every event gets its state from its prev events even when the server
    serves no /state_ids (SyTest "Outbound federation can backfill events")."""
    names: dict[str, str] = {}
    w = await joined_after(tmp_path, _visibility_history(names), min_batch=100)
    worlds.append(w)
    w.requester.state_ids_fail = True
    chunk = await w.messages(limit=3)
    assert [e["event_id"] for e in chunk] == [w.join_id, names["after"], names["hv_shared"]]
    assert [a[2] for a in w.requester.called("backfill")] == [100]
    assert w.requester.called("get_state_ids") == []
    assert await w.state_after(names["after"]) == w.dag.state_after[names["after"]]


async def test_an_event_whose_state_cannot_be_had_is_left_out(tmp_path: Path, worlds: list[World]) -> None:
    names: dict[str, str] = {}
    w = await joined_after(tmp_path, _visibility_history(names))
    worlds.append(w)
    w.requester.state_ids_fail = True
    chunk = await w.messages(limit=3)
    # The batch is "after", "hv_shared", "gone"; "gone"'s prev (carol's leave, held from our
    # join as an outlier) has no state and the server gives none: it and the events built on
    # it are not stored with a made-up state.
    assert [e["event_id"] for e in chunk] == [w.join_id]
    # Asked once per batch: from each of the two servers in the room.
    assert w.requester.called("get_state_ids") == [names["gone"], names["gone"]]
    assert sorted(a[0] for a in w.requester.called("backfill")) == [A, B]
    for key in ("gone", "hv_shared", "after"):
        held = await w.stored(names[key])
        assert held is None or (held.outlier and held.state_group is None), key
    # The server answers again: the next pagination takes the same events, with their state.
    w.requester.state_ids_fail = False
    chunk = await w.messages(limit=3)
    assert [e["event_id"] for e in chunk] == [w.join_id, names["after"], names["hv_shared"]]
    assert await w.state_after(names["after"]) == w.dag.state_after[names["after"]]


async def test_event_failing_the_state_before_it_is_rejected(tmp_path: Path, worlds: list[World]) -> None:
    """Bob leaves, then sends a message whose auth events still cite his join: it passes
    against its auth events but not against the state before it."""
    names: dict[str, str] = {}

    def history(dag: RemoteDag) -> None:
        leave = dag.add(BOB, "m.room.member", {"membership": "leave"}, BOB)
        stale = dict(dag.state_after[leave.event_id])
        stale[("m.room.member", BOB)] = next(
            e.event_id for e in dag.events.values() if e.type == "m.room.member" and e.state_key == BOB
            and e.membership == "join"
        )
        bad = dag.add(BOB, "m.room.message", msg("ghost"), state=stale)
        # The room as servers see it: the rejected message changed nothing.
        dag.state_after[bad.event_id] = dict(dag.state_after[leave.event_id])
        names["bad"] = bad.event_id
        names["next"] = dag.add(ALICE, "m.room.message", msg("next")).event_id

    w = await joined_after(tmp_path, history)
    worlds.append(w)
    chunk = await w.messages()
    assert by_body(chunk) == ["next"]
    bad = await w.stored(names["bad"])
    assert bad is not None and bad.outlier
    assert bad.event.rejected_reason is not None and "auth rule" in bad.event.rejected_reason
    # Held with the state before it, so the event after it got its state from it.
    assert await w.state_after(names["bad"]) == w.dag.state_after[names["bad"]]
    assert await w.state_after(names["next"]) == w.dag.state_after[names["next"]]
    assert w.requester.called("get_state_ids") == []


async def test_fork_in_backfilled_history_is_resolved(tmp_path: Path, worlds: list[World]) -> None:
    names: dict[str, str] = {}

    def history(dag: RemoteDag) -> None:
        base = list(dag.head)
        topic = dag.add(ALICE, "m.room.topic", {"topic": "left"}, "", prevs=base, advance=False)
        hv = dag.add(BOB, "m.room.message", msg("right"), prevs=base, advance=False)
        names.update(topic=topic.event_id, right=hv.event_id)
        names["merge"] = dag.add(
            ALICE, "m.room.message", msg("merge"), prevs=[topic.event_id, hv.event_id]
        ).event_id

    w = await joined_after(tmp_path, history)
    worlds.append(w)
    chunk = await w.messages()
    assert by_body(chunk) == ["merge", "right"]
    assert [e["event_id"] for e in chunk[:4]] == [w.join_id, names["merge"], names["right"], names["topic"]] or [
        e["event_id"] for e in chunk[:4]] == [w.join_id, names["merge"], names["topic"], names["right"]]
    merge_state = await w.state_after(names["merge"])
    assert merge_state == w.dag.state_after[names["merge"]]
    assert merge_state[("m.room.topic", "")] == names["topic"]
    assert w.requester.called("get_state_ids") == []


async def test_room_state_held_from_the_join_joins_the_timeline(tmp_path: Path, worlds: list[World]) -> None:
    """The event before our join is room state we hold only as an outlier (from send_join): it
    is still backfilled, with the events before it, each with its own state."""
    w = await joined_after(tmp_path, lambda dag: None)
    worlds.append(w)
    chunk = await w.messages()
    created = [e for e in w.dag.events.values() if e.event_id != w.join_id]
    assert [e["event_id"] for e in chunk] == [w.join_id, *(e.event_id for e in reversed(created))]
    for e in created:
        assert await w.state_after(e.event_id) == w.dag.state_after[e.event_id], e.type
    assert w.requester.called("get_state_ids") == []
    assert {a[0] for a in w.requester.called("backfill")} == {A}  # the first server answered


async def test_events_share_groups_and_redactions_apply(tmp_path: Path, worlds: list[World]) -> None:
    """Messages keep the group of the state before them (no group per message); a backfilled
    redaction (v12: `redacts` in content) redacts the backfilled event it points at."""
    names: dict[str, str] = {}

    def history(dag: RemoteDag) -> None:
        names["topic"] = dag.add(ALICE, "m.room.topic", {"topic": "t"}, "").event_id
        names["oops"] = dag.add(ALICE, "m.room.message", msg("oops")).event_id
        for i in range(3):
            names[f"m{i}"] = dag.add(BOB, "m.room.message", msg(f"m{i}")).event_id
        names["redaction"] = dag.add(ALICE, "m.room.redaction", {"redacts": names["oops"]}).event_id

    w = await joined_after(tmp_path, history, "12")
    worlds.append(w)
    chunk = await w.messages()
    by_id = {e["event_id"]: e for e in chunk}
    assert by_body(chunk) == ["m2", "m1", "m0"]  # "oops" is shown redacted: no body
    assert by_id[names["oops"]]["content"] == {}
    assert by_id[names["oops"]]["unsigned"]["redacted_because"]["event_id"] == names["redaction"]
    groups = set()
    for key in ("topic", "oops", "m0", "m1", "m2", "redaction"):
        held = await w.stored(names[key])
        assert held is not None and held.state_group is not None
        groups.add(held.state_group)
    assert len(groups) == 1
    assert await w.state_after(names["m2"]) == w.dag.state_after[names["m2"]]


async def test_batch_is_written_under_the_room_lock(tmp_path: Path, worlds: list[World]) -> None:
    names: dict[str, str] = {}
    w = await joined_after(tmp_path, _visibility_history(names))
    worlds.append(w)
    locks: dict[str, asyncio.Lock] = {}
    w.backfiller = Backfiller(
        w.storage, w.requester, w.keys, server_name=US,  # type: ignore[arg-type]
        room_lock=lambda room_id: locks.setdefault(room_id, asyncio.Lock()),
    )
    lock = locks.setdefault(w.room_id, asyncio.Lock())
    async with lock:
        task = asyncio.create_task(w.backfiller.backfill(w.room_id, 50))
        for _ in range(200):  # the batch is fetched and checked...
            await asyncio.sleep(0.01)
            if await w.stored(names["after"]) is not None:
                break
        await asyncio.sleep(0.3)  # ...and its write waits for the lock
        held = await w.stored(names["after"])
        assert held is not None and held.outlier and held.state_group is None
        assert not task.done()
    assert await task > 0
    held = await w.stored(names["after"])
    assert held is not None and not held.outlier and held.state_group is not None
