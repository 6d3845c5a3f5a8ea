"""The resident server sends the membership events it accepts through send_join / send_leave to
the room's other servers (server-server-api.md §Joining Rooms: "The resident server must also
send the event to other servers participating in the room"): three real dendrite-lite servers
over TLS on loopback, the room on A, a user of C joined first, then a user of B joins through
A, and C hears of the join from A (B does not know C yet)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningServer, StartServer
from tests.integration.room_helpers import User, new_user
from tests.integration.test_federation_membership import OPEN, _client
from tests.interop.synapse_server import tls_overrides


async def _tls_server(
    start_server: StartServer, tls_dir: Path, extra: dict[str, Any] | None = None
) -> RunningServer:
    """A server over TLS with a self-signed certificate on both listeners; its test client
    trusts it. `extra`: more config overrides."""
    overrides = tls_overrides(tls_dir)
    if overrides is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    srv = await start_server({**overrides, **OPEN, **(extra or {})})
    plain, srv.client = srv.client, httpx.AsyncClient(
        base_url=srv.listening.client_url, timeout=20, verify=False
    )
    await plain.aclose()
    return srv


@pytest.fixture
async def trio(start_server: StartServer, tmp_path: Path) -> AsyncIterator[list[RunningServer]]:
    servers = [await _tls_server(start_server, tmp_path / f"tls-{tag}") for tag in "abc"]
    yield servers
    for srv in servers:  # each holds connections to the others
        await _client(srv).aclose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def membership(user: User, room_id: str, target: str) -> str | None:
    resp = await user.state(room_id, "m.room.member", target, expect=None)
    return resp.json().get("membership") if resp.status_code == 200 else None


async def test_a_join_through_us_reaches_the_rooms_other_servers(
    trio: list[RunningServer],
) -> None:
    a, b, c = trio
    alice, bob, carol = await new_user(a, "alice"), await new_user(b, "bob"), await new_user(c, "carol")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    assert (await carol.call("POST", f"/join/{quote(room_id)}", {})).json() == {"room_id": room_id}
    assert await membership(alice, room_id, carol.user_id) == "join"

    # Bob's server only talks to A (make_join/send_join); C learns of the join from A.
    assert (await bob.call("POST", f"/join/{quote(room_id)}", {})).json() == {"room_id": room_id}
    assert await membership(alice, room_id, bob.user_id) == "join"

    async def carol_sees(state: str) -> bool:
        return await membership(carol, room_id, bob.user_id) == state

    await eventually(lambda: carol_sees("join"))
    joined = (await carol.call("GET", f"/rooms/{room_id}/joined_members")).json()["joined"]
    assert sorted(joined) == sorted([alice.user_id, bob.user_id, carol.user_id])
