"""Delivery to a real Synapse survives our crash and Synapse's outage.

Both servers are peers on loopback over TLS. Ours runs as a SUBPROCESS
(`python -m dendrite_lite run --config ...`) so it can be SIGKILLed; the Synapse is this module's
own (started once per module), not the session one, because these tests pause, stop and restart
it. A room of ours is shared with one Synapse user.

How events are made to queue:
- our crash: Synapse is frozen with SIGSTOP. Its socket still accepts connections, so our sender's
  transaction hangs in flight and later events wait behind it in the outbox (nothing fails, so no
  backoff is recorded); then we SIGKILL ourselves, SIGCONT Synapse and restart. Everything queued
  must arrive, in order, without duplicates.
- Synapse's outage: Synapse is really stopped (connection refused), so our sender backs off
  (5 s, then 10 s, ...). When it is back the backlog must arrive at our next retry at the latest,
  or at once when Synapse sends us an authenticated request (here: its user's message).

Synapse remembers a destination that failed across its restarts; after our restart its admin
API's reset_connection clears that, so the test measures our sender, not Synapse's backoff.

Typing and receipts: test_synapse_federation_read covers typing both ways and Synapse's receipt
at our server; this module adds typing STOPPING both ways and our receipt at Synapse (live, and
queued across our crash). Bad input from a peer: tests/integration/test_federation_send.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite
import httpx
import pytest

from dendrite_lite.storage import destinations as destinations_table
from dendrite_lite.storage import outbox as outbox_table
from tests.integration.account_helpers import register
from tests.integration.room_helpers import User
from tests.interop.synapse_server import (
    SYNAPSE_PYTHON,
    SynapseServer,
    free_port,
    synapse_available,
    write_self_signed_cert,
)
from tests.peers import peer_missing

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
# Our sender's backoff after the first failure is 5 s +-20% (federation.destinations.BackoffPolicy).
FIRST_BACKOFF_MS = 5_000
# "Promptly": the backlog is sent within this long of the moment it may be sent.
PROMPT_S = 5.0


# --- our server as a process ------------------------------------------------------------------


@dataclass
class OurProcess:
    """dendrite-lite run as `python -m dendrite_lite run`, TLS files mode on 127.0.0.1."""

    workdir: Path
    client_port: int
    federation_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def server_name(self) -> str:
        return f"127.0.0.1:{self.federation_port}"

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "dendrite-lite.toml"

    @property
    def database_path(self) -> Path:
        return self.workdir / "data" / "homeserver.db"

    @classmethod
    def create(cls, workdir: Path) -> OurProcess:
        certs = write_self_signed_cert(workdir / "tls")
        if certs is None:
            pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        ours = cls(workdir, free_port(), free_port())
        ours.config_path.write_text(
            f'[server]\nserver_name = "{ours.server_name}"\ndata_dir = "{workdir / "data"}"\n'
            f'[listen]\nclient = "127.0.0.1:{ours.client_port}"\n'
            f'federation = "127.0.0.1:{ours.federation_port}"\n'
            f'[tls]\nmode = "files"\ncert_path = "{certs[0]}"\nkey_path = "{certs[1]}"\n'
            '[registration]\nmode = "open"\n'
            "[federation]\nverify_tls = false\ntrusted_key_servers = []\n"
            "[ratelimit]\nenabled = false\n"
        )
        subprocess.run(
            [sys.executable, "-m", "dendrite_lite", "generate-keys", "--config", str(ours.config_path)],
            check=True, capture_output=True, env=_env(), cwd=workdir,
        )
        return ours

    def spawn(self) -> None:
        with open(self.workdir / "server.log", "ab") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dendrite_lite", "run", "--config", str(self.config_path)],
                env=_env(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            )

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT_S
        async with httpx.AsyncClient(base_url=self.client_url, verify=False, timeout=2) as http:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.log_tail()
                try:
                    if (await http.get("/health")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"dendrite-lite did not start in {WAIT_S}s\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, in-flight requests are cut off."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "server.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def _read(self, query: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> Any:
        # A reader of the running server's WAL database: sees committed transactions only.
        async with aiosqlite.connect(f"file:{self.database_path}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            return await query(conn)

    async def pending(self, destination: str) -> int:
        """Outbox rows (PDUs and persisted EDUs) still queued for `destination`."""
        counts = await self._read(lambda c: outbox_table.select_pending_counts(c, destination))
        return int(counts.get(destination, 0))

    async def backoff(self, destination: str) -> destinations_table.DestinationRow | None:
        return await self._read(lambda c: destinations_table.select_destination(c, destination))


def _env() -> dict[str, str]:
    # The checkout need not be installed into the venv: import the package from the repo.
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def restart_synapse(peer: SynapseServer) -> None:
    """Start a stopped Synapse again with its own config, database and port."""
    log = open(peer.workdir / "stderr.log", "ab")
    peer.process = subprocess.Popen(
        [str(SYNAPSE_PYTHON), "-m", "synapse.app.homeserver", "-c", str(peer.workdir / "homeserver.yaml")],
        cwd=peer.workdir, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + WAIT_S
    with peer.http() as http:
        while time.monotonic() < deadline:
            assert peer.process.poll() is None, f"Synapse exited; see {peer.workdir}"
            try:
                if http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"Synapse did not restart in {WAIT_S}s; see {peer.workdir}")


# --- the two servers and a shared room ----------------------------------------------------------


@dataclass
class Net:
    peer: SynapseServer
    ours: OurProcess
    alice: User  # ours
    bob: User  # Synapse's
    room_id: str
    sent: list[str] = field(default_factory=list)  # bodies alice sent so far, in order

    async def new_our_client(self) -> None:
        """After our restart: the old client's pooled connections are dead."""
        await self.alice.client.aclose()
        self.alice.client = httpx.AsyncClient(base_url=self.ours.client_url, verify=False, timeout=30)

    async def send(self, prefix: str, count: int) -> list[str]:
        bodies = [f"{prefix} {i}" for i in range(count)]
        for body in bodies:
            await self.alice.send(self.room_id, body)
        self.sent += bodies
        return bodies


@pytest.fixture(scope="module")
async def net(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Net]:
    if not synapse_available():
        peer_missing(".venv-synapse is missing (`.ci/run` installs matrix-synapse there)")
    ours = OurProcess.create(tmp_path_factory.mktemp("dendrite-durability"))
    ours.spawn()  # starts while Synapse does
    peer = await asyncio.to_thread(SynapseServer.start, tmp_path_factory.mktemp("synapse-durability"))
    ours_http = httpx.AsyncClient(base_url=ours.client_url, verify=False, timeout=30)
    peer_http = httpx.AsyncClient(base_url=peer.base_url, verify=False, timeout=30)
    try:
        await ours.wait_ready()
        body = await register(ours_http, "alice")
        alice = User(ours_http, body["user_id"], body["access_token"], body["device_id"])
        login = await asyncio.to_thread(peer.register, "bob")
        bob = User(peer_http, login["user_id"], login["access_token"], login.get("device_id", ""))
        room_id = await alice.create_room(preset="public_chat")
        await bob.call("POST", f"/join/{quote(room_id)}", {}, params={"server_name": ours.server_name})
        await eventually(lambda: is_joined(alice, room_id, bob.user_id), "bob joined, as alice sees it")
        yield Net(peer, ours, alice, bob, room_id)
    finally:
        await peer_http.aclose()
        # Synapse first: it holds idle TLS connections to us that would slow our shutdown.
        os.kill(peer.process.pid, signal.SIGCONT)  # in case a test failed while it was frozen
        peer.stop()
        ours.stop()
        await ours_http.aclose()


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not reached in {timeout_s}s: {what}"
        await asyncio.sleep(0.2)


async def is_joined(viewer: User, room_id: str, user_id: str) -> bool:
    resp = await viewer.call(
        "GET", f"/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}", expect=None
    )
    return resp.status_code == 200 and resp.json().get("membership") == "join"


async def bodies_at_synapse(net: Net) -> list[str]:
    """alice's messages as Synapse's /messages returns them, oldest first (duplicates kept)."""
    resp = await net.bob.call(
        "GET", f"/rooms/{quote(net.room_id)}/messages", params={"dir": "b", "limit": "200"}
    )
    chunk = resp.json()["chunk"]
    return [
        e["content"].get("body") for e in reversed(chunk)
        if e["type"] == "m.room.message" and e["sender"] == net.alice.user_id
    ]


async def wait_delivered(net: Net) -> float:
    """Wait until Synapse shows exactly what alice sent, in order; returns when (time.time())."""

    async def check() -> bool:
        return await bodies_at_synapse(net) == net.sent

    try:
        await eventually(check, "alice's messages at Synapse")
    except AssertionError:
        got = await bodies_at_synapse(net)
        raise AssertionError(f"Synapse has {got}, not {net.sent}\n{net.ours.log_tail()}") from None
    return time.time()


async def wait_idle(net: Net) -> None:
    """Nothing of ours waits for Synapse any more."""

    async def idle() -> bool:
        return await net.ours.pending(net.peer.server_name) == 0

    await eventually(idle, "our outbox for Synapse to drain")


@dataclass
class SyncFeed:
    """A user's incremental /sync (Synapse answers a repeated identical request from a cache,
    so every request carries the last next_batch): the room's ephemeral events as they come."""

    user: User
    room_id: str
    since: str | None = None

    async def ephemeral(self) -> list[dict[str, Any]]:
        params = {"timeout": "0"} if self.since is None else {"timeout": "500", "since": self.since}
        body = (await self.user.call("GET", "/sync", params=params)).json()
        self.since = body["next_batch"]
        room = body.get("rooms", {}).get("join", {}).get(self.room_id, {})
        return list(room.get("ephemeral", {}).get("events", []))

    async def wait_typing(self, want: list[str], what: str) -> None:
        async def check() -> bool:
            typing = [e for e in await self.ephemeral() if e["type"] == "m.typing"]
            return bool(typing) and sorted(typing[-1]["content"]["user_ids"]) == want

        await eventually(check, what)

    async def wait_receipt(self, event_id: str, user_id: str, what: str) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            for e in await self.ephemeral():
                if e["type"] == "m.receipt":
                    found = e["content"].get(event_id, {}).get("m.read", {}).get(user_id)
                    if found is not None:
                        return dict(found)
            return None

        return dict(await eventually(check, what))


async def typing(user: User, room_id: str, on: bool) -> None:
    body: dict[str, Any] = {"typing": True, "timeout": 30_000} if on else {"typing": False}
    await user.call("PUT", f"/rooms/{quote(room_id)}/typing/{quote(user.user_id)}", body)


async def bob_sends(net: Net, body: str) -> str:
    """A message from Synapse's user that alice has received; its event id."""
    event_id = str((await net.bob.call(
        "PUT", f"/rooms/{quote(net.room_id)}/send/m.room.message/{body.replace(' ', '-')}",
        {"msgtype": "m.text", "body": body},
    )).json()["event_id"])

    async def arrived() -> bool:
        resp = await net.alice.call(
            "GET", f"/rooms/{quote(net.room_id)}/event/{quote(event_id)}", expect=None
        )
        return resp.status_code == 200

    await eventually(arrived, f"bob's {body!r} at our server")
    return event_id


# --- the tests --------------------------------------------------------------------------------


async def test_typing_stops_and_our_receipt_reach_synapse_and_back(net: Net) -> None:
    at_synapse, at_ours = SyncFeed(net.bob, net.room_id), SyncFeed(net.alice, net.room_id)
    await at_synapse.ephemeral()
    await at_ours.ephemeral()
    alice, bob = net.alice.user_id, net.bob.user_id

    await typing(net.alice, net.room_id, True)
    await at_synapse.wait_typing([alice], "alice typing, at Synapse")
    await typing(net.alice, net.room_id, False)
    await at_synapse.wait_typing([], "alice stopped typing, at Synapse")

    await typing(net.bob, net.room_id, True)
    await at_ours.wait_typing([bob], "bob typing, at our server")
    await typing(net.bob, net.room_id, False)
    await at_ours.wait_typing([], "bob stopped typing, at our server")

    # alice reads bob's message: her receipt reaches Synapse, with its timestamp.
    event_id = await bob_sends(net, "read me")
    before_ms = int(time.time() * 1000)
    await net.alice.call("POST", f"/rooms/{quote(net.room_id)}/receipt/m.read/{quote(event_id)}", {})
    receipt = await at_synapse.wait_receipt(event_id, alice, "alice's receipt, at Synapse")
    assert before_ms - 5_000 <= receipt["ts"] <= int(time.time() * 1000)


async def test_events_queued_when_we_are_killed_are_delivered_after_restart(net: Net) -> None:
    await net.send("warm-up", 1)
    await wait_delivered(net)
    await wait_idle(net)
    receipt_target = await bob_sends(net, "before our crash")
    feed = SyncFeed(net.bob, net.room_id)
    await feed.ephemeral()

    os.kill(net.peer.process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        queued = await net.send("queued", 15)
        await net.alice.call(
            "POST", f"/rooms/{quote(net.room_id)}/receipt/m.read/{quote(receipt_target)}", {}
        )
        # Each 200 above came after the row was durable: 15 PDUs and the receipt, none acked.
        assert await net.ours.pending(net.peer.server_name) == len(queued) + 1
        net.ours.kill()
    finally:
        os.kill(net.peer.process.pid, signal.SIGCONT)
    assert await net.ours.pending(net.peer.server_name) == len(queued) + 1

    net.ours.spawn()
    await net.ours.wait_ready()
    await net.new_our_client()
    await asyncio.to_thread(net.peer.reset_connection, net.ours.server_name)

    await wait_delivered(net)  # all 15, in order, each once
    await feed.wait_receipt(receipt_target, net.alice.user_id, "alice's queued receipt, at Synapse")
    await wait_idle(net)
    # Our server works normally after the crash: a new message goes out too.
    await net.send("after restart", 1)
    await wait_delivered(net)


async def _outage(net: Net, failures: int) -> destinations_table.DestinationRow:
    """Stop Synapse, queue messages, wait for `failures` failed attempts, start Synapse again.
    Returns our backoff for Synapse as it stands once Synapse answers again."""
    await wait_idle(net)
    name = net.peer.server_name
    await asyncio.to_thread(net.peer.stop)
    queued = await net.send(f"outage{failures}", 10)

    async def failed() -> bool:
        row = await net.ours.backoff(name)
        wanted = FIRST_BACKOFF_MS * 2 ** (failures - 1)
        return row is not None and row.retry_interval_ms >= wanted

    await eventually(failed, f"{failures} failed attempt(s) to reach Synapse")
    assert await net.ours.pending(name) == len(queued)
    await asyncio.to_thread(restart_synapse, net.peer)
    row = await net.ours.backoff(name)
    assert row is not None and row.retry_interval_ms > 0
    return row


async def test_backlog_reaches_a_returning_synapse_when_our_backoff_expires(net: Net) -> None:
    # Our next attempt is the one the stored backoff names (read once Synapse answers: if
    # Synapse took longer to start than the first backoff, the row names the retry after it).
    row = await _outage(net, failures=1)
    may_send_at = max(time.time(), row.next_retry_ts / 1000)
    arrived = await wait_delivered(net)
    assert arrived - may_send_at < PROMPT_S, (arrived, may_send_at)
    await wait_idle(net)
    healthy = await net.ours.backoff(net.peer.server_name)
    assert healthy is not None and (healthy.retry_interval_ms, healthy.next_retry_ts) == (0, 0)


async def test_backlog_reaches_synapse_at_once_when_synapse_talks_to_us(net: Net) -> None:
    # Two failures: the next retry is 10 s +-20% away, long after Synapse is back.
    row = await _outage(net, failures=2)
    assert row.next_retry_ts / 1000 - time.time() > 3, "Synapse took too long to restart"
    await bob_sends(net, "I am back")  # a signed /send from Synapse ends our backoff
    arrived = await wait_delivered(net)
    assert arrived < row.next_retry_ts / 1000, "delivered only when the backoff expired"
    await wait_idle(net)
