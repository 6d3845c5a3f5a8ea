"""A real Synapse in a room hosted by dendrite-lite, over TLS on loopback: Synapse joins (through
our make_join/send_join), back-paginates the history from before its join (our /backfill and
/event, history visibility "shared"), and talks in the room: its messages, typing and receipts
arrive through our /send; ours reach it as PDUs and EDUs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningServer, StartServer
from tests.integration.room_helpers import User, new_user
from tests.interop.synapse_server import SynapseServer, tls_overrides

pytestmark = pytest.mark.interop

OPEN = {"registration.mode": "open", "ratelimit.enabled": False}


@pytest.fixture
async def ours(start_server: StartServer, tmp_path: Path, synapse: SynapseServer) -> AsyncIterator[RunningServer]:
    overrides = tls_overrides(tmp_path / "tls")
    if overrides is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    srv = await start_server({**overrides, **OPEN})
    await srv.client.aclose()
    srv.client = httpx.AsyncClient(base_url=srv.listening.client_url, timeout=30, verify=False)
    yield srv
    synapse.reset_connection(srv.config.server.server_name)


class SynapseUser:
    def __init__(self, synapse: SynapseServer, login: dict[str, Any]) -> None:
        self.user_id = login["user_id"]
        self.http = httpx.AsyncClient(
            base_url=synapse.base_url + "/_matrix/client/v3", verify=False, timeout=60,
            headers={"Authorization": f"Bearer {login['access_token']}"},
        )

    async def call(
        self, method: str, path: str, body: Any = None, *, expect: int | None = 200, **kw: Any
    ) -> dict[str, Any]:
        resp = await self.http.request(method, path, json=body, **kw)
        if expect is not None:
            assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
        return dict(resp.json())


async def _until(check: Any, what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_synapse_joins_backfills_and_talks(ours: RunningServer, synapse: SynapseServer) -> None:
    us = ours.config.server.server_name
    alice: User = await new_user(ours, "alice")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    history = [await alice.send(room_id, f"old {i}") for i in range(8)]

    login = await asyncio.to_thread(synapse.register, f"syn{int(time.time() * 1000) % 10**8}")
    syn = SynapseUser(synapse, login)
    try:
        await syn.call("POST", f"/join/{quote(room_id, safe='')}", {}, params={"server_name": us})

        # Synapse holds only the state from send_join; /messages makes it backfill from us.
        async def backfilled() -> list[str]:
            chunk = (await syn.call("GET", f"/rooms/{quote(room_id, safe='')}/messages",
                                    params={"dir": "b", "limit": "30"}))["chunk"]
            bodies = [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]
            return bodies if len(bodies) >= len(history) else []

        bodies = await _until(backfilled, "Synapse to backfill the history")
        assert bodies[: len(history)] == [f"old {i}" for i in reversed(range(len(history)))]

        # Synapse's user talks: the PDU arrives through our /send.
        sent = await syn.call("PUT", f"/rooms/{quote(room_id, safe='')}/send/m.room.message/s1",
                              {"msgtype": "m.text", "body": "hello from synapse"})

        async def arrived() -> bool:
            resp = await alice.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=5")
            return any(e["event_id"] == sent["event_id"] for e in resp.json()["chunk"])

        await _until(arrived, "Synapse's message at dendrite-lite")

        # EDUs both ways: Synapse's typing reaches alice; alice's typing reaches Synapse.
        await syn.call("PUT", f"/rooms/{quote(room_id, safe='')}/typing/{quote(syn.user_id)}",
                       {"typing": True, "timeout": 30000})

        async def typing_here() -> bool:
            resp = await alice.call("GET", "/sync?timeout=0")
            room = resp.json()["rooms"]["join"].get(room_id, {})
            return any(e["type"] == "m.typing" and syn.user_id in e["content"]["user_ids"]
                       for e in room.get("ephemeral", {}).get("events", []))

        await _until(typing_here, "Synapse's typing at dendrite-lite")
        # Synapse caches identical /sync answers for minutes: follow its next_batch tokens.
        since = (await syn.call("GET", "/sync", params={"timeout": "0"}))["next_batch"]
        await alice.call("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 30000})

        async def typing_there() -> bool:
            nonlocal since
            resp = await syn.call("GET", "/sync", params={"timeout": "1000", "since": since})
            since = resp["next_batch"]
            room = resp.get("rooms", {}).get("join", {}).get(room_id, {})
            return any(e["type"] == "m.typing" and alice.user_id in e["content"]["user_ids"]
                       for e in room.get("ephemeral", {}).get("events", []))

        await _until(typing_there, "alice's typing at Synapse")

        # A new message of ours reaches Synapse live (Synapse checks it against the state it
        # fetched from our /state_ids after its partial-state join).
        fresh = await alice.send(room_id, "new from dendrite-lite")

        async def message_there() -> bool:
            resp = await syn.call(
                "GET", f"/rooms/{quote(room_id, safe='')}/event/{quote(fresh, safe='')}", expect=None
            )
            return resp.get("content", {}).get("body") == "new from dendrite-lite"

        await _until(message_there, "alice's new message at Synapse")

        # Synapse's read receipt on alice's last message comes back as an m.receipt EDU.
        await syn.call("POST", f"/rooms/{quote(room_id, safe='')}/receipt/m.read/{quote(history[-1], safe='')}", {})

        async def receipt_here() -> bool:
            resp = await alice.call("GET", "/sync?timeout=0")
            room = resp.json()["rooms"]["join"].get(room_id, {})
            return any(e["type"] == "m.receipt" and syn.user_id in e["content"].get(history[-1], {}).get("m.read", {})
                       for e in room.get("ephemeral", {}).get("events", []))

        await _until(receipt_here, "Synapse's receipt at dendrite-lite")
    finally:
        await syn.http.aclose()
