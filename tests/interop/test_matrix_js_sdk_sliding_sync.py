"""A real client on simplified sliding sync: matrix-js-sdk's SlidingSync (as Element Web uses
it) under Node, against our server. It logs in with a password, opens one list and one room
subscription, and must see the rooms with their names, unread counts and last messages, then a
new message from another user as it is sent, the user's account data and another user typing
(the extensions the SDK always asks for) (tests/interop/js_sliding_sync/sliding_sync.mjs;
scripts/test.sh installs its npm package)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import PASSWORD, running_server
from tests.integration.room_helpers import User, new_user
from tests.peers import find_program, peer_missing

pytestmark = pytest.mark.interop

PACKAGE = Path(__file__).parent / "js_sliding_sync"
WAIT_S = 30.0


def _node() -> str:
    node = find_program("node")
    if node is None:
        peer_missing("node is missing (apt-get install nodejs npm)")
    if not (PACKAGE / "node_modules" / "matrix-js-sdk").is_dir():
        peer_missing(f"matrix-js-sdk is not installed: (cd {PACKAGE} && npm install)")
    return node


class NodeClient:
    """The Node process and the JSON lines it printed so far."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._read = 0

    async def next_matching(self, check: Callable[[dict[str, Any]], bool], what: str
                            ) -> dict[str, Any]:
        """The first line from now on for which `check` holds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + WAIT_S
        while True:
            while self._read < len(self.lines):
                line = self.lines[self._read]
                self._read += 1
                if check(line):
                    return line
            try:
                raw = await asyncio.wait_for(
                    self.proc.stdout.readline(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(
                    f"matrix-js-sdk never showed {what}; it printed {self.lines}") from None
            if not raw:
                raise AssertionError(f"node exited before {what}: {await self._stderr()}")
            text = raw.decode(errors="replace").strip()
            # Anything else the SDK writes to stdout is kept for the failure message.
            self.lines.append(json.loads(text) if text.startswith("{") else {"event": "", "text": text})

    async def _stderr(self) -> str:
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")[-3000:]


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("js-sliding")) as s:
        yield s


async def _start(srv: RunningServer, user: User, subscribe_to: str) -> NodeClient:
    proc = await asyncio.create_subprocess_exec(
        _node(), str(PACKAGE / "sliding_sync.mjs"), srv.listening.client_url,
        user.user_id, PASSWORD, subscribe_to,
        cwd=PACKAGE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024,
    )
    return NodeClient(proc)


async def _stop(client: NodeClient) -> None:
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    try:
        await asyncio.wait_for(client.proc.wait(), 10)
    except TimeoutError:
        client.proc.kill()
        await client.proc.wait()


def _rooms(line: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["room_id"]: r for r in line.get("rooms", [])}


async def test_js_sdk_sees_rooms_names_unread_counts_and_new_messages(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "jsalice"), await new_user(srv, "jsbob")
    garden = await alice.create_room(preset="public_chat", name="Garden")
    kitchen = await bob.create_room(preset="public_chat", name="Kitchen")
    await bob.call("POST", f"/rooms/{garden}/join", {})
    await alice.call("POST", f"/rooms/{kitchen}/join", {})
    await bob.send(garden, "first in the garden")
    await bob.send(garden, "second in the garden")
    await bob.send(kitchen, "kettle is on")
    await alice.call("PUT", f"/user/{alice.user_id}/account_data/org.example.js", {"seen": True})

    client = await _start(srv, alice, garden)
    try:
        login = await client.next_matching(lambda x: x["event"] == "logged_in", "a login")
        assert login["user_id"] == alice.user_id

        def both_rooms(line: dict[str, Any]) -> bool:
            return line["event"] == "synced" and {garden, kitchen} <= set(_rooms(line))

        rooms = _rooms(await client.next_matching(both_rooms, "both rooms"))
        await client.next_matching(  # the SDK handles extensions after the rooms
            lambda x: x["event"] == "account_data" and x["type"] == "org.example.js",
            "alice's account data")
        assert rooms[garden]["name"] == "Garden" and rooms[kitchen]["name"] == "Kitchen"
        assert rooms[garden]["membership"] == rooms[kitchen]["membership"] == "join"
        assert rooms[garden]["unread"] == 2 and rooms[kitchen]["unread"] == 1
        assert rooms[garden]["last_message"] == "second in the garden"
        assert rooms[kitchen]["last_message"] == "kettle is on"

        start = time.perf_counter()
        await bob.send(garden, "live from bob")
        message = await client.next_matching(
            lambda x: x["event"] == "message" and x["body"] == "live from bob", "bob's message")
        elapsed_ms = (time.perf_counter() - start) * 1000
        assert message["room_id"] == garden and message["sender"] == bob.user_id
        assert elapsed_ms < 1000, f"the message took {elapsed_ms:.0f} ms to show in the SDK"
        counted = await client.next_matching(
            lambda x: x["event"] == "synced" and _rooms(x).get(garden, {}).get("unread") == 3,
            "Garden's unread count going to 3")
        assert _rooms(counted)[garden]["last_message"] == "live from bob"

        await bob.call("PUT", f"/rooms/{garden}/typing/{bob.user_id}", {"typing": True, "timeout": 30000})
        typing = await client.next_matching(
            lambda x: x["event"] == "typing" and x["user_id"] == bob.user_id, "bob typing")
        assert typing["room_id"] == garden and typing["typing"] is True
    finally:
        await _stop(client)
