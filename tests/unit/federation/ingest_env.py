"""A remote room as an in-memory DAG of really signed events, a fake FederationRequester over
it, and a temp-SQLite FederationIngest that has joined the room (via persist_join_state)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dendrite_lite.crypto.keys import ServerKey, new_server_key
from dendrite_lite.crypto.signing import InMemoryKeyStore, ServerVerifyKey
from dendrite_lite.events.builder import build_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.events.room_versions import RoomVersion, get_room_version
from dendrite_lite.events.state_res import resolve_state
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.rooms.pipeline import RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as ev_table
from dendrite_lite.storage import state as st
from dendrite_lite.sync.notifier import Notifier

US = "test"
A, B = "remote.a", "remote.b"
ALICE = "@alice:remote.a"
BOB = "@bob:remote.b"
ME = "@me:test"

_ts = itertools.count(1_700_000_000_000)


@dataclass
class RemoteDag:
    """The room as the remote servers see it: every event and the state after each."""

    rv: RoomVersion
    keys: Mapping[str, ServerKey]
    events: dict[str, Event] = field(default_factory=dict)
    state_after: dict[str, dict[StateKey, str]] = field(default_factory=dict)
    head: list[str] = field(default_factory=list)
    room_id: str | None = None

    def state_before(self, prevs: Sequence[str]) -> dict[StateKey, str]:
        sets = [self.state_after[p] for p in prevs]
        if not sets:
            return {}
        return dict(resolve_state(self.rv, sets, self.events.get))

    def add(
        self,
        sender: str,
        etype: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        prevs: Sequence[str] | None = None,
        state: Mapping[StateKey, str] | None = None,
        advance: bool = True,
    ) -> Event:
        """Build and sign an event by `sender`'s server; prevs default to the head."""
        prevs = list(self.head if prevs is None else prevs)
        before = dict(self.state_before(prevs) if state is None else state)
        server = sender.split(":", 1)[1]
        event = build_event(
            room_version=self.rv, server_name=server, key=self.keys[server], sender=sender,
            event_type=etype, content=content, origin_server_ts=next(_ts),
            state={k: self.events[v] for k, v in before.items()},
            prev_events=[self.events[p] for p in prevs], state_key=state_key,
            room_id=self.room_id,
        )
        self.room_id = event.room_id
        self.events[event.event_id] = event
        after = dict(before)
        if event.is_state():
            after[event.state_tuple] = event.event_id
        self.state_after[event.event_id] = after
        if advance:
            self.head = [h for h in self.head if h not in prevs] + [event.event_id]
        return event

    def adopt(self, event: Event, *, advance: bool = True) -> Event:
        """Take in an event our server built (the remote servers got it over federation)."""
        self.events[event.event_id] = event
        after = self.state_before(event.prev_event_ids)
        if event.is_state():
            after[event.state_tuple] = event.event_id
        self.state_after[event.event_id] = after
        if advance:
            self.head = [h for h in self.head if h not in event.prev_event_ids] + [event.event_id]
        return event

    def pdu(self, event: Event) -> dict[str, Any]:
        return pdu_for_federation(event)

    def auth_chain(self, event_ids: Sequence[str]) -> list[Event]:
        seen: dict[str, Event] = {}
        stack = list(event_ids)
        while stack:
            for a in self.events[stack.pop()].auth_event_ids:
                if a not in seen:
                    seen[a] = self.events[a]
                    stack.append(a)
        create = self._create()
        seen.setdefault(create.event_id, create)
        return list(seen.values())

    def _create(self) -> Event:
        return next(e for e in self.events.values() if e.type == "m.room.create")


class FakeRequester:
    """Serves the DAG like the origin server would; records every call."""

    def __init__(self, dag: RemoteDag) -> None:
        self.dag = dag
        self.calls: list[tuple[str, Any]] = []
        self.hidden: set[str] = set()  # events /get_missing_events will not return

    async def get_missing_events(
        self, destination: str, room_id: str, earliest_events: Sequence[str],
        latest_events: Sequence[str], limit: int, min_depth: int,
    ) -> list[dict[str, Any]]:
        self.calls.append(("get_missing_events", (list(earliest_events), list(latest_events))))
        seen: set[str] = set(earliest_events) | set(latest_events)
        out: list[Event] = []
        frontier = [p for e in latest_events for p in self.dag.events[e].prev_event_ids]
        while frontier and len(out) < limit:
            eid = frontier.pop(0)
            if eid in seen or eid in self.hidden:
                continue
            seen.add(eid)
            ev = self.dag.events[eid]
            if ev.depth < min_depth:
                continue
            out.append(ev)
            frontier.extend(ev.prev_event_ids)
        return [self.dag.pdu(e) for e in sorted(out, key=lambda e: e.depth)]

    async def get_state_ids(self, destination: str, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        self.calls.append(("get_state_ids", event_id))
        prevs = self.dag.events[event_id].prev_event_ids
        state = self.dag.state_before(list(prevs))
        ids = list(state.values())
        return ids, [e.event_id for e in self.dag.auth_chain(ids)]

    async def get_event(self, destination: str, event_id: str) -> dict[str, Any] | None:
        self.calls.append(("get_event", event_id))
        ev = self.dag.events.get(event_id)
        return self.dag.pdu(ev) if ev is not None else None

    async def get_event_auth(self, destination: str, room_id: str, event_id: str) -> list[dict[str, Any]]:
        self.calls.append(("get_event_auth", event_id))
        return [self.dag.pdu(e) for e in self.dag.auth_chain([event_id])]

    def called(self, name: str) -> list[Any]:
        return [arg for n, arg in self.calls if n == name]


@dataclass
class Env:
    storage: Storage
    ingest: FederationIngest
    dag: RemoteDag
    requester: FakeRequester
    notifier: Notifier
    keys: dict[str, ServerKey]
    pipeline: RoomPipeline  # our local pipeline on the same storage, sharing the room lock

    @property
    def room_id(self) -> str:
        assert self.dag.room_id is not None
        return self.dag.room_id

    async def send(self, origin: str, *events: Event) -> dict[str, dict[str, str]]:
        return await self.ingest.receive_pdus(origin, [self.dag.pdu(e) for e in events])


async def current(env: Env) -> dict[StateKey, str]:
    """The room's current state table."""
    return await env.storage.db.read(lambda c: st.select_current_state(c, env.room_id))


async def extremities(env: Env) -> list[str]:
    rows = await env.storage.db.read(lambda c: ev_table.select_forward_extremities(c, env.room_id))
    return sorted(e for e, _ in rows)


def make_keys() -> tuple[dict[str, ServerKey], InMemoryKeyStore]:
    keys = {s: new_server_key() for s in (US, A, B)}
    store = InMemoryKeyStore()
    for server, k in keys.items():
        store.add(ServerVerifyKey(server, k.key_id, k.verify_key, valid_until_ts=2**62))
    return keys, store


def open_room_dag(version: str, keys: Mapping[str, ServerKey]) -> RemoteDag:
    """alice@remote.a creates a public room; bob@remote.b joins; PL gives bob 50."""
    rv = get_room_version(version)
    dag = RemoteDag(rv, keys)
    if not rv.room_id_is_create_event_hash:
        dag.room_id = "!room:remote.a"
    create_content = {} if rv.implicit_room_creator else {"creator": ALICE}
    dag.add(ALICE, "m.room.create", create_content, "")
    dag.add(ALICE, "m.room.member", {"membership": "join"}, ALICE)
    users = {BOB: 50} if rv.privileged_creators else {ALICE: 100, BOB: 50}
    dag.add(ALICE, "m.room.power_levels", {"users": users, "users_default": 0}, "")
    dag.add(ALICE, "m.room.join_rules", {"join_rule": "public"}, "")
    dag.add(BOB, "m.room.member", {"membership": "join"}, BOB)
    return dag


async def join_through_state(
    tmp_path: Path, dag: Any, keys: Any, store: Any, requester: Any
) -> tuple[Storage, FederationIngest, RoomPipeline, Notifier, Any]:
    """A fresh database in which our server (me@test) has joined `dag`'s room through
    persist_join_state: the state at the join as outliers, and the join itself."""
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    notifier = Notifier()
    pipeline = RoomPipeline(storage, server_name=US, key=keys[US], notifier=notifier)
    ingest = FederationIngest(
        storage, key_store=store, requester=requester, notifier=notifier, room_lock=pipeline.room_lock
    )
    state_ids = dag.state_before(dag.head)
    join = dag.add(ME, "m.room.member", {"membership": "join"}, ME)
    state = [dag.events[i] for i in state_ids.values()]
    chain = dag.auth_chain([e.event_id for e in state])
    await ingest.persist_join_state(
        dag.rv, [dag.pdu(e) for e in state], [dag.pdu(e) for e in chain], dag.pdu(join)
    )
    return storage, ingest, pipeline, notifier, join


async def open_env(tmp_path: Path, version: str = "10", *, members: int = 0) -> Env:
    """Our server `test` joins the remote room (me@test) through persist_join_state; `members`
    more users of remote.b join before us."""
    keys, store = make_keys()
    dag = open_room_dag(version, keys)
    for i in range(members):
        dag.add(f"@m{i}:{B}", "m.room.member", {"membership": "join"}, f"@m{i}:{B}")
    requester = FakeRequester(dag)
    storage, ingest, pipeline, notifier, _ = await join_through_state(
        tmp_path, dag, keys, store, requester
    )
    return Env(storage, ingest, dag, requester, notifier, keys, pipeline)
