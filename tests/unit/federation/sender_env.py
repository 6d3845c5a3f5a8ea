"""A room with remote members, a pipeline wired to a FederationSender, and a fake transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.federation.client import FederationError
from dendrite_lite.federation.destinations import BackoffPolicy, DestinationHealth
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.rooms.pipeline import EventSpec, PersistedEvent, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import outbox as outbox_table
from dendrite_lite.sync.notifier import Notifier

US = "test"
ALICE = "@alice:test"
REMOTE1 = "@r1:remote1"
REMOTE2 = "@r2:remote2"


@dataclass
class Sent:
    destination: str
    txn_id: str
    body: Mapping[str, Any]

    @property
    def event_bodies(self) -> list[str]:
        return [p["content"].get("body") for p in self.body["pdus"]]


@dataclass
class FakeTransport:
    """Records every attempt (`attempts`) and every success (`ok`); `failures[dest]` makes
    requests to dest fail, `gates[dest]` holds them open until the event is set."""

    attempts: list[Sent] = field(default_factory=list)
    ok: list[Sent] = field(default_factory=list)
    failures: dict[str, FederationError] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)

    async def send_transaction(self, destination: str, txn_id: str, body: Mapping[str, Any]) -> Any:
        sent = Sent(destination, txn_id, body)
        self.attempts.append(sent)
        gate = self.gates.get(destination)
        if gate is not None:
            await gate.wait()
        error = self.failures.get(destination)
        if error is not None:
            raise error
        self.ok.append(sent)
        return self.answers.get(destination, {"pdus": {}})

    def delivered(self, destination: str) -> list[Sent]:
        return [s for s in self.ok if s.destination == destination]

    def tried(self, destination: str) -> list[Sent]:
        return [s for s in self.attempts if s.destination == destination]


class Clock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    path: Path
    storage: Storage
    pipeline: RoomPipeline
    sender: FederationSender
    transport: FakeTransport
    clock: Clock
    room_id: str = ""

    async def say(self, body: str, sender: str = ALICE) -> PersistedEvent:
        return await self.pipeline.send(
            self.room_id, EventSpec(sender, "m.room.message", {"msgtype": "m.text", "body": body})
        )

    async def member(self, sender: str, target: str, membership: str) -> PersistedEvent:
        return await self.pipeline.send(
            self.room_id, EventSpec(sender, "m.room.member", {"membership": membership}, target)
        )

    async def first_attempt_fails(self, error: FederationError, destination: str = "remote1") -> DestinationHealth:
        """Queue "m0", start the sender, let its first attempt fail with error; its health."""
        self.transport.failures[destination] = error
        await self.say("m0")
        await self.sender.start()
        await eventually(lambda: len(self.transport.tried(destination)) == 1)
        await settle()
        return await self.health(destination)

    async def health(self, destination: str = "remote1") -> DestinationHealth:
        health = await self.sender.destination_health(destination)
        assert health is not None, f"no health for {destination}"
        return health

    async def close(self) -> None:
        await self.sender.stop()
        await self.storage.close()

    async def pending(self, destination: str) -> int:
        counts = await self.storage.db.read(
            lambda c: outbox_table.select_pending_counts(c, destination)
        )
        return counts.get(destination, 0)


def make_sender(
    storage: Storage, transport: FakeTransport, clock: Clock, policy: BackoffPolicy | None = None
) -> FederationSender:
    return FederationSender(
        storage, transport, server_name=US, policy=policy or BackoffPolicy(), clock=clock,
        rng=lambda: 0.5,  # no jitter: timings are exact
    )


def make_pipeline(storage: Storage, sender: FederationSender, clock: Clock, **hooks: Any) -> RoomPipeline:
    return RoomPipeline(
        storage, server_name=US, key=new_server_key(), notifier=Notifier(), clock=clock,
        persist_hooks=[sender.prepare, *hooks.get("extra_persist", ())],
        commit_hooks=[sender.committed],
    )


async def open_env(path: Path, *, remotes: tuple[str, ...] = (REMOTE1, REMOTE2), **kw: Any) -> Env:
    """A v12 public room created by ALICE, joined by each of `remotes`; sender NOT started."""
    storage = await Storage.open(path / "db.sqlite", readers=2)
    clock = Clock()
    transport = FakeTransport()
    sender = make_sender(storage, transport, clock)
    pipeline = make_pipeline(storage, sender, clock, **kw)
    env = Env(path, storage, pipeline, sender, transport, clock)

    def following(room_id: str) -> list[EventSpec]:
        return [
            EventSpec(ALICE, "m.room.member", {"membership": "join"}, ALICE),
            EventSpec(ALICE, "m.room.power_levels", {"users": {}, "users_default": 0}, ""),
            EventSpec(ALICE, "m.room.join_rules", {"join_rule": "public"}, ""),
        ]

    env.room_id, _ = await pipeline.create_room(get_room_version("12"), ALICE, {}, following)
    for user in remotes:
        # Remote joins arrive over federation in real life; here the pipeline stands in (their
        # sender is remote, so the sender must not queue them for anyone).
        await env.member(user, user, "join")
    return env


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Let the sender tasks run whatever they can run now."""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


@dataclass
class Restarted:
    storage: Storage
    transport: FakeTransport
    sender: FederationSender
    clock: Clock


@asynccontextmanager
async def restarted(path: Path, clock: Clock | None = None) -> AsyncIterator[Restarted]:
    """The process after a restart: the same database, a new sender (started), a new transport."""
    storage = await Storage.open(path / "db.sqlite", readers=2)
    transport, clock = FakeTransport(), clock or Clock()
    sender = make_sender(storage, transport, clock)
    await sender.start()
    try:
        yield Restarted(storage, transport, sender, clock)
    finally:
        await sender.stop()
        await storage.close()
