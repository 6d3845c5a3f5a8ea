"""MSC4140 delayed events against a real server: sent after their delay, cancelled, restarted,
sent at once, listed; errors (unknown delay_id, over the maximum, turned off); a delayed state
event cancelled by someone else's state; one due while the server was down sent at start."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server, uia_password
from tests.integration.sync_helpers import User, create_room, join, new_user

DELAYED = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
_FILTER = '{"types": ["m.room.message"]}'
# Due events go out within this long of their time: generous for a loaded 2-core machine.
_PATIENCE_S = 10.0


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("delayed")) as s:
        yield s


async def _delayed_send(user: User, room: str, body: str, delay_ms: int, txn: str) -> httpx.Response:
    return await user.client.put(
        f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}",
        params={"org.matrix.msc4140.delay": delay_ms},
        json={"msgtype": "m.text", "body": body}, headers=user.headers,
    )


async def _schedule(user: User, room: str, body: str, delay_ms: int, txn: str) -> str:
    resp = await _delayed_send(user, room, body, delay_ms, txn)
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"delay_id"}
    return str(resp.json()["delay_id"])


async def _bodies(user: User, room: str) -> list[str]:
    resp = await user.get(f"/rooms/{room}/messages", dir="b", filter=_FILTER)
    assert resp.status_code == 200, resp.text
    return [e["content"]["body"] for e in resp.json()["chunk"]]


async def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + _PATIENCE_S
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _manage(client: httpx.AsyncClient, delay_id: str, action: str) -> httpx.Response:
    return await client.post(f"{DELAYED}/{delay_id}", json={"action": action})


async def _listing(user: User) -> list[dict[str, Any]]:
    resp = await user.client.get(DELAYED, headers=user.headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["delayed_events"])


async def test_a_delayed_message_arrives_after_its_delay(srv: RunningServer) -> None:
    alice = await new_user(srv.client, "de_alice")
    room = await create_room(alice)
    start = time.monotonic()
    await _schedule(alice, room, "later", 700, "d1")
    assert "later" not in await _bodies(alice, room)

    async def arrived() -> bool:
        return "later" in await _bodies(alice, room)

    await _until(arrived, "the delayed message")
    assert time.monotonic() - start >= 0.7
    assert await _listing(alice) == []


async def test_cancel_restart_send_and_listing(srv: RunningServer) -> None:
    alice = await new_user(srv.client, "de_bob")
    room = await create_room(alice)
    cancelled = await _schedule(alice, room, "cancelled", 1500, "c1")
    restarted = await _schedule(alice, room, "restarted", 2000, "c2")
    sent_now = await _schedule(alice, room, "sent now", 60_000, "c3")
    # The same txn id again: the same delayed event, not a second one.
    assert await _schedule(alice, room, "sent now", 60_000, "c3") == sent_now

    listing = await _listing(alice)
    assert [e["delay_id"] for e in listing] == [cancelled, restarted, sent_now]
    first = listing[0]
    assert first["room_id"] == room and first["type"] == "m.room.message"
    assert first["content"] == {"msgtype": "m.text", "body": "cancelled"}
    assert first["delay_ms"] == first["delay"] == 1500
    assert first["delayed_since_ts"] == first["running_since"]
    assert abs(first["running_since"] - time.time() * 1000) < 60_000
    assert "state_key" not in first

    # Management takes no access token: the delay_id is the secret.
    resp = await _manage(srv.client, cancelled, "cancel")
    assert resp.status_code == 200 and resp.json() == {}
    resp = await srv.client.post(f"{DELAYED}/{sent_now}/send")  # the per-action path
    assert resp.status_code == 200 and resp.json() == {}
    assert (await _bodies(alice, room))[0] == "sent now"

    await asyncio.sleep(1.0)
    before = time.monotonic()
    resp = await _manage(srv.client, restarted, "restart")
    assert resp.status_code == 200, resp.text
    [pending] = await _listing(alice)
    assert pending["delay_id"] == restarted
    await asyncio.sleep(1.3)  # past the first due time (2 s), before the restarted one (3 s)
    if time.monotonic() - before < 1.9:  # a loaded machine may have slept far longer
        assert "restarted" not in await _bodies(alice, room)

    async def arrived() -> bool:
        return "restarted" in await _bodies(alice, room)

    await _until(arrived, "the restarted message")
    bodies = await _bodies(alice, room)
    assert "cancelled" not in bodies and bodies.count("sent now") == 1
    # Cancelled, sent and delivered delayed events are all gone.
    for delay_id in (cancelled, restarted, sent_now):
        for action in ("cancel", "restart", "send"):
            resp = await _manage(srv.client, delay_id, action)
            assert resp.status_code == 404, (delay_id, action)
            assert resp.json()["errcode"] == "M_NOT_FOUND"


async def test_errors(srv: RunningServer) -> None:
    alice = await new_user(srv.client, "de_carol")
    room = await create_room(alice)
    resp = await _manage(srv.client, "syd_unknown", "cancel")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await srv.client.post(f"{DELAYED}/syd_unknown/restart")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await srv.client.get(f"{DELAYED}/syd_unknown", headers=alice.headers)
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await srv.client.post(f"{DELAYED}/syd_unknown", json={})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_MISSING_PARAM"
    resp = await srv.client.post(f"{DELAYED}/syd_unknown", json={"action": "postpone"})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await srv.client.get(DELAYED)
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"

    resp = await _delayed_send(alice, room, "too late", 86_400_001, "e1")
    assert resp.status_code == 400
    body = resp.json()
    assert body["errcode"] == "M_MAX_DELAY_EXCEEDED"
    assert body["max_delay"] == body["org.matrix.msc4140.max_delay"] == 86_400_000
    assert body["org.matrix.msc4140.errcode"] == "M_MAX_DELAY_EXCEEDED"
    resp = await _delayed_send(alice, room, "negative", -5, "e2")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"
    assert await _listing(alice) == []

    # Someone else's delayed event: not theirs to look at.
    delay_id = await _schedule(alice, room, "mine", 60_000, "e3")
    resp = await srv.client.get(f"{DELAYED}/{delay_id}", headers=alice.headers)
    assert resp.status_code == 200
    assert resp.json()["content"]["body"] == "mine" and "running_since" not in resp.json()
    dave = await new_user(srv.client, "de_dave")
    resp = await srv.client.get(f"{DELAYED}/{delay_id}", headers=dave.headers)
    assert resp.status_code == 404


async def test_versions_and_capabilities_advertise_it(srv: RunningServer) -> None:
    resp = await srv.client.get("/_matrix/client/versions")
    assert resp.json()["unstable_features"]["org.matrix.msc4140"] is True
    alice = await new_user(srv.client, "de_caps")
    caps = (await alice.get("/capabilities")).json()["capabilities"]
    assert caps["org.matrix.msc4140.delayed_events"] == {
        "max_delay_ms": 86_400_000, "max_scheduled": 100
    }


async def test_turned_off(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", {"calls.max_event_delay_s": 0}) as srv:
        alice = await new_user(srv.client, "off")
        room = await create_room(alice)
        resp = await _delayed_send(alice, room, "never", 1000, "o1")
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
        resp = await srv.client.get("/_matrix/client/versions")
        assert "org.matrix.msc4140" not in resp.json()["unstable_features"]


async def _state(user: User, room: str, state_key: str) -> dict[str, Any]:
    resp = await user.get(f"/rooms/{room}/state/org.matrix.msc3401.call.member/{state_key}")
    return resp.json() if resp.status_code == 200 else {}


async def test_someone_elses_state_cancels_a_delayed_state_event(srv: RunningServer) -> None:
    alice = await new_user(srv.client, "de_erin")
    bob = await new_user(srv.client, "de_frank")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    # Let everyone set this state (as a call room's power levels do).
    resp = await alice.put(f"/rooms/{room}/state/m.room.power_levels", {"state_default": 0})
    assert resp.status_code == 200, resp.text
    path = f"/_matrix/client/v3/rooms/{room}/state/org.matrix.msc3401.call.member/shared"
    resp = await alice.client.put(
        path, params={"org.matrix.msc4140.delay": 1500}, json={"from": "alice"}, headers=alice.headers
    )
    assert resp.status_code == 200, resp.text
    cancelled = resp.json()["delay_id"]
    [listed] = await _listing(alice)
    assert listed["state_key"] == "shared" and listed["delay_ms"] == 1500
    # Alice's own state for it does not cancel hers.
    resp = await alice.client.put(
        f"/_matrix/client/v3/rooms/{room}/state/org.matrix.msc3401.call.member/mine",
        params={"org.matrix.msc4140.delay": 1500}, json={"from": "alice"}, headers=alice.headers,
    )
    kept = resp.json()["delay_id"]
    resp = await alice.put(f"/rooms/{room}/state/org.matrix.msc3401.call.member/mine", {"x": 1})
    assert resp.status_code == 200

    resp = await bob.put(f"/rooms/{room}/state/org.matrix.msc3401.call.member/shared", {"from": "bob"})
    assert resp.status_code == 200, resp.text
    assert [e["delay_id"] for e in await _listing(alice)] == [kept]
    resp = await _manage(srv.client, cancelled, "send")
    assert resp.status_code == 404

    async def kept_sent() -> bool:
        return await _state(alice, room, "mine") == {"from": "alice"}

    await _until(kept_sent, "alice's own delayed state")
    assert await _state(alice, room, "shared") == {"from": "bob"}


async def test_a_send_refused_at_its_time_is_dropped(srv: RunningServer) -> None:
    """Power levels are checked when it is sent: a user who lost the right gets nothing sent."""
    alice = await new_user(srv.client, "de_gina")
    bob = await new_user(srv.client, "de_hank")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    resp = await bob.client.put(
        f"/_matrix/client/v3/rooms/{room}/send/m.room.message/p1",
        params={"org.matrix.msc4140.delay": 600},
        json={"msgtype": "m.text", "body": "muted"}, headers=bob.headers,
    )
    assert resp.status_code == 200, resp.text
    # Room version 12: the creator needs no entry in `users` to stay in charge.
    resp = await alice.put(f"/rooms/{room}/state/m.room.power_levels", {"events_default": 50})
    assert resp.status_code == 200, resp.text

    async def gone() -> bool:
        return await _listing(bob) == []

    await _until(gone, "the refused delayed event to be dropped")
    assert "muted" not in await _bodies(alice, room)


async def test_deactivation_cancels_the_users_delayed_events(srv: RunningServer) -> None:
    alice = await new_user(srv.client, "de_ivy")
    room = await create_room(alice)
    delay_id = await _schedule(alice, room, "never", 60_000, "x1")
    resp = await uia_password(
        srv.client, "POST", "/_matrix/client/v3/account/deactivate", alice.token, "de_ivy"
    )
    assert resp.status_code == 200, resp.text
    resp = await _manage(srv.client, delay_id, "send")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"


async def test_an_event_due_while_stopped_is_sent_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice = await new_user(srv.client, "restart")
        room = await create_room(alice)
        await _schedule(alice, room, "while you were out", 800, "r1")
        await _schedule(alice, room, "much later", 3_600_000, "r2")
    await asyncio.sleep(1.0)  # due while the server is down
    async with running_server(data) as srv:
        alice = dataclasses.replace(alice, client=srv.client)

        async def arrived() -> bool:
            return "while you were out" in await _bodies(alice, room)

        await _until(arrived, "the message due while stopped")
        [pending] = await _listing(alice)
        assert pending["content"]["body"] == "much later"
