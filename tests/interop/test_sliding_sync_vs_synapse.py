"""Simplified sliding sync (MSC4186) as Element X drives it, on Synapse and on dendrite-lite:
the same world and the same requests (tests/interop/sliding_sync_script.py) must give the same
normalised answers (rooms, their order, names, member counts, required state, timelines,
invites and the extensions, thread subscriptions included), and bob's message must reach
alice's long-poll within 100 ms. Synapse runs with experimental_features.msc4306_enabled
(tests/interop/synapse_server.py) for the thread subscription steps. The window steps scroll a
list: what changed of a room out of view arrives when it is back, a room joined comes first,
and a count change alone ends our long-poll (Synapse's waits it out)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.account_helpers import register, running_server
from tests.integration.room_helpers import User
from tests.interop.sliding_sync_script import (
    COUNT_ONLY_TIMEOUT_MS,
    Replay,
    World,
    build_world,
    normalise,
    replay,
)
from tests.interop.synapse_server import SynapseServer

pytestmark = pytest.mark.interop

_runs = itertools.count(1)
DELIVERY_BUDGET_MS = 100.0
STEPS = 19


async def _play_synapse(synapse: SynapseServer) -> tuple[World, Replay]:
    run = next(_runs)
    async with httpx.AsyncClient(base_url=synapse.base_url, verify=False, timeout=60) as client:
        async def make_user(role: str) -> User:
            body = await asyncio.to_thread(synapse.register, f"ss{run}{role}")
            return User(client, body["user_id"], body["access_token"], body["device_id"])

        world = await build_world(make_user)
        return world, await replay(world)


async def _play_ours(data_dir: Path) -> tuple[World, Replay]:
    async with running_server(data_dir) as srv:
        async def make_user(role: str) -> User:
            body = await register(srv.client, role)
            return User(srv.client, body["user_id"], body["access_token"], body["device_id"])

        world = await build_world(make_user)
        return world, await replay(world)


@pytest.fixture(scope="module")
async def both(
    synapse: SynapseServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, tuple[World, Replay]]]:
    theirs = await _play_synapse(synapse)
    ours = await _play_ours(tmp_path_factory.mktemp("sliding-vs-synapse"))
    yield {"synapse": theirs, "ours": ours}


def _steps(played: tuple[World, Replay]) -> list[dict[str, Any]]:
    return normalise(*played)


@pytest.mark.parametrize("index", range(STEPS))
async def test_each_step_matches_synapse(both: dict[str, tuple[World, Replay]], index: int) -> None:
    theirs, ours = _steps(both["synapse"]), _steps(both["ours"])
    assert len(theirs) == len(ours) == STEPS
    assert ours[index] == theirs[index]


async def test_what_synapse_answers_is_what_element_x_needs(
    both: dict[str, tuple[World, Replay]],
) -> None:
    """The script itself, checked on Synapse: the steps see what the world holds, so a match
    with our server means something."""
    steps = _steps(both["synapse"])
    first = steps[0]
    assert first["lists"] == {"all_rooms": 6}  # the space is filtered out
    assert first["order"] == ["Attic", "DM", "Garden", "Unnamed", "Vault", "Kitchen"]
    assert first["rooms"]["Garden"]["name"] == "Garden"
    assert first["rooms"]["DM"]["is_dm"] is True
    assert first["rooms"]["Unnamed"]["heroes"] == ["bob", "carol"]
    assert first["rooms"]["Attic"]["invite_state"]
    assert first["extensions"]["account_data"]["rooms"] == {"Garden": ["m.tag"]}
    assert steps[3]["rooms"]["Garden"]["timeline"] == [["m.room.message", "bob", "fresh from bob"]]
    assert steps[4]["extensions"]["typing"] == {"Garden": ["bob"]}
    assert steps[5]["extensions"]["receipts"] == {"Garden": [["m.read", ["alice"]]]}
    assert steps[6]["extensions"]["to_device"] == [["m.test.ping", "bob", {"ping": 1}]]
    assert steps[7]["extensions"]["to_device"] == []
    assert steps[8]["extensions"]["e2ee"] == {
        "otk": {"signed_curve25519": 3}, "fallback": ["signed_curve25519"],
        "changed": ["bob"], "left": []}
    assert steps[9]["extensions"]["thread_subscriptions"] == {
        "subscribed": {"Garden": {"Seeds": {"automatic": False}, "Bulbs": {"automatic": True}}},
        "order": ["Seeds", "Bulbs"], "prev_batch": False, "end": False}
    assert steps[10]["extensions"]["thread_subscriptions"] == {
        "unsubscribed": {"Garden": {"Seeds": {}}}, "order": ["Seeds"],
        "prev_batch": False, "end": False}
    assert steps[11]["extensions"]["thread_subscriptions"] == {
        "subscribed": {"Garden": {"Pots": {"automatic": False}}}, "order": ["Pots"],
        "prev_batch": True, "end": False}
    every, top, out, back, _, joined, counted = steps[12:]
    assert every["lists"] == {"window": 6} and len(every["order"]) == 6
    assert top["rooms"] == {} and top["extensions"]["receipts"] == {}
    # Kitchen's tag and bob's receipt while it was out of view arrive once it is back.
    assert out["extensions"]["account_data"]["rooms"] == {}
    assert "Kitchen" not in out["extensions"]["receipts"]
    assert back["rooms"] == {}
    assert back["extensions"]["account_data"]["rooms"] == {"Kitchen": ["m.tag"]}
    assert back["extensions"]["receipts"] == {"Kitchen": [["m.read", ["bob"]]]}
    assert joined["lists"] == {"window": 7} and joined["order"] == ["Porch"]
    assert joined["rooms"]["Porch"]["initial"] is True
    assert counted["lists"] == {"window": 8} and counted["rooms"] == {}


async def test_thread_subscription_calls_match_synapse(
    both: dict[str, tuple[World, Replay]],
) -> None:
    """MSC4306's endpoints and MSC4308's /thread_subscriptions: the same statuses, errcodes and
    (normalised) bodies, and what Synapse answers is what the MSCs say."""
    theirs, ours = both["synapse"][1].calls, both["ours"][1].calls
    assert theirs == [
        ["versions", 200, True],
        ["not subscribed yet", 404, "M_NOT_FOUND"],
        ["subscribe Seeds", 200, {}],
        ["read Seeds", 200, {"automatic": False}],
        ["automatic Bulbs", 200, {}],
        ["read Bulbs", 200, {"automatic": True}],
        ["cause in another thread", 400, "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"],
        ["unknown root", 404, "M_NOT_FOUND"],
        ["unsubscribe Seeds", 200, {}],
        ["automatic after unsubscribing", 409, "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION"],
        ["unsubscribe again", 200, {}],
        ["subscribe Seeds again", 200, {}],
        ["subscribe Pots", 200, {}],
        ["page the gap", 200, {"subscribed": {"Garden": {"Seeds": {"automatic": False}}},
                               "order": ["Seeds"], "prev_batch": False, "end": False}],
        ["page without dir", 400, "M_MISSING_PARAM"],
    ]
    assert ours == theirs


async def test_unread_counts_on_our_server(both: dict[str, tuple[World, Replay]]) -> None:
    """Synapse sends zeros for the counts; ours counts bob's unread messages."""
    world, played = both["ours"]
    garden = world.rooms["Garden"]
    first = played.steps[0]["rooms"]
    assert first[garden]["notification_count"] == 3
    assert played.steps[3]["rooms"][garden]["notification_count"] == 4


async def test_new_message_arrives_within_100_ms(both: dict[str, tuple[World, Replay]]) -> None:
    _, played = both["ours"]
    assert played.delivery_ms <= DELIVERY_BUDGET_MS, (
        f"bob's message took {played.delivery_ms:.1f} ms to reach alice's long-poll "
        f"(Synapse: {both['synapse'][1].delivery_ms:.1f} ms)"
    )


async def test_a_count_change_alone_ends_our_long_poll(
    both: dict[str, tuple[World, Replay]],
) -> None:
    """The last step's news is the count alone: Synapse answers at the poll's timeout, we as soon
    as the count changes (half the timeout bounds "soon" on a loaded machine)."""
    _, played = both["ours"]
    assert played.count_only_ms < COUNT_ONLY_TIMEOUT_MS / 2, (
        f"{played.count_only_ms:.0f} ms (Synapse: {both['synapse'][1].count_only_ms:.0f} ms)"
    )
