"""A real bridge framework as the application service: mautrix-python's `mautrix.appservice`
(what mautrix-whatsapp's Python siblings, mautrix-telegram among them, are built on), registered
through a registration file, against our server.

It receives a room message through a transaction, creates a puppet user when we query it,
sends as that puppet with a massaged timestamp, answers our ping and pings itself through us;
and when it is stopped for a while (messages keep coming) and started again, it receives every
queued event once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.appservice_fake import write_registration
from tests.integration.room_helpers import User, new_user
from tests.peers import peer_missing

try:
    from mautrix.appservice import AppService
    from mautrix.appservice.state_store import FileASStateStore
    from mautrix.types import EventType, MessageType, TextMessageEventContent
except ImportError:  # pragma: no cover - the test extra installs it
    AppService = None  # type: ignore[assignment,misc]

pytestmark = pytest.mark.interop

AS_ID = "mautrix-test"
BOT = "mxbot"
PUPPET_PREFIX = "mx_"
# The outage: the 30 s, with the backoff shortened so that it holds many failed attempts.
OUTAGE_S = 30.0
RETRY = {"appservices.retry_initial_s": 0.5, "appservices.retry_max_s": 1.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Bridge:
    srv: RunningServer
    port: int
    registration: dict[str, Any]
    state_dir: Path
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (event id, content)
    appservice: Any = None
    queried: list[str] = field(default_factory=list)
    # Kept across the bridge's restarts, as a bridge's database would be.
    state_store: Any = None

    async def start(self) -> None:
        if self.state_store is None:
            self.state_store = FileASStateStore(str(self.state_dir / "mx-state.json"), binary=False)
        reg = self.registration
        appservice = AppService(
            server=str(self.srv.client.base_url).rstrip("/"), domain=SERVER_NAME,
            as_token=reg["as_token"], hs_token=reg["hs_token"], bot_localpart=BOT, id=AS_ID,
            log=logging.getLogger("mautrix-test"), state_store=self.state_store,
            query_user=self._query_user,
        )
        appservice.matrix_event_handler(self._on_event)
        await appservice.start(host="127.0.0.1", port=self.port)
        self.appservice = appservice

    async def stop(self) -> None:
        await self.appservice.stop()

    async def _on_event(self, event: Any) -> None:
        if event.type == EventType.ROOM_MESSAGE:
            self.received.append((event.event_id, event.content.serialize()))

    async def _query_user(self, user_id: str) -> dict[str, Any] | None:
        """The bridge creates puppets on demand, as mautrix bridges do for ghosts."""
        self.queried.append(user_id)
        if not user_id.startswith(f"@{PUPPET_PREFIX}"):
            return None
        await self.appservice.intent.user(user_id).ensure_registered()
        return {"user_id": user_id}

    async def bodies_until(self, last: str, timeout: float = 30.0) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            bodies = [c.get("body") for _, c in self.received]
            if last in bodies:
                return bodies
            assert asyncio.get_running_loop().time() < deadline, f"the bridge got only {bodies}"
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def bridge(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bridge]:
    if AppService is None:
        peer_missing("mautrix is not installed (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("mautrix")
    port = _free_port()
    path = write_registration(
        tmp, AS_ID, url=f"http://127.0.0.1:{port}", sender_localpart=BOT,
        namespaces={"users": [{"regex": f"@{PUPPET_PREFIX}.*:{SERVER_NAME}", "exclusive": True}],
                    "aliases": [], "rooms": []},
    )
    registration = yaml.safe_load(path.read_text())
    overrides = {"appservices.registration_files": (path,), **RETRY}
    async with running_server(tmp / "data", overrides) as srv:
        bridge = Bridge(srv, port, registration, tmp)
        await bridge.start()
        try:
            yield bridge
        finally:
            await bridge.stop()


async def _portal(bridge: Bridge, user: User) -> str:
    """A room the user made and invited the bridge bot to; the bot joins (as bridges do)."""
    room = await user.create_room(invite=[f"@{BOT}:{SERVER_NAME}"])
    await bridge.appservice.intent.join_room(room)
    return room


async def test_message_reaches_the_bridge_through_a_transaction(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "mxuser")
    room = await _portal(bridge, user)
    event_id = await user.send(room, "hello bridge")
    await bridge.bodies_until("hello bridge")
    assert (event_id, "hello bridge") in [(e, c.get("body")) for e, c in bridge.received]


async def test_puppet_created_by_query_sends_with_a_massaged_timestamp(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "mxinviter")
    room = await _portal(bridge, user)
    puppet_id = f"@{PUPPET_PREFIX}alice:{SERVER_NAME}"
    # Inviting an unknown user in the bridge's namespace makes us ask the bridge, which
    # registers the puppet before answering.
    await user.call("POST", f"/rooms/{room}/invite", {"user_id": puppet_id})
    assert puppet_id in bridge.queried
    puppet = bridge.appservice.intent.user(puppet_id)
    await puppet.join_room(room)
    remote_ts = 1_600_000_000_000  # when the remote network says the message was sent
    event_id = await puppet.send_message_event(
        room, EventType.ROOM_MESSAGE,
        TextMessageEventContent(msgtype=MessageType.TEXT, body="from the other side"),
        timestamp=remote_ts,
    )
    event = (await user.call("GET", f"/rooms/{room}/event/{quote(event_id)}")).json()
    assert (event["sender"], event["origin_server_ts"]) == (puppet_id, remote_ts)
    assert event["content"]["body"] == "from the other side"


async def test_ping_both_ways(bridge: Bridge) -> None:
    # The bridge asks us to ping it (what mautrix bridges do at start-up).
    duration = await bridge.appservice.ping_self("mx-ping-1")
    assert isinstance(duration, int) and duration >= 0


async def test_an_outage_delivers_every_queued_event_once_in_order(bridge: Bridge) -> None:
    user = await new_user(bridge.srv, "mxoutage")
    room = await _portal(bridge, user)
    await user.send(room, "before outage")
    await bridge.bodies_until("before outage")
    await bridge.stop()
    sent = [await user.send(room, f"queued {i}") for i in range(5)]
    await asyncio.sleep(OUTAGE_S)
    status = await bridge.srv.app().extensions["dendrite_lite"].appservice_sender.statuses()
    assert status[0].queued_events >= 5 and status[0].last_failure_reason
    await bridge.start()
    await bridge.bodies_until("queued 4")
    await asyncio.sleep(1.0)  # nothing more arrives
    after = [e for e, c in bridge.received if str(c.get("body", "")).startswith("queued")]
    assert after == sent
