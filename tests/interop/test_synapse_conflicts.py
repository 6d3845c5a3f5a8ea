"""Concurrent conflicting state changes on dendrite-lite and a real Synapse (TLS on loopback):
each server makes a state event citing the same prev event (the room forks), and once both have
exchanged everything GET /rooms/{id}/state must be identical on both ((type, state_key) ->
event_id, compared in full). Scenarios: topic set on both at once, power levels changed on both
at once, a ban on one side while the banned user acts on the other (both directions), then a
message from each side after the fork. In each burst both sides also change a key of their own
(room name here, a display name on Synapse): both branches' changes must survive.

Each test prints whether the room really forked (forward extremities on both servers before the
next event), e.g. `.venv/bin/python -m pytest -s tests/interop/test_synapse_conflicts.py`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

import aiosqlite
import httpx
import pytest

from dendrite_lite.storage import events as events_table
from tests.conftest import RunningServer
from tests.integration.room_helpers import User
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import (  # noqa: F401  (fixtures used by name)
    bodies,
    clients,
    dendrite_peer,
    dl_user,
    eventually,
    join,
    our_room_with_synapse_user,
    syn_user,
    wait_membership,
)

pytestmark = pytest.mark.interop

STABLE_POLLS = 3  # identical answers in a row before the state counts as settled
POLL_S = 0.3
SETTLE_S = 45.0
StateMap = dict[tuple[str, str], str]


async def room_state(user: User, room_id: str) -> StateMap:
    resp = await user.call("GET", f"/rooms/{quote(room_id)}/state")
    return {(e["type"], e["state_key"]): e["event_id"] for e in resp.json()}


async def settled_state(viewers: tuple[User, User], room_id: str) -> StateMap:
    """Poll both servers until their full state maps are equal and unchanged for STABLE_POLLS
    polls in a row; fail with the difference after SETTLE_S."""
    deadline = time.monotonic() + SETTLE_S
    last: StateMap | None = None
    same = 0
    while True:
        ours, theirs = [await room_state(v, room_id) for v in viewers]
        if ours == theirs and ours == last:
            same += 1
            if same >= STABLE_POLLS:
                return ours
        else:
            same = 0
        last = ours if ours == theirs else None
        if time.monotonic() > deadline:
            diff = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys()
                    if ours.get(k) != theirs.get(k)}
            raise AssertionError(f"state differs after {SETTLE_S}s (ours, synapse's): {diff}")
        await asyncio.sleep(POLL_S)


async def our_extremities(srv: RunningServer, room_id: str) -> set[str]:
    async with aiosqlite.connect(f"file:{srv.config.database_path}?mode=ro", uri=True) as conn:
        return {e for e, _ in await events_table.select_forward_extremities(conn, room_id)}


async def synapse_extremities(synapse: SynapseServer, client: httpx.AsyncClient, room_id: str) -> set[str]:
    token = await asyncio.to_thread(synapse.admin)
    resp = await client.get(
        f"/_synapse/admin/v1/rooms/{quote(room_id)}/forward_extremities",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.text
    return {r["event_id"] for r in resp.json()["results"]}


async def report_fork(
    what: str, synapse: SynapseServer, srv: RunningServer, client: httpx.AsyncClient, room_id: str
) -> tuple[set[str], set[str]]:
    ours = await our_extremities(srv, room_id)
    theirs = await synapse_extremities(synapse, client, room_id)
    print(f"\n{what}: forward extremities ours={len(ours)} synapse={len(theirs)}"
          f" ({'forked' if len(ours) > 1 or len(theirs) > 1 else 'no fork'})")
    return ours, theirs


async def in_order(*calls: Awaitable[httpx.Response]) -> list[httpx.Response]:
    return [await c for c in calls]


async def at_once(*sides: Awaitable[list[httpx.Response]]) -> list[list[httpx.Response]]:
    """Run each side's requests in order, the sides at the same moment."""
    return list(await asyncio.gather(*sides))


def displayname(user: User, name: str) -> Awaitable[httpx.Response]:
    return user.call("PUT", f"/profile/{quote(user.user_id)}/displayname", {"displayname": name}, expect=None)


def message(user: User, room_id: str, body: str) -> Awaitable[httpx.Response]:
    txn = f"m{time.monotonic_ns()}"
    return user.call("PUT", f"/rooms/{quote(room_id)}/send/m.room.message/{txn}",
                     {"msgtype": "m.text", "body": body}, expect=None)


def room_name(user: User, room_id: str, name: str) -> Awaitable[httpx.Response]:
    return user.call("PUT", f"/rooms/{quote(room_id)}/state/m.room.name/", {"name": name}, expect=None)


async def assert_both_kept(viewers: tuple[User, User], room_id: str, event_ids: list[str]) -> None:
    """Changes to different keys made on the two branches are all in both states."""
    for viewer in viewers:
        state = await room_state(viewer, room_id)
        missing = [e for e in event_ids if e not in state.values()]
        assert not missing, f"{viewer.user_id}'s server dropped {missing}"


async def shared_room(
    synapse: SynapseServer, srv: RunningServer, clients: Any, *, version: str = "10"
) -> tuple[str, User, User]:
    """A room created on our side by alice, joined by bob from Synapse, both at PL 100 (v12:
    alice is the creator; bob gets 100)."""
    room_id, alice, bob = await our_room_with_synapse_user(synapse, srv, clients, version=version)
    await set_power(alice, bob, room_id, bob.user_id, 100)
    return room_id, alice, bob


async def set_power(actor: User, viewer: User, room_id: str, user_id: str, level: int) -> None:
    levels = (await actor.state(room_id, "m.room.power_levels")).json()
    levels["users"][user_id] = level
    await actor.call("PUT", f"/rooms/{quote(room_id)}/state/m.room.power_levels/", levels)

    async def seen() -> bool:
        got = (await viewer.state(room_id, "m.room.power_levels", expect=None)).json()
        return got.get("users", {}).get(user_id) == level

    await eventually(seen, f"power level {level} of {user_id} as {viewer.user_id} sees it")


async def merge_and_compare(
    viewers: tuple[User, User], room_id: str, tag: str
) -> StateMap:
    """A message from each side (each cites every forward extremity it holds), then the state
    settles identical again."""
    alice, bob = viewers
    first, second = f"{tag} merge from dendrite-lite", f"{tag} merge from synapse"
    await alice.send(room_id, first)
    await wait_messages(bob, room_id, [first])
    await bob.send(room_id, second)
    await wait_messages(alice, room_id, [first, second])
    return await settled_state(viewers, room_id)


async def wait_messages(user: User, room_id: str, expected: list[str]) -> None:
    """`expected` in this order among the room's messages in the user's /sync (a banned user's
    message may be there too, on the server that did not soft fail it)."""

    async def check() -> bool:
        seen = await bodies(user, room_id)
        return [b for b in seen if b in expected] == expected

    await eventually(check, f"{expected} in {user.user_id}'s sync")


@pytest.mark.parametrize("version", ["10", "12"])
async def test_topic_set_on_both_at_once(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any, version: str
) -> None:
    room_id, alice, bob = await shared_room(synapse, dendrite_peer, clients, version=version)
    path = f"/rooms/{quote(room_id)}/state/m.room.topic/"
    # The topic conflicts; each side also changes a key of its own on its branch (both stay).
    (t1, name), (t2, nick) = await at_once(
        in_order(alice.call("PUT", path, {"topic": "from dendrite-lite"}), room_name(alice, room_id, "ours")),
        in_order(bob.call("PUT", path, {"topic": "from synapse"}), displayname(bob, "Bob")),
    )
    state = await settled_state((alice, bob), room_id)
    assert state[("m.room.topic", "")] in {t1.json()["event_id"], t2.json()["event_id"]}
    await assert_both_kept((alice, bob), room_id, [name.json()["event_id"], state[("m.room.member", bob.user_id)]])
    assert (await bob.state(room_id, "m.room.name")).json() == {"name": "ours"}
    assert nick.status_code == 200
    ours, theirs = await report_fork(f"topic v{version}", synapse, dendrite_peer, clients[1], room_id)
    assert ours == theirs  # both hold both events; neither was soft failed
    after = await merge_and_compare((alice, bob), room_id, f"topic{version}")
    assert after[("m.room.topic", "")] == state[("m.room.topic", "")]


async def test_power_levels_changed_on_both_at_once(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any
) -> None:
    room_id, alice, bob = await shared_room(synapse, dendrite_peer, clients)
    path = f"/rooms/{quote(room_id)}/state/m.room.power_levels/"
    ours_pl = (await alice.state(room_id, "m.room.power_levels")).json()
    theirs_pl = (await bob.state(room_id, "m.room.power_levels")).json()
    assert ours_pl == theirs_pl
    (p1, name), (p2, _) = await at_once(
        in_order(alice.call("PUT", path, {**ours_pl, "users_default": 5, "events_default": 1}),
                 room_name(alice, room_id, "ours")),
        in_order(bob.call("PUT", path, {**theirs_pl, "users_default": 7, "state_default": 60}),
                 displayname(bob, "Bob")),
    )
    state = await settled_state((alice, bob), room_id)
    assert state[("m.room.power_levels", "")] in {p1.json()["event_id"], p2.json()["event_id"]}
    await assert_both_kept((alice, bob), room_id, [name.json()["event_id"]])
    for viewer in (alice, bob):
        member = (await viewer.state(room_id, "m.room.member", bob.user_id)).json()
        assert member.get("displayname") == "Bob"
    ours, theirs = await report_fork("power levels", synapse, dendrite_peer, clients[1], room_id)
    assert ours == theirs
    # Both servers apply the same content.
    seen = [(await u.state(room_id, "m.room.power_levels")).json() for u in (alice, bob)]
    assert seen[0] == seen[1] and seen[0]["users_default"] in (5, 7)
    await merge_and_compare((alice, bob), room_id, "pl")


async def test_ban_here_while_the_banned_synapse_user_acts(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any
) -> None:
    room_id, alice, bob = await shared_room(synapse, dendrite_peer, clients)
    carol = await syn_user(synapse, clients[1], "carol")
    await join(carol, room_id, dendrite_peer.config.server.server_name)
    await wait_membership(alice, room_id, carol.user_id, "join")
    await set_power(alice, carol, room_id, carol.user_id, 50)
    # carol may be refused if the ban reaches Synapse first: both outcomes are fine, the
    # servers must agree either way.
    (_, name), _carols, _ = await at_once(
        in_order(alice.call("POST", f"/rooms/{quote(room_id)}/ban", {"user_id": carol.user_id}),
                 room_name(alice, room_id, "ours")),
        in_order(message(carol, room_id, "carol before the ban?"),
                 carol.call("PUT", f"/rooms/{quote(room_id)}/state/m.room.topic/", {"topic": "carol's"}, expect=None),
                 displayname(carol, "Carol")),
        in_order(displayname(bob, "Bob")),
    )
    await wait_membership(bob, room_id, carol.user_id, "ban")
    state = await settled_state((alice, bob), room_id)
    await report_fork("ban of a synapse user", synapse, dendrite_peer, clients[1], room_id)
    await assert_both_kept((alice, bob), room_id, [name.json()["event_id"], state[("m.room.member", bob.user_id)]])
    assert (await alice.state(room_id, "m.room.member", bob.user_id)).json().get("displayname") == "Bob"
    for viewer in (alice, bob):
        member = (await viewer.state(room_id, "m.room.member", carol.user_id)).json()
        assert member["membership"] == "ban"
    after = await merge_and_compare((alice, bob), room_id, "ban-syn")
    assert after[("m.room.member", carol.user_id)] == state[("m.room.member", carol.user_id)]


async def test_ban_on_synapse_while_our_banned_user_acts(
    synapse: SynapseServer, dendrite_peer: RunningServer, clients: Any
) -> None:
    room_id, alice, bob = await shared_room(synapse, dendrite_peer, clients)
    dave = await dl_user(clients[0], "dave")
    await dave.call("POST", f"/join/{quote(room_id)}", {})
    await wait_membership(bob, room_id, dave.user_id, "join")
    await set_power(alice, bob, room_id, dave.user_id, 50)
    _, _, (name,) = await at_once(
        in_order(bob.call("POST", f"/rooms/{quote(room_id)}/ban", {"user_id": dave.user_id}),
                 displayname(bob, "Bob")),
        in_order(message(dave, room_id, "dave before the ban?"),
                 dave.call("PUT", f"/rooms/{quote(room_id)}/state/m.room.topic/", {"topic": "dave's"}, expect=None),
                 displayname(dave, "Dave")),
        in_order(room_name(alice, room_id, "ours")),
    )
    await wait_membership(alice, room_id, dave.user_id, "ban")
    state = await settled_state((alice, bob), room_id)
    await report_fork("ban of our user", synapse, dendrite_peer, clients[1], room_id)
    await assert_both_kept((alice, bob), room_id, [name.json()["event_id"]])
    assert (await bob.state(room_id, "m.room.name")).json() == {"name": "ours"}
    for viewer in (alice, bob):
        member = (await viewer.state(room_id, "m.room.member", dave.user_id)).json()
        assert member["membership"] == "ban"
    # Our banned user can no longer send: the local pipeline uses the resolved state.
    refused = await message(dave, room_id, "after the ban")
    assert refused.status_code == 403
    after = await merge_and_compare((alice, bob), room_id, "ban-dl")
    assert after[("m.room.member", dave.user_id)] == state[("m.room.member", dave.user_id)]
