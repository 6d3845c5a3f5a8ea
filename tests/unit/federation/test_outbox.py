"""Destination queues: backoff with an injected clock, recovery, isolation between
destinations, EDU batching, health rows, shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dendrite_lite.federation.client import RemoteError, UnreachableError
from dendrite_lite.federation.destinations import BackoffPolicy
from dendrite_lite.federation.edus import EduFanout
from dendrite_lite.federation.outbox import MAX_EDUS, TxnIds, is_permanent_failure
from tests.spec_schema import assert_matches_schema

from .sender_env import (
    REMOTE1,
    Clock,
    eventually,
    open_env,
    restarted,
    settle,
)

EDU_SCHEMAS = "server-server/definitions/event-schemas"
DOWN = UnreachableError("remote1", "cannot connect: ConnectError")


# --- pure pieces -----------------------------------------------------------------------------
def test_backoff_policy_doubles_up_to_an_hour_with_bounded_jitter() -> None:
    policy = BackoffPolicy()
    steps = [0]
    for _ in range(12):
        steps.append(policy.next_interval(steps[-1]))
    assert steps[1:6] == [5_000, 10_000, 20_000, 40_000, 80_000]
    assert steps[-1] == 3_600_000 and max(steps) == 3_600_000
    assert policy.delay(10_000, lambda: 0.5) == 10_000
    assert policy.delay(10_000, lambda: 0.0) == 8_000
    assert policy.delay(10_000, lambda: 0.999999) == 11_999


def test_permanent_failures_are_4xx_except_401_408_429() -> None:
    assert is_permanent_failure(RemoteError("d", 400, {"errcode": "M_BAD_JSON"}))
    assert is_permanent_failure(RemoteError("d", 403, {"errcode": "M_FORBIDDEN"}))
    for status in (401, 408, 429, 500, 502):
        assert not is_permanent_failure(RemoteError("d", status, None))
    assert not is_permanent_failure(DOWN)


def test_txn_ids_unique_and_prefixed_by_start_time() -> None:
    ids = TxnIds(1234)
    first = [ids.next() for _ in range(100)]
    assert len(set(first)) == 100 and all(i.startswith("1234.") for i in first)
    assert TxnIds(1235).next() not in first


# --- backoff -----------------------------------------------------------------------------------
async def test_backoff_timing_with_injected_clock(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    t0 = int(env.clock() * 1000)
    try:
        health = await env.first_attempt_fails(DOWN)
        assert (health.retry_interval_ms, health.next_retry_ts) == (5_000, t0 + 5_000)
        assert health.last_failure_ts == t0 and "ConnectError" in (health.last_failure_reason or "")
        assert health.pending == 1 and health.backing_off(t0)

        # New events while backing off do not cause an attempt before the backoff ends.
        await env.say("m1")
        env.clock.advance(4.9)
        env.sender.queue("remote1").wake()  # type: ignore[union-attr]
        await settle()
        assert len(env.transport.attempts) == 1

        env.clock.advance(0.1)
        env.sender.queue("remote1").wake()  # type: ignore[union-attr]
        await eventually(lambda: len(env.transport.attempts) == 2)
        await settle()
        # The failed transaction is retried as is: same txnId, same body (m1 waits its turn).
        first, second = env.transport.attempts
        assert second.txn_id == first.txn_id and second.body == first.body
        health = await env.health()
        assert (health.retry_interval_ms, health.next_retry_ts) == (10_000, t0 + 5_000 + 10_000)

        # Back up: at the next step everything is delivered and the backoff is cleared.
        del env.transport.failures["remote1"]
        env.clock.advance(10)
        env.sender.queue("remote1").wake()  # type: ignore[union-attr]
        await eventually(lambda: len(env.transport.ok) == 2)
        assert [t.event_bodies for t in env.transport.ok] == [["m0"], ["m1"]]
        await settle()
        health = await env.health()
        assert health.healthy and health.pending == 0
        assert health.next_retry_ts == 0 and health.last_success_ts == t0 + 15_000
    finally:
        await env.close()


async def test_destination_coming_back_gets_its_backlog_at_once(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    env.transport.failures["remote1"] = DOWN
    try:
        await env.sender.start()
        await env.say("m0")
        await eventually(lambda: len(env.transport.attempts) == 1)
        for i in range(1, 4):
            await env.say(f"m{i}")
        await settle()
        assert len(env.transport.attempts) == 1  # backing off
        # It sends us a request: no waiting for the backoff (the clock did not move).
        del env.transport.failures["remote1"]
        await env.sender.mark_alive("remote1")
        await eventually(lambda: sum(len(t.body["pdus"]) for t in env.transport.ok) == 4)
        assert [b for t in env.transport.ok for b in t.event_bodies] == ["m0", "m1", "m2", "m3"]
        await settle()
        health = await env.health()
        assert health.retry_interval_ms == 0 and health.pending == 0
        # A server we never backed off from: mark_alive is a no-op.
        await env.sender.mark_alive("elsewhere")
        assert await env.sender.destination_health("elsewhere") is None
    finally:
        await env.close()


async def test_one_failing_destination_does_not_delay_another(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    env.transport.gates["remote1"] = asyncio.Event()  # remote1 hangs forever
    try:
        await env.sender.start()
        for i in range(3):
            await env.say(f"m{i}")
            await eventually(lambda: len(env.transport.delivered("remote2")) == i + 1)
        assert [t.event_bodies for t in env.transport.delivered("remote2")] == [["m0"], ["m1"], ["m2"]]
        assert env.transport.delivered("remote1") == []
        assert len(env.transport.tried("remote1")) == 1  # one transaction in flight, no more
        # The transport sees a delivery a moment before the sender deletes its outbox rows.
        for _ in range(200):
            if await env.pending("remote2") == 0:
                break
            await asyncio.sleep(0.01)
        assert await env.pending("remote1") == 3 and await env.pending("remote2") == 0
    finally:
        await env.sender.stop(grace_s=0.05)
        await env.storage.close()


async def test_backoff_survives_restart(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    await env.first_attempt_fails(DOWN)
    await env.close()

    async with restarted(tmp_path, Clock(env.clock())) as new:
        await settle()
        assert new.transport.attempts == []  # still inside the 5 s backoff
        new.clock.advance(5)
        new.sender.queue("remote1").wake()  # type: ignore[union-attr]
        await eventually(lambda: len(new.transport.ok) == 1)
        assert new.transport.ok[0].event_bodies == ["m0"]


async def test_rejected_transaction_is_dropped_without_backoff(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    try:
        health = await env.first_attempt_fails(RemoteError("remote1", 400, {"errcode": "M_BAD_JSON"}))
        assert health.pending == 0 and health.retry_interval_ms == 0
        assert "M_BAD_JSON" in (health.last_failure_reason or "")
        del env.transport.failures["remote1"]
        await env.say("good")
        await eventually(lambda: len(env.transport.ok) == 1)
        assert env.transport.ok[0].event_bodies == ["good"]
    finally:
        await env.close()


# --- EDUs ----------------------------------------------------------------------------------------
async def test_edus_batched_by_100_and_alongside_pdus(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    try:
        for i in range(60):
            await env.say(f"m{i}")
        for i in range(150):
            await env.sender.send_edu(
                ["remote1", "test"], "m.typing",
                {"room_id": env.room_id, "user_id": f"@u{i}:test", "typing": True},
            )
        await env.sender.start()
        await eventually(lambda: len(env.transport.ok) == 2)
        first, second = env.transport.ok
        assert (len(first.body["pdus"]), len(first.body["edus"])) == (50, MAX_EDUS)
        assert (len(second.body["pdus"]), len(second.body["edus"])) == (10, 50)
        users = [e["content"]["user_id"] for t in env.transport.ok for e in t.body["edus"]]
        assert users == [f"@u{i}:test" for i in range(150)]
        assert all(e["edu_type"] == "m.typing" for e in first.body["edus"])
        assert env.transport.delivered("test") == []  # never to ourselves
    finally:
        await env.close()


async def test_receipts_persist_typing_does_not(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    receipt = {env.room_id: {"m.read": {"@alice:test": {"event_ids": ["$e"], "data": {"ts": 1}}}}}
    await env.sender.send_edu(["remote1"], "m.receipt", receipt)
    await env.sender.send_edu(["remote1"], "m.typing", {"room_id": env.room_id,
                                                          "user_id": "@alice:test", "typing": True})
    assert await env.pending("remote1") == 1  # the receipt only
    await env.storage.close()  # killed before sending

    async with restarted(tmp_path) as new:
        await eventually(lambda: len(new.transport.ok) == 1)
        assert new.transport.ok[0].body["edus"] == [{"edu_type": "m.receipt", "content": receipt}]
        assert new.transport.ok[0].body["pdus"] == []
        await settle()
        assert (await new.sender.destination_health("remote1")).pending == 0  # type: ignore[union-attr]


async def test_edu_only_transactions_while_healthy(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    await env.sender.start()
    try:
        await env.sender.send_edu(await env.sender.joined_servers(env.room_id), "m.presence",
                                  {"push": [{"user_id": "@alice:test", "presence": "online",
                                             "last_active_ago": 0}]})
        await eventually(lambda: len(env.transport.ok) == 1)
        assert env.transport.ok[0].body["edus"][0]["edu_type"] == "m.presence"
        assert env.transport.ok[0].body["pdus"] == []
    finally:
        await env.close()


# --- health and shutdown -------------------------------------------------------------------------
async def test_list_destinations_reports_each_server(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    env.transport.failures["remote2"] = UnreachableError("remote2", "timed out")
    try:
        await env.say("m0")
        await env.say("m1")
        await env.sender.start()
        await eventually(lambda: len(env.transport.ok) == 1 and len(env.transport.attempts) == 2)
        await settle()
        listed = await env.sender.list_destinations()
        assert [h.destination for h in listed] == ["remote1", "remote2"]
        ok, down = listed
        assert ok.healthy and ok.pending == 0 and ok.last_success_ts is not None
        assert ok.last_failure_ts is None
        assert not down.healthy and down.pending == 2 and down.last_success_ts is None
        assert down.last_failure_reason == "timed out" and down.retry_interval_ms == 5_000
        assert await env.sender.destination_health("nowhere") is None
    finally:
        await env.close()


async def test_stop_cancels_in_flight_request_and_keeps_rows(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    env.transport.gates["remote1"] = asyncio.Event()
    await env.say("m0")
    await env.sender.start()
    await eventually(lambda: len(env.transport.attempts) == 1)
    await asyncio.wait_for(env.sender.stop(grace_s=0.05), 2)
    assert env.transport.ok == []
    assert await env.pending("remote1") == 1
    await env.storage.close()

    async with restarted(tmp_path) as new:
        await eventually(lambda: len(new.transport.ok) == 1)
        assert new.transport.ok[0].event_bodies == ["m0"]


async def test_stop_lets_a_quick_request_finish(tmp_path: Path) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    gate = env.transport.gates["remote1"] = asyncio.Event()
    await env.say("m0")
    await env.sender.start()
    await eventually(lambda: len(env.transport.attempts) == 1)
    stopping = asyncio.create_task(env.sender.stop(grace_s=2))
    await asyncio.sleep(0.01)
    gate.set()  # the answer arrives during the grace period
    await asyncio.wait_for(stopping, 2)
    try:
        assert len(env.transport.ok) == 1
        assert await env.pending("remote1") == 0
    finally:
        await env.storage.close()


@pytest.mark.parametrize("status", [500, 401, 429])
async def test_retryable_statuses_back_off(tmp_path: Path, status: int) -> None:
    env = await open_env(tmp_path, remotes=(REMOTE1,))
    try:
        health = await env.first_attempt_fails(RemoteError("remote1", status, None))
        assert health.retry_interval_ms == 5_000 and health.pending == 1
        assert f"HTTP {status}" in (health.last_failure_reason or "")
    finally:
        await env.close()


# --- EDU shapes (federation/edus.py), checked against the spec's EDU schemas -----------------------
async def test_edu_fanout_shapes_match_the_spec(tmp_path: Path) -> None:
    env = await open_env(tmp_path)
    edus = EduFanout(env.sender)
    try:
        await edus.typing(env.room_id, "@alice:test", True)
        await edus.receipt(env.room_id, "@alice:test", "$ev", ts=5, thread_id="main")
        await edus.presence("@alice:test", "online", last_active_ago=0, currently_active=True)
        await edus.typing(env.room_id, REMOTE1, True)  # not ours: never relayed
        assert await env.pending("remote1") == 1  # the receipt; the rest wait in memory
        await env.sender.start()
        await eventually(lambda: len(env.transport.ok) == 2)
        for dest in ("remote1", "remote2"):
            [txn] = env.transport.delivered(dest)
            sent = txn.body["edus"]
            # The persisted receipt goes first, then the in-memory EDUs in order.
            assert [e["edu_type"] for e in sent] == ["m.receipt", "m.typing", "m.presence"]
            for edu in sent:
                assert_matches_schema(f"{EDU_SCHEMAS}/{edu['edu_type']}.yaml", edu)
        receipt = env.transport.ok[0].body["edus"][0]["content"]
        assert receipt == {env.room_id: {"m.read": {"@alice:test": {
            "event_ids": ["$ev"], "data": {"ts": 5, "thread_id": "main"}}}}}
    finally:
        await env.close()
