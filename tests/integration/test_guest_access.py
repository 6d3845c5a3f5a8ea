"""Guest accounts (guest_access.md): the endpoints guests may call, joining only rooms with
guest_access can_join, and leaving when a room's guest access ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import V3, running_server
from tests.integration.sync_helpers import User, create_room, new_user, send, sync

_n = iter(range(10_000))


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    overrides = {"registration.allow_guests": True}
    async with running_server(tmp_path_factory.mktemp("guests"), overrides) as s:
        yield s


async def _guest(srv: RunningServer) -> User:
    resp = await srv.client.post(f"{V3}/register", params={"kind": "guest"}, json={})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return User(srv.client, body["user_id"], body["access_token"], body["device_id"])


async def _guest_room(owner: User, guest_access: str = "can_join") -> str:
    return await create_room(owner, preset="public_chat", initial_state=[
        {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": guest_access}},
        {"type": "m.room.history_visibility", "state_key": "",
         "content": {"history_visibility": "world_readable"}},
    ])


async def test_guest_joins_sends_and_syncs_in_a_guest_room(srv: RunningServer) -> None:
    alice, guest = await new_user(srv.client, f"alice{next(_n)}"), await _guest(srv)
    room = await _guest_room(alice)
    resp = await guest.post(f"/rooms/{room}/join", {})
    assert resp.status_code == 200, resp.text
    await send(guest, room, "hi from a guest")
    body = await sync(guest)
    timeline = body["rooms"]["join"][room]["timeline"]["events"]
    assert "hi from a guest" in [e["content"].get("body") for e in timeline]
    for path in (f"/rooms/{room}/state", f"/rooms/{room}/members",
                 f"/rooms/{room}/initialSync", "/devices"):
        assert (await guest.get(path)).status_code == 200, path
    resp = await guest.get(f"/rooms/{room}/messages", dir="b")
    assert resp.status_code == 200, resp.text
    resp = await guest.put(f"/profile/{guest.user_id}/displayname", {"displayname": "Visitor"})
    assert resp.status_code == 200, resp.text
    resp = await guest.put(f"/profile/{guest.user_id}/avatar_url", {"avatar_url": "mxc://x/y"})
    assert resp.status_code == 403
    assert resp.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    assert (await guest.post(f"/rooms/{room}/leave", {})).status_code == 200


async def test_guest_cannot_join_without_guest_access(srv: RunningServer) -> None:
    alice, guest = await new_user(srv.client, f"alice{next(_n)}"), await _guest(srv)
    room = await _guest_room(alice, guest_access="forbidden")
    resp = await guest.post(f"/join/{room}", {})
    assert resp.status_code == 403, resp.text
    assert (await guest.post("/createRoom", {})).status_code == 403


async def test_guest_reads_a_world_readable_room_without_joining(srv: RunningServer) -> None:
    alice, guest = await new_user(srv.client, f"alice{next(_n)}"), await _guest(srv)
    room = await _guest_room(alice)
    assert (await guest.get(f"/rooms/{room}/state")).status_code == 200
    resp = await guest.get(f"/rooms/{room}/state/m.room.member/{alice.user_id}")
    assert resp.status_code == 200, resp.text
    # /events: guests only for a room preview, not their own global stream.
    resp = await guest.get("/events", timeout=0)
    assert resp.status_code == 403
    resp = await guest.get("/events", timeout=0, room_id=room)
    assert resp.status_code == 200, resp.text


async def test_guests_leave_when_guest_access_is_revoked(srv: RunningServer) -> None:
    alice, guest = await new_user(srv.client, f"alice{next(_n)}"), await _guest(srv)
    room = await _guest_room(alice)
    assert (await guest.post(f"/rooms/{room}/join", {})).status_code == 200
    resp = await alice.put(
        f"/rooms/{room}/state/m.room.guest_access", {"guest_access": "forbidden"}
    )
    assert resp.status_code == 200, resp.text
    for _ in range(50):
        members = (await alice.get(f"/rooms/{room}/joined_members")).json()["joined"]
        if guest.user_id not in members:
            break
        await asyncio.sleep(0.05)
    assert guest.user_id not in members
    member = await alice.get(f"/rooms/{room}/state/m.room.member/{guest.user_id}")
    assert member.json()["membership"] == "leave"


async def test_guest_upgrades_to_a_full_account_and_only_its_own(srv: RunningServer) -> None:
    guest, other = await _guest(srv), await _guest(srv)
    assert (await guest.get(f"/profile/{guest.user_id}/displayname")).status_code == 200
    localpart = guest.user_id[1:].split(":")[0]
    body = {"username": localpart, "password": "a long enough password",
            "guest_access_token": other.token, "auth": {"type": "m.login.dummy"}}
    assert (await srv.client.post(f"{V3}/register", json=body)).status_code == 403
    resp = await srv.client.post(
        f"{V3}/register", json={**body, "guest_access_token": guest.token}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["user_id"] == guest.user_id
    upgraded = User(srv.client, guest.user_id, resp.json()["access_token"], "")
    whoami = (await upgraded.get("/account/whoami")).json()
    assert whoami["is_guest"] is False
    assert (await upgraded.post("/createRoom", {})).status_code == 200
