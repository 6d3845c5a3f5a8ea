"""Device list tracking over HTTP: /sync `device_lists` (changed/left) and GET /keys/changes
(end_to_end_encryption.md §Tracking the device list for a user)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import login, running_server
from tests.integration.e2ee_helpers import DeviceKeyring, upload
from tests.integration.sync_helpers import User, create_room, join, new_user, sync
from tests.spec_schema import assert_matches_operation

_names = itertools.count(1)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("device_lists")) as s:
        yield s


async def _pair(srv: RunningServer) -> tuple[User, User, str]:
    """Alice and Bob in one room, each past an initial sync."""
    alice = await new_user(srv.client, f"dl{next(_names)}")
    bob = await new_user(srv.client, f"dl{next(_names)}")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    return alice, bob, room


async def _changes(user: User, since: str, until: str) -> dict[str, list[str]]:
    resp = await user.get("/keys/changes", **{"from": since, "to": until})
    assert resp.status_code == 200, resp.text
    assert_matches_operation("client-server/keys.yaml", "/keys/changes", "get", 200, resp.json())
    return resp.json()  # type: ignore[no-any-return]


async def test_key_upload_wakes_and_lists_roommates(srv: RunningServer) -> None:
    alice, bob, _ = await _pair(srv)
    loner = await new_user(srv.client, f"dl{next(_names)}")
    since = (await sync(bob))["next_batch"]
    loner_since = (await sync(loner))["next_batch"]
    keys = DeviceKeyring.of(alice)
    waiting = asyncio.create_task(sync(bob, since=since, timeout=10_000))
    await asyncio.sleep(0.2)
    await upload(alice, {"device_keys": keys.device_keys()})
    body = await asyncio.wait_for(waiting, 5)
    assert body["device_lists"] == {"changed": [alice.user_id]}
    assert (await _changes(bob, since, body["next_batch"]))["changed"] == [alice.user_id]
    # Someone sharing no room with Alice hears nothing of it.
    assert "device_lists" not in await sync(loner, since=loner_since)
    # Alice's own other devices hear of it too.
    assert alice.user_id in (await _changes(alice, since, body["next_batch"]))["changed"]
    # Uploading the same keys again is no change.
    await upload(alice, {"device_keys": keys.device_keys()})
    assert "device_lists" not in await sync(bob, since=body["next_batch"])


@pytest.mark.parametrize("with_keys", [True, False], ids=["with-keys", "without-keys"])
async def test_deleting_a_device_is_a_change(srv: RunningServer, with_keys: bool) -> None:
    """Keys or not, as in Synapse: a client tracking the user re-queries and sees it gone."""
    alice, bob, _ = await _pair(srv)
    if with_keys:
        await upload(alice, {"device_keys": DeviceKeyring.of(alice).device_keys()})
    since = (await sync(bob))["next_batch"]
    waiting = asyncio.create_task(sync(bob, since=since, timeout=10_000))
    await asyncio.sleep(0.2)
    assert (await alice.post("/logout", {})).status_code == 200
    body = await asyncio.wait_for(waiting, 5)
    assert body["device_lists"]["changed"] == [alice.user_id]


async def test_a_new_device_is_a_change_for_room_mates_and_the_user(srv: RunningServer) -> None:
    """Logging in adds a device: room-mates and the user's own devices hear of it at once
    (Synapse does the same; SyTest waits for it)."""
    alice, bob, _ = await _pair(srv)

    async def changed(user: User, since: str) -> list[str]:
        while True:  # long polls, until one wakes with a device list change
            body = await sync(user, since=since, timeout=10_000)
            if "device_lists" in body:
                return body["device_lists"]["changed"]  # type: ignore[no-any-return]
            since = body["next_batch"]

    since_alice = (await sync(alice))["next_batch"]
    since_bob = (await sync(bob))["next_batch"]
    waiting = [asyncio.create_task(changed(u, s)) for u, s in ((bob, since_bob), (alice, since_alice))]
    await asyncio.sleep(0.2)
    resp = await login(srv.client, alice.user_id)
    assert resp.status_code == 200, resp.text
    for task in waiting:
        assert await asyncio.wait_for(task, 5) == [alice.user_id]


async def test_joining_and_leaving_change_the_lists(srv: RunningServer) -> None:
    """An empty list is left out, as Synapse does: SyTest's "If remote user leaves room we no
    longer receive device updates" takes a `changed` key, even an empty one, for the answer it
    waits for."""
    alice = await new_user(srv.client, f"dl{next(_names)}")
    bob = await new_user(srv.client, f"dl{next(_names)}")
    room = await create_room(alice, preset="public_chat")
    since = (await sync(alice))["next_batch"]
    await join(bob, room)
    joined = await sync(alice, since=since)
    assert joined["device_lists"] == {"changed": [bob.user_id]}
    resp = await bob.post(f"/rooms/{room}/leave", {})
    assert resp.status_code == 200, resp.text
    left = await sync(alice, since=joined["next_batch"])
    assert left["device_lists"] == {"left": [bob.user_id]}
    assert await _changes(alice, since, left["next_batch"]) == {"changed": [], "left": [bob.user_id]}


async def test_still_sharing_a_room_is_not_left(srv: RunningServer) -> None:
    alice, bob, _ = await _pair(srv)
    other = await create_room(alice, preset="public_chat")
    await join(bob, other)
    since = (await sync(alice))["next_batch"]
    assert (await bob.post(f"/rooms/{other}/leave", {})).status_code == 200
    assert "device_lists" not in await sync(alice, since=since)


async def test_initial_sync_has_no_device_lists(srv: RunningServer) -> None:
    alice, _, _ = await _pair(srv)
    body = await sync(alice)
    assert "device_lists" not in body
    assert body["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert body["device_unused_fallback_key_types"] == []
    # A long poll that times out has nothing to tell either, and the counts as always.
    idle = await sync(alice, since=body["next_batch"], timeout=300)
    assert "device_lists" not in idle
    assert idle["device_one_time_keys_count"] == {"signed_curve25519": 0}


@pytest.mark.parametrize(
    "params, errcode",
    [({}, "M_MISSING_PARAM"), ({"from": "s1"}, "M_MISSING_PARAM"), ({"from": "x", "to": "s1"}, "M_INVALID_PARAM")],
)
async def test_changes_bad_tokens(srv: RunningServer, params: dict[str, str], errcode: str) -> None:
    alice, _, _ = await _pair(srv)
    resp = await alice.get("/keys/changes", **params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == errcode


async def test_renaming_a_device_is_a_change(srv: RunningServer) -> None:
    """The name is in /keys/query's `unsigned` and in GET /devices: room-mates and the user's
    other devices must re-query to see it, keys or not (as in Synapse)."""
    alice, bob, _ = await _pair(srv)
    since = (await sync(bob))["next_batch"]
    assert (await alice.put(f"/devices/{alice.device_id}", {"display_name": "no keys yet"})).status_code == 200
    renamed = await sync(bob, since=since)
    assert renamed["device_lists"]["changed"] == [alice.user_id]
    # The same name again is no change.
    assert (await alice.put(f"/devices/{alice.device_id}", {"display_name": "no keys yet"})).status_code == 200
    assert "device_lists" not in await sync(bob, since=renamed["next_batch"])
    await upload(alice, {"device_keys": DeviceKeyring.of(alice).device_keys()})
    since = (await sync(bob, since=renamed["next_batch"]))["next_batch"]
    assert (await alice.put(f"/devices/{alice.device_id}", {"display_name": "phone"})).status_code == 200
    body = await sync(bob, since=since)
    assert body["device_lists"]["changed"] == [alice.user_id]
    resp = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
    assert resp.json()["device_keys"][alice.user_id][alice.device_id]["unsigned"] == {"device_display_name": "phone"}


async def test_an_invited_user_is_changed_for_the_rooms_members(srv: RunningServer) -> None:
    """Clients may encrypt to invited members, so an invite names the invitee in `changed`
    for the room's members (as Synapse does), before the invitee shares the room."""
    alice = await new_user(srv.client, f"dl{next(_names)}")
    bob = await new_user(srv.client, f"dl{next(_names)}")
    room = await create_room(alice)
    since = (await sync(alice))["next_batch"]
    resp = await alice.post(f"/rooms/{room}/invite", {"user_id": bob.user_id})
    assert resp.status_code == 200, resp.text
    body = await sync(alice, since=since)
    assert body["device_lists"] == {"changed": [bob.user_id]}
    assert (await _changes(alice, since, body["next_batch"]))["changed"] == [bob.user_id]
