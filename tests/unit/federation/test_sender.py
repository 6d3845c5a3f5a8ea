"""The federation sender fed by the local pipeline: outbox rows written in the event's own
transaction, delivery after a crash, batching, who receives what."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import aiosqlite
import pytest

from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.federation.outbox import MAX_PDUS
from dendrite_lite.rooms.pipeline import EventSpec
from dendrite_lite.storage import Storage
from dendrite_lite.storage import outbox as outbox_table

from .sender_env import (
    ALICE,
    REMOTE1,
    US,
    Clock,
    eventually,
    open_env,
    restarted,
    settle,
)


async def _rows(storage: Storage) -> list[tuple[str, str]]:
    async def load(conn: aiosqlite.Connection) -> list[tuple[str, str]]:
        async with conn.execute(
            "SELECT destination, event_id FROM federation_outbox ORDER BY position"
        ) as cur:
            return [(r[0], r[1]) for r in await cur.fetchall()]

    return await storage.db.read(load)


async def test_rows_written_with_the_event_for_every_remote_server(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    try:
        # The remote joins themselves came from remote senders: nothing queued for them.
        assert await _rows(env.storage) == []
        sent = await env.say("hello")
        rows = await _rows(env.storage)
        assert rows == [("remote1", sent.event.event_id), ("remote2", sent.event.event_id)]
        assert all(d != US for d, _ in rows)
    finally:
        await env.storage.close()


async def test_rolled_back_transaction_leaves_no_row(tmp_path: Path) -> None:
    """The row shares the event's transaction: when that aborts, neither exists."""
    fail = {"on": False}

    async def exploding(room_id: str, events: Sequence[Event]):  # a later persist hook
        async def write(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
            if fail["on"]:
                raise RuntimeError("disk on fire")

        return write

    env = await open_env(tmp_path, extra_persist=[exploding])
    try:
        fail["on"] = True
        with pytest.raises(RuntimeError):
            await env.say("lost")
        assert await _rows(env.storage) == []
        fail["on"] = False
        ok = await env.say("kept")
        assert [e for _, e in await _rows(env.storage)] == [ok.event.event_id] * 2
    finally:
        await env.storage.close()


async def test_kill_before_sending_then_restart_delivers_everything_in_order(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    # The sender is never started: the process "dies" with everything still queued.
    for i in range(7):
        await env.say(f"m{i}")
    await env.storage.close()
    assert env.transport.attempts == []

    async with restarted(tmp_path) as new:
        await eventually(lambda: len(new.transport.ok) == 2)
        for dest in ("remote1", "remote2"):
            [txn] = new.transport.delivered(dest)
            assert txn.event_bodies == [f"m{i}" for i in range(7)]
            assert txn.body["origin"] == US
            assert "event_id" not in txn.body["pdus"][0]  # v12 PDUs carry no event_id
        await settle()
        assert await _rows(new.storage) == []
        health = await new.sender.destination_health("remote1")
        assert health is not None and health.pending == 0 and health.last_success_ts is not None


async def test_120_pdus_become_three_transactions_in_order(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    try:
        for i in range(120):
            await env.say(f"m{i}")
        await env.sender.start()
        await eventually(lambda: len(env.transport.ok) == 3)
        sizes = [len(t.body["pdus"]) for t in env.transport.ok]
        assert sizes == [MAX_PDUS, MAX_PDUS, 20]
        bodies = [b for t in env.transport.ok for b in t.event_bodies]
        assert bodies == [f"m{i}" for i in range(120)]
        assert len({t.txn_id for t in env.transport.ok}) == 3
        await settle()
        assert await env.pending("remote1") == 0
    finally:
        await env.close()


async def test_live_event_is_sent_after_commit(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    await env.sender.start()
    try:
        await env.say("live")
        await eventually(lambda: len(env.transport.ok) == 2)
        assert sorted(t.destination for t in env.transport.ok) == ["remote1", "remote2"]
        await env.say("second")
        await eventually(lambda: len(env.transport.ok) == 4)
        assert [t.event_bodies for t in env.transport.delivered("remote1")] == [["live"], ["second"]]
    finally:
        await env.close()


async def test_invite_target_and_rescinded_invite_reach_the_invitee_server(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    try:
        invite = await env.member(ALICE, "@x:remote3", "invite")
        rescind = await env.member(ALICE, "@x:remote3", "leave")
        after = await env.say("remote3 is not in the room")
        rows = await _rows(env.storage)
        assert ("remote3", invite.event.event_id) in rows
        assert ("remote3", rescind.event.event_id) in rows
        assert ("remote3", after.event.event_id) not in rows
        assert ("remote1", after.event.event_id) in rows
    finally:
        await env.storage.close()


async def test_kicked_server_hears_of_its_kick_but_not_later_events(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    try:
        # v12: the creator may kick anyone (infinite power).
        kick = await env.member(ALICE, REMOTE1, "leave")
        later = await env.say("after the kick")
        rows = await _rows(env.storage)
        assert ("remote1", kick.event.event_id) in rows
        assert ("remote1", later.event.event_id) not in rows
        assert ("remote2", later.event.event_id) in rows
    finally:
        await env.storage.close()


async def test_per_pdu_errors_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    try:
        sent = await env.say("refused")
        env.transport.answers["remote1"] = {"pdus": {sent.event.event_id: {"error": "not allowed"}}}
        with caplog.at_level(logging.WARNING, logger="dendrite_lite.federation.outbox"):
            await env.sender.start()
            await eventually(lambda: len(env.transport.ok) == 1)
            await settle()
        assert any(
            sent.event.event_id in r.getMessage() and "not allowed" in r.getMessage()
            for r in caplog.records
        )
        # A per-PDU error is still an acknowledged transaction: the row is gone.
        assert await env.pending("remote1") == 0
    finally:
        await env.close()


async def test_joined_servers_excludes_us(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    try:
        assert await env.sender.joined_servers(env.room_id) == {"remote1", "remote2"}
        rows = await env.storage.db.read(
            lambda c: outbox_table.select_joined_servers(c, env.room_id)
        )
        assert rows == {"remote1", "remote2", US}
    finally:
        await env.storage.close()


async def test_servers_sharing_rooms_with_a_user(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    try:
        second = await env.pipeline.create_room(
            get_room_version("12"), "@dave:test", {},
            lambda room_id: [
                EventSpec("@dave:test", "m.room.member", {"membership": "join"}, "@dave:test"),
                EventSpec("@dave:test", "m.room.join_rules", {"join_rule": "public"}, ""),
            ],
        )
        z = "@z:remote9"
        await env.pipeline.send(second[0], EventSpec(z, "m.room.member", {"membership": "join"}, z))
        assert await env.sender.servers_sharing_rooms(ALICE) == {"remote1", "remote2"}
        assert await env.sender.servers_sharing_rooms("@dave:test") == {"remote9"}
        assert await env.sender.servers_sharing_rooms("@nobody:test") == set()
    finally:
        await env.close()
