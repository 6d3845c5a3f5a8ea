"""Membership across dendrite-lite and a real Synapse (TLS on loopback): joins both ways (v10 by
room id, v12 with ?server_name=), messages both ways in /sync order on both servers, invites
both ways, a remote kick, ban and power-level change, display names, leaves both ways."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningServer, launch
from tests.integration.account_helpers import register
from tests.integration.room_helpers import User
from tests.interop.synapse_server import SynapseServer, tls_overrides

pytestmark = pytest.mark.interop

_names = itertools.count(1)
WAIT_S = 30.0


@pytest.fixture(scope="module")
async def dendrite_peer(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    """Our server over TLS, reachable by Synapse, with open registration for the test users."""
    tmp = tmp_path_factory.mktemp("dendrite-joins")
    overrides = tls_overrides(tmp / "tls")
    if overrides is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    srv = await launch(tmp / "data", {**overrides, "registration.mode": "open", "ratelimit.enabled": False})
    yield srv
    await srv.stop()


@pytest.fixture
async def clients(
    synapse: SynapseServer, dendrite_peer: RunningServer
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    ours = httpx.AsyncClient(base_url=dendrite_peer.listening.client_url, verify=False, timeout=60)
    theirs = httpx.AsyncClient(base_url=synapse.base_url, verify=False, timeout=60)
    yield ours, theirs
    await ours.aclose()
    await theirs.aclose()


async def dl_user(client: httpx.AsyncClient, prefix: str) -> User:
    body = await register(client, f"{prefix}{next(_names)}")
    return User(client, body["user_id"], body["access_token"], body["device_id"])


async def syn_user(synapse: SynapseServer, client: httpx.AsyncClient, prefix: str) -> User:
    body = await asyncio.to_thread(synapse.register, f"{prefix}{next(_names)}")
    return User(client, body["user_id"], body["access_token"], body.get("device_id", ""))


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll `check` until it returns something truthy (federation is asynchronous)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not reached in {WAIT_S}s: {what}"
        await asyncio.sleep(0.25)


async def membership(user: User, room_id: str, target: str) -> str | None:
    resp = await user.call("GET", f"/rooms/{quote(room_id)}/state/m.room.member/{quote(target)}", expect=None)
    return resp.json().get("membership") if resp.status_code == 200 else None


async def wait_membership(user: User, room_id: str, target: str, value: str) -> None:
    async def check() -> bool:
        return await membership(user, room_id, target) == value

    await eventually(check, f"{target} {value} in {room_id} as {user.user_id} sees it")


_since: dict[str, str] = {}  # user id -> next_batch
_seen: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # (user, room) -> event id -> event


async def bodies(user: User, room_id: str) -> list[str]:
    """Message bodies of the room as the user's /sync timelines showed them so far, oldest first.
    Incremental syncs: Synapse serves a repeated initial sync from a response cache."""
    params = {"timeout": "0"}
    if user.user_id in _since:
        params["since"] = _since[user.user_id]
    resp = await user.call("GET", "/sync", params=params)
    body = resp.json()
    _since[user.user_id] = body["next_batch"]
    for rid, room in body.get("rooms", {}).get("join", {}).items():
        seen = _seen.setdefault((user.user_id, rid), {})
        for e in room["timeline"]["events"]:
            seen.setdefault(e["event_id"], e)
    events = _seen.get((user.user_id, room_id), {}).values()
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


async def wait_bodies(user: User, room_id: str, expected: list[str]) -> None:
    async def check() -> bool:
        return await bodies(user, room_id) == expected

    try:
        await eventually(check, f"{expected} in {user.user_id}'s sync")
    except AssertionError:
        raise AssertionError(f"{user.user_id} sees {await bodies(user, room_id)}, not {expected}") from None


async def join(user: User, room_id: str, server: str) -> None:
    await user.call("POST", f"/join/{quote(room_id)}", {}, params={"server_name": server})


@pytest.mark.parametrize("version", ["10", "12"])
async def test_synapse_user_joins_our_room_and_messages_cross(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any, version: str
) -> None:
    ours, theirs = clients
    alice = await dl_user(ours, "alice")
    bob = await syn_user(synapse, theirs, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version=version)
    await join(bob, room_id, dendrite_peer.config.server.server_name)
    await wait_membership(alice, room_id, bob.user_id, "join")
    await alice.send(room_id, "one from dendrite-lite")
    await wait_bodies(bob, room_id, ["one from dendrite-lite"])
    await bob.send(room_id, "two from synapse")
    # Each side answers once it has seen the other's message, so the order is the same for all.
    await wait_bodies(alice, room_id, ["one from dendrite-lite", "two from synapse"])
    await alice.send(room_id, "three from dendrite-lite")
    expected = ["one from dendrite-lite", "two from synapse", "three from dendrite-lite"]
    await wait_bodies(alice, room_id, expected)
    await wait_bodies(bob, room_id, expected)
    # Leave from the remote side.
    await bob.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    await wait_membership(alice, room_id, bob.user_id, "leave")


@pytest.mark.parametrize("version", ["10", "12"])
async def test_our_user_joins_a_synapse_room_and_messages_cross(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any, version: str
) -> None:
    ours, theirs = clients
    alice = await dl_user(ours, "alice")
    bob = await syn_user(synapse, theirs, "bob")
    room_id = await bob.create_room(preset="public_chat", room_version=version, name=f"syn {version}")
    await join(alice, room_id, synapse.server_name)
    await wait_membership(bob, room_id, alice.user_id, "join")
    name = (await alice.state(room_id, "m.room.name")).json()
    assert name == {"name": f"syn {version}"}
    await bob.send(room_id, "one from synapse")
    await wait_bodies(alice, room_id, ["one from synapse"])
    await alice.send(room_id, "two from dendrite-lite")
    await wait_bodies(bob, room_id, ["one from synapse", "two from dendrite-lite"])
    await bob.send(room_id, "three from synapse")
    expected = ["one from synapse", "two from dendrite-lite", "three from synapse"]
    await wait_bodies(alice, room_id, expected)
    await wait_bodies(bob, room_id, expected)
    # Leave from our side: an event of ours through the outbox.
    await alice.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    await wait_membership(bob, room_id, alice.user_id, "leave")


async def test_invites_both_ways(synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any) -> None:
    ours, theirs = clients
    alice = await dl_user(ours, "alice")
    bob = await syn_user(synapse, theirs, "bob")
    # Synapse invites our user into an invite-only room; we accept.
    room_syn = await bob.create_room(preset="private_chat", name="from synapse")

    async def invited() -> bool:
        rooms = (await alice.call("GET", "/sync", params={"timeout": "0"})).json()["rooms"]
        return room_syn in rooms["invite"]

    await bob.call("POST", f"/rooms/{quote(room_syn)}/invite", {"user_id": alice.user_id})
    await eventually(invited, "the invite in our user's sync")
    await alice.call("POST", f"/rooms/{quote(room_syn)}/join", {})
    await wait_membership(bob, room_syn, alice.user_id, "join")
    # Our user invites the Synapse user into ours; they accept.
    room_dl = await alice.create_room(preset="private_chat", name="from dendrite-lite")
    await alice.call("POST", f"/rooms/{quote(room_dl)}/invite", {"user_id": bob.user_id})
    assert await membership(alice, room_dl, bob.user_id) == "invite"

    async def invited_there() -> bool:
        rooms = (await bob.call("GET", "/sync", params={"timeout": "0"})).json().get("rooms", {})
        return room_dl in rooms.get("invite", {})

    await eventually(invited_there, "the invite in Synapse's sync")
    await bob.call("POST", f"/rooms/{quote(room_dl)}/join", {})
    await wait_membership(alice, room_dl, bob.user_id, "join")


async def test_rejecting_a_synapse_invite(synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any) -> None:
    ours, theirs = clients
    alice = await dl_user(ours, "alice")
    bob = await syn_user(synapse, theirs, "bob")
    room_id = await bob.create_room(preset="private_chat")
    await bob.call("POST", f"/rooms/{quote(room_id)}/invite", {"user_id": alice.user_id})

    async def invited() -> bool:
        rooms = (await alice.call("GET", "/sync", params={"timeout": "0"})).json()["rooms"]
        return room_id in rooms["invite"]

    await eventually(invited, "the invite in our user's sync")
    await alice.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    await wait_membership(bob, room_id, alice.user_id, "leave")


async def test_remote_kick_ban_power_levels_and_displaynames(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any
) -> None:
    ours, theirs = clients
    alice, carol = await dl_user(ours, "alice"), await dl_user(ours, "carol")
    bob, dave = await syn_user(synapse, theirs, "bob"), await syn_user(synapse, theirs, "dave")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    ours_name = dendrite_peer.config.server.server_name
    for user in (bob, dave):
        await join(user, room_id, ours_name)
    await carol.call("POST", f"/join/{quote(room_id)}", {})
    for user in (bob, dave, carol):
        await wait_membership(alice, room_id, user.user_id, "join")
        await wait_membership(bob, room_id, user.user_id, "join")
    # A power-level change on our side gives the Synapse user moderator rights...
    levels = (await alice.state(room_id, "m.room.power_levels")).json()
    levels["users"][bob.user_id] = 50
    await alice.call("PUT", f"/rooms/{quote(room_id)}/state/m.room.power_levels/", levels)

    async def bob_is_mod() -> bool:
        resp = await bob.call("GET", f"/rooms/{quote(room_id)}/state/m.room.power_levels/", expect=None)
        return resp.status_code == 200 and resp.json()["users"].get(bob.user_id) == 50

    await eventually(bob_is_mod, "the power levels on Synapse")
    # ...which he uses from Synapse: a kick of our user and a ban of his neighbour.
    await bob.call("POST", f"/rooms/{quote(room_id)}/kick", {"user_id": carol.user_id})
    await wait_membership(alice, room_id, carol.user_id, "leave")
    await wait_membership(carol, room_id, carol.user_id, "leave")
    await bob.call("POST", f"/rooms/{quote(room_id)}/ban", {"user_id": dave.user_id})
    await wait_membership(alice, room_id, dave.user_id, "ban")
    # Our side bans a Synapse user too.
    await alice.call("POST", f"/rooms/{quote(room_id)}/ban", {"user_id": bob.user_id})
    await wait_membership(alice, room_id, bob.user_id, "ban")


async def our_room_with_synapse_user(
    synapse: SynapseServer, srv: RunningServer, clients: Any, *, version: str = "10"
) -> tuple[str, User, User]:
    """A public room alice created on our server, joined by bob from Synapse."""
    ours, theirs = clients
    alice = await dl_user(ours, "alice")
    bob = await syn_user(synapse, theirs, "bob")
    room_id = await alice.create_room(preset="public_chat", room_version=version)
    await join(bob, room_id, srv.config.server.server_name)
    await wait_membership(alice, room_id, bob.user_id, "join")
    return room_id, alice, bob


async def test_displaynames_cross(synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any) -> None:
    room_id, alice, bob = await our_room_with_synapse_user(synapse, dendrite_peer, clients)

    async def names(viewer: User) -> dict[str, Any]:
        resp = await viewer.call("GET", f"/rooms/{quote(room_id)}/joined_members")
        joined = resp.json()["joined"]
        return {u: joined.get(u, {}).get("display_name") for u in (alice.user_id, bob.user_id)}

    async def both_see(want: dict[str, Any]) -> None:
        for viewer in (alice, bob):
            async def check(v: User = viewer) -> bool:
                return await names(v) == want

            await eventually(check, f"display names {want} as {viewer.user_id} sees them")

    # At the same moment: each server makes a member event citing the same prev event (the
    # room forks), and each must resolve the other's change into its state, not drop it.
    await asyncio.gather(
        alice.call("PUT", f"/profile/{quote(alice.user_id)}/displayname", {"displayname": "Alice DL"}),
        bob.call("PUT", f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bob Syn"}),
    )
    await both_see({alice.user_id: "Alice DL", bob.user_id: "Bob Syn"})
    # A message from each side after the fork (each cites every forward extremity it has):
    # the names stay.
    await alice.send(room_id, "after the names")
    await wait_bodies(bob, room_id, ["after the names"])
    await bob.send(room_id, "names kept")
    await wait_bodies(alice, room_id, ["after the names", "names kept"])
    await both_see({alice.user_id: "Alice DL", bob.user_id: "Bob Syn"})
