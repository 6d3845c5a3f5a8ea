"""MSC3202 device lists for an application service, against the fake AS: `left` names users
(local or remote) who no longer share a room with the AS's users, and device list changes
queued while the AS is down survive a server restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.account_helpers import login, running_server
from tests.integration.appservice_fake import FakeAppservice, fake_appservice
from tests.integration.federation_helpers import RemoteServer, join_remote_user, pdu
from tests.integration.room_helpers import new_user
from tests.integration.test_appservice_transactions import (
    Bridge,
    _shared_room,
    restartable_bridge,
    running_bridge,
)

KEY = "org.matrix.msc3202.device_lists"


@pytest.fixture(scope="module")
async def bridge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bridge]:
    async with running_bridge(tmp_path_factory) as bridge:
        yield bridge


def _listed(fake: FakeAppservice, field: str, user_id: str) -> list[dict[str, list[str]]]:
    return [t.body[KEY] for t in fake.transactions if user_id in t.body.get(KEY, {}).get(field, [])]


async def _until_listed(fake: FakeAppservice, field: str, user_id: str, timeout: float = 10.0) -> dict[str, list[str]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := _listed(fake, field, user_id)):
        assert asyncio.get_running_loop().time() < deadline, f"{user_id} never in device_lists.{field}"
        await asyncio.sleep(0.05)
    return found[0]


async def test_a_local_member_leaving_the_only_shared_room_is_left(bridge: Bridge) -> None:
    owner = await new_user(bridge.srv, "dlowner")
    room, _ = await _shared_room(bridge, owner, "relay_dl1")
    leaver, stayer = await new_user(bridge.srv, "dlleaver"), await new_user(bridge.srv, "dlstayer")
    await _shared_room(bridge, stayer, "relay_dl2")  # stayer shares a second room
    for user in (leaver, stayer):
        await user.call("POST", f"/rooms/{room}/join", {})
    await login(bridge.srv.client, leaver.user_id.split(":")[0][1:])  # a change, before leaving
    await _until_listed(bridge.fake, "changed", leaver.user_id)
    await stayer.call("POST", f"/rooms/{room}/leave", {})
    await leaver.call("POST", f"/rooms/{room}/leave", {})
    lists = await _until_listed(bridge.fake, "left", leaver.user_id)
    assert leaver.user_id not in lists["changed"]
    # Still sharing `other` with the AS's user: not left (its leave came first, in order).
    assert not _listed(bridge.fake, "left", stayer.user_id)
    # Banned from the only shared room: left too.
    banned = await new_user(bridge.srv, "dlbanned")
    await banned.call("POST", f"/rooms/{room}/join", {})
    await owner.call("POST", f"/rooms/{room}/ban", {"user_id": banned.user_id})
    await _until_listed(bridge.fake, "left", banned.user_id)


async def test_the_as_user_leaving_makes_its_room_mates_left(bridge: Bridge) -> None:
    owner = await new_user(bridge.srv, "dlmate")
    room, ghost = await _shared_room(bridge, owner, "relay_dl3")
    keeper = await new_user(bridge.srv, "dlkeeper")  # shares another room with the bridge bot
    await keeper.call("POST", f"/rooms/{room}/join", {})
    await _shared_room(bridge, keeper, "relay_dl4")
    assert (await bridge.call("POST", f"/rooms/{room}/leave", {}, user_id=ghost)).status_code == 200
    await _until_listed(bridge.fake, "left", owner.user_id)
    assert not _listed(bridge.fake, "left", keeper.user_id)
    assert not _listed(bridge.fake, "left", ghost)


async def test_a_remote_member_leaving_over_federation_is_left(bridge: Bridge) -> None:
    owner = await new_user(bridge.srv, "dlfed")
    room, _ = await _shared_room(bridge, owner, "relay_dl5")
    remote = await RemoteServer.trusted_by(bridge.srv)
    bob = remote.user("bob")
    await join_remote_user(bridge.srv, room, bob)
    leave = await remote.build(bridge.srv, room, bob, "m.room.member", {"membership": "leave"}, bob)
    resp = await remote.send(bridge.srv, [pdu(leave)])
    assert resp.status_code == 200, resp.text
    assert resp.json()["pdus"][leave.event_id] == {}
    await _until_listed(bridge.fake, "left", bob)


async def test_a_device_list_change_survives_an_outage_and_a_restart(tmp_path: Path) -> None:
    port, hs_token, as_token, overrides = restartable_bridge(tmp_path)
    data = tmp_path / "data"
    async with fake_appservice(port, hs_token) as fake, running_server(data, overrides) as srv:
        user = await new_user(srv, "dlrestart")
        await _shared_room(Bridge(srv, fake, as_token), user, "relay_dlr")
        await fake.event_of_type("m.room.member")
    # The AS is gone; the user logs in a new device and the server restarts.
    async with running_server(data, overrides) as srv:
        assert (await login(srv.client, user.user_id.split(":")[0][1:])).status_code == 200
        await asyncio.sleep(0.5)  # failed attempts
    async with fake_appservice(port, hs_token) as fake2, running_server(data, overrides):
        await _until_listed(fake2, "changed", user.user_id)
