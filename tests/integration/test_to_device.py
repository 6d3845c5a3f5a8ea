"""PUT /sendToDevice and the /sync `to_device` section (send_to_device.md): delivered until the
next `since` acknowledges it, never again after; idempotent per transaction id; `*` addresses
every device; limited to 100 per sync; kept across a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import login, running_server
from tests.integration.e2ee_helpers import DeviceKeyring, upload
from tests.integration.sync_helpers import User, new_user, sync
from tests.spec_schema import assert_matches_operation

_names = itertools.count(1)
_txns = itertools.count(1)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("to_device")) as s:
        yield s


async def _user(srv: RunningServer) -> User:
    return await new_user(srv.client, f"td{next(_names)}")


async def _second_device(srv: RunningServer, user: User, **extra: Any) -> User:
    resp = await login(srv.client, user.user_id.split(":")[0][1:], **extra)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return dataclasses.replace(user, token=body["access_token"], device_id=body["device_id"])


async def send(
    sender: User, messages: dict[str, Any], txn: str | None = None, event_type: str = "m.test"
) -> None:
    resp = await sender.put(f"/sendToDevice/{event_type}/{txn or next(_txns)}", {"messages": messages})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}


def _events(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["to_device"]["events"]  # type: ignore[no-any-return]


async def test_delivered_until_acknowledged_then_never(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    start = (await sync(bob))["next_batch"]
    await send(alice, {bob.user_id: {bob.device_id: {"n": 1}}})
    first = await sync(bob, since=start)
    assert_matches_operation("client-server/sync.yaml", "/sync", "get", 200, first)
    assert _events(first) == [{"sender": alice.user_id, "type": "m.test", "content": {"n": 1}}]
    # The client did not get that response: the same `since` gets the message again.
    assert _events(await sync(bob, since=start)) == _events(first)
    # The next `since` acknowledges it: gone for good.
    second = await sync(bob, since=first["next_batch"])
    assert _events(second) == []
    assert _events(await sync(bob, since=start)) == []
    assert _events(await sync(bob)) == []


async def test_idempotent_per_transaction_and_device(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    alice2 = await _second_device(srv, alice)
    msg = {bob.user_id: {bob.device_id: {"n": 1}}}
    await send(alice, msg, txn="same")
    await send(alice, msg, txn="same")  # a retry
    await send(alice2, msg, txn="same")  # another device's transaction
    assert len(_events(await sync(bob))) == 2


async def test_star_reaches_every_device_and_long_poll_wakes(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    bob2 = await _second_device(srv, bob)
    since = (await sync(bob2))["next_batch"]
    waiting = asyncio.create_task(sync(bob2, since=since, timeout=10_000))
    await asyncio.sleep(0.2)
    await send(alice, {bob.user_id: {"*": {"all": True}}, "@nobody:test.localhost": {"*": {}}})
    body = await asyncio.wait_for(waiting, 5)
    assert _events(body) == [{"sender": alice.user_id, "type": "m.test", "content": {"all": True}}]
    assert _events(await sync(bob)) == _events(body)


async def test_other_devices_and_unknown_devices_get_nothing(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    bob2 = await _second_device(srv, bob)
    await send(alice, {bob.user_id: {bob.device_id: {"for": "one"}, "NOSUCHDEVICE": {}}})
    assert _events(await sync(bob2)) == []
    assert [e["content"] for e in _events(await sync(bob))] == [{"for": "one"}]


async def test_at_most_100_per_sync_in_order(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    for i in range(120):
        await send(alice, {bob.user_id: {bob.device_id: {"i": i}}})
    first = await sync(bob)
    assert [e["content"]["i"] for e in _events(first)] == list(range(100))
    second = await sync(bob, since=first["next_batch"])
    assert [e["content"]["i"] for e in _events(second)] == list(range(100, 120))
    assert _events(await sync(bob, since=second["next_batch"])) == []


async def test_deleted_device_drops_its_messages(srv: RunningServer) -> None:
    alice, bob = await _user(srv), await _user(srv)
    bob2 = await _second_device(srv, bob)
    await send(alice, {bob.user_id: {bob2.device_id: {"x": 1}}})
    assert (await bob2.post("/logout", {})).status_code == 200
    # Logging in again with the same device id starts with an empty inbox.
    again = await _second_device(srv, bob, device_id=bob2.device_id)
    assert _events(await sync(again)) == []


@pytest.mark.parametrize(
    "body, errcode",
    [
        ({}, "M_MISSING_PARAM"),
        ({"messages": []}, "M_BAD_JSON"),
        ({"messages": {"@a:b": []}}, "M_BAD_JSON"),
        ({"messages": {"@a:b": {"DEV": "text"}}}, "M_BAD_JSON"),
        ({"messages": {"nobody": {"DEV": {}}}}, "M_INVALID_PARAM"),
    ],
)
async def test_bad_requests(srv: RunningServer, body: dict[str, Any], errcode: str) -> None:
    alice = await _user(srv)
    resp = await alice.put(f"/sendToDevice/m.test/{next(_txns)}", body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == errcode


async def test_needs_access_token(srv: RunningServer) -> None:
    resp = await srv.client.put("/_matrix/client/v3/sendToDevice/m.test/1", json={"messages": {}})
    assert resp.status_code == 401


async def test_survives_restart_and_is_delivered_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice, bob = await new_user(srv.client, "alice"), await new_user(srv.client, "bob")
        since = (await sync(bob))["next_batch"]
        await send(alice, {bob.user_id: {bob.device_id: {"survives": True}}}, txn="t1")
        key_file = srv.config.signing_key_path
    key_file.unlink()  # the launcher writes a fresh key at each start; the database stays
    async with running_server(data) as srv:
        alice = dataclasses.replace(alice, client=srv.client)
        bob = dataclasses.replace(bob, client=srv.client)
        # The transaction id is remembered across the restart too: a retry adds nothing.
        await send(alice, {bob.user_id: {bob.device_id: {"survives": True}}}, txn="t1")
        first = await sync(bob, since=since)
        assert [e["content"] for e in _events(first)] == [{"survives": True}]
        assert _events(await sync(bob, since=first["next_batch"])) == []
        assert _events(await sync(bob)) == []


async def test_guests_may_exchange_keys_and_to_device(tmp_path: Path) -> None:
    """guest_access.md lets guests use /keys/upload, /keys/query, /keys/claim and /sendToDevice."""
    async with running_server(tmp_path / "data", {"registration.allow_guests": True}) as srv:
        resp = await srv.client.post("/_matrix/client/v3/register", params={"kind": "guest"}, json={})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        guest = User(srv.client, body["user_id"], body["access_token"], body["device_id"])
        bob = await new_user(srv.client, "bob")
        keys = DeviceKeyring.of(guest)
        await upload(guest, {"device_keys": keys.device_keys(), "one_time_keys": keys.one_time_keys(1)})
        resp = await guest.post("/keys/query", {"device_keys": {guest.user_id: []}})
        assert list(resp.json()["device_keys"][guest.user_id]) == [guest.device_id]
        resp = await guest.post("/keys/claim", {"one_time_keys": {guest.user_id: {guest.device_id: "signed_curve25519"}}})
        assert resp.json()["one_time_keys"] != {}
        await send(guest, {bob.user_id: {bob.device_id: {"from": "guest"}}})
        assert [e["sender"] for e in _events(await sync(bob))] == [guest.user_id]
        # Cross-signing and key backup stay closed to guests.
        resp = await guest.post("/keys/device_signing/upload", {})
        assert resp.status_code == 403
