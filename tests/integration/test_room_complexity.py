"""Room complexity between two real dendrite-lite servers over TLS on loopback: A holds the rooms
and answers GET /unstable/rooms/{roomId}/complexity; B's users join them with B's
federation.max_room_complexity set low (0.03 = 15 state events), so a room with a few dozen state
events is "huge" and a fresh room is small."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from dendrite_lite.federation.client import RemoteError
from tests.conftest import RunningServer, StartServer
from tests.integration.admin_room_helpers import make_admin
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_forwarding import (
    _tls_server,
    eventually,
    membership,
)
from tests.integration.test_federation_membership import _client, name

LOW = 0.03  # 15 state events
Pair = Callable[..., Awaitable[tuple[RunningServer, RunningServer]]]


@pytest.fixture
async def pair(start_server: StartServer, tmp_path: Path) -> AsyncIterator[Pair]:
    """pair(**b_federation): A with defaults, B with these [federation] keys."""
    started: list[RunningServer] = []

    async def make(**b_federation: Any) -> tuple[RunningServer, RunningServer]:
        b_overrides = {f"federation.{k}": v for k, v in b_federation.items()}
        a = await _tls_server(start_server, tmp_path / "tls-a")
        b = await _tls_server(start_server, tmp_path / "tls-b", b_overrides)
        started.extend((a, b))
        return a, b

    yield make
    for srv in started:  # each holds connections to the other
        await _client(srv).aclose()


def _extra_state(n: int) -> list[dict[str, Any]]:
    return [{"type": "org.example.filler", "state_key": str(i), "content": {"i": i}} for i in range(n)]


async def big_room(alice: User, preset: str = "public_chat") -> str:
    return await alice.create_room(preset=preset, room_version="10", initial_state=_extra_state(30))


async def small_room(alice: User, preset: str = "public_chat") -> str:
    return await alice.create_room(preset=preset, room_version="10")


async def join(user: User, room_id: str, expect: int | None = 200) -> httpx.Response:
    return await user.call("POST", f"/join/{quote(room_id)}", {}, expect=expect)


def _assert_refused(resp: httpx.Response) -> None:
    assert resp.status_code == 400
    body = resp.json()
    assert body["errcode"] == "M_RESOURCE_LIMIT_EXCEEDED"
    assert body["error"].startswith("This room is too large for this server to join")


async def test_the_endpoint_answers_for_public_rooms_we_are_in(pair: Pair) -> None:
    a, b = await pair()
    alice = await new_user(a, "alice")
    big, private = await big_room(alice), await small_room(alice, "private_chat")
    readable = await alice.create_room(
        preset="private_chat", initial_state=[{
            "type": "m.room.history_visibility", "state_key": "",
            "content": {"history_visibility": "world_readable"},
        }],
    )
    path = "/_matrix/federation/unstable/rooms/{}/complexity"

    async def ask(room_id: str) -> Any:
        return await _client(b).get_json(name(a), path.format(quote(room_id, safe="")))

    state = (await alice.call("GET", f"/rooms/{big}/state")).json()
    assert await ask(big) == {"v1": round(len(state) / 500, 2)}
    assert (await ask(readable))["v1"] > 0
    for room_id in (private, "!unknown:" + name(a)):
        with pytest.raises(RemoteError) as info:
            await ask(room_id)
        assert (info.value.status, info.value.errcode) == (404, "M_NOT_FOUND")
    # X-Matrix like every federation endpoint.
    async with httpx.AsyncClient(base_url=a.listening.federation_url or "", verify=False) as anon:
        resp = await anon.get(path.format(quote(big, safe="")))
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_a_room_over_the_limit_is_refused_and_a_small_one_joins(pair: Pair) -> None:
    a, b = await pair(max_room_complexity=LOW)
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    big, small = await big_room(alice), await small_room(alice)
    _assert_refused(await join(bob, big, expect=None))
    # Refused before make_join: the resident server never saw a join, B holds nothing.
    assert await membership(alice, big, bob.user_id) is None
    assert (await bob.call("GET", "/joined_rooms")).json()["joined_rooms"] == []
    await join(bob, small)
    assert await membership(alice, small, bob.user_id) == "join"


async def test_a_private_room_is_measured_once_joined_and_left(pair: Pair) -> None:
    """The resident server does not tell a private room's size (404): the join goes ahead and
    the room is measured with the state it brought; too big -> the user leaves at once."""
    a, b = await pair(max_room_complexity=LOW)
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    big, small = await big_room(alice, "private_chat"), await small_room(alice, "private_chat")
    for room_id in (big, small):
        await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id})
    _assert_refused(await join(bob, big, expect=None))

    async def left() -> bool:
        return await membership(alice, big, bob.user_id) == "leave"

    await eventually(left)
    await join(bob, small)
    assert (await bob.call("GET", "/joined_rooms")).json()["joined_rooms"] == [small]


async def test_admins_join_anyway_when_exempt(pair: Pair) -> None:
    a, b = await pair(max_room_complexity=LOW, room_complexity_admins_can_join=True)
    alice = await new_user(a, "alice")
    admin, carol = await make_admin(b), await new_user(b, "carol")
    big = await big_room(alice)
    _assert_refused(await join(carol, big, expect=None))
    await join(admin, big)
    assert await membership(alice, big, admin.user_id) == "join"


async def test_limit_0_joins_anything(pair: Pair) -> None:
    a, b = await pair(max_room_complexity=0)
    alice, bob = await new_user(a, "alice"), await new_user(b, "bob")
    big = await big_room(alice)
    await join(bob, big)
    assert await membership(alice, big, bob.user_id) == "join"
