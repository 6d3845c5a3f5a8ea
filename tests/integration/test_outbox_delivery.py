"""The federation sender of a real server delivering to a real TLS peer on loopback: signed
PUT /send/{txnId}, backoff while the peer fails, and the backlog as soon as the peer talks to us.

The peer records transactions in a before_request hook (ahead of any /send route it has), so
this tests our sending side only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from quart import Quart, request

from dendrite_lite.api.app import Services
from dendrite_lite.crypto.signing import verify_json_signature
from dendrite_lite.federation.auth import authorization_header, parse_x_matrix, request_json
from dendrite_lite.rooms.pipeline import EventSpec
from tests.conftest import RunningServer, StartServer
from tests.integration.room_helpers import new_user
from tests.integration.test_key_query import WHOAMI, add_whoami, tls_peer

SEND = "/_matrix/federation/v1/send/"
OPEN = {"registration.mode": "open", "ratelimit.enabled": False}


class Recorder:
    def __init__(self) -> None:
        self.up = True
        self.received: list[tuple[str, str, dict[str, Any]]] = []  # (path, Authorization, body)

    def configure(self, app: Quart, listener: str) -> None:
        async def intercept() -> Any:
            if request.method != "PUT" or not request.path.startswith(SEND):
                return None
            if not self.up:
                return {"errcode": "M_UNKNOWN", "error": "down for maintenance"}, 503
            body = await request.get_json()
            self.received.append((request.path, request.headers["Authorization"], body))
            return {"pdus": {}}

        app.before_request(intercept)

    def bodies(self) -> list[str]:
        return [p["content"]["body"] for _, _, b in self.received for p in b["pdus"]]


async def _eventually(check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _services(srv: RunningServer) -> Services:
    svc = srv.app().extensions["dendrite_lite"]
    assert isinstance(svc, Services)
    return svc


async def test_events_reach_a_peer_signed_and_the_backlog_follows_its_return(
    start_server: StartServer, tmp_path: Path
) -> None:
    recorder = Recorder()
    peer = await tls_peer(start_server, tmp_path, configure_app=recorder.configure)
    srv = await start_server(
        {"federation.verify_tls": False, "federation.trusted_key_servers": (), **OPEN},
        configure_app=add_whoami,
    )
    us, them = srv.config.server.server_name, peer.config.server.server_name
    svc = _services(srv)
    sender = svc.federation_sender
    assert sender is not None
    try:
        alice = await new_user(srv, "alice")
        room_id = (await alice.call("POST", "/createRoom", {"preset": "public_chat"})).json()["room_id"]
        # A remote member (in real life it joins through send_join).
        bob = f"@bob:{them}"
        await svc.pipeline.send(room_id, EventSpec(bob, "m.room.member", {"membership": "join"}, bob))

        await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/t1", {"msgtype": "m.text", "body": "one"})
        await _eventually(lambda: recorder.bodies() == ["one"], 10)
        path, auth, body = recorder.received[0]
        assert body["origin"] == us and isinstance(body["origin_server_ts"], int)
        x = parse_x_matrix(auth)
        assert (x.origin, x.destination, x.key) == (us, them, srv.key.key_id)
        signed = {**request_json("PUT", path, us, them, body), "signatures": {us: {x.key: x.sig}}}
        verify_json_signature(signed, us, x.key, srv.key.verify_key)

        # The peer fails: we back off and keep the events.
        recorder.up = False
        for n, text in enumerate(["two", "three"]):
            await alice.call("PUT", f"/rooms/{room_id}/send/m.room.message/d{n}", {"msgtype": "m.text", "body": text})
        health = None

        async def backing_off() -> bool:
            nonlocal health
            health = await sender.destination_health(them)
            return health is not None and health.retry_interval_ms > 0 and health.pending == 2

        deadline = time.monotonic() + 10
        while not await backing_off():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert health is not None and "503" in (health.last_failure_reason or "")
        assert health.last_success_ts is not None and health.next_retry_ts > health.last_failure_ts  # type: ignore[operator]

        # It is back and sends us a request: the backlog goes at once, not after the backoff.
        recorder.up = True
        resp = await srv.federation.get(
            WHOAMI, headers={"Authorization": authorization_header(them, peer.key, us, "GET", WHOAMI, None)}
        )
        assert resp.json() == {"origin": them}
        await _eventually(lambda: recorder.bodies() == ["one", "two", "three"], 3)
        await asyncio.sleep(0.05)
        health = await sender.destination_health(them)
        assert health is not None and health.pending == 0 and health.retry_interval_ms == 0
        assert len({p for p, _, _ in recorder.received}) == len(recorder.received)  # fresh txn ids
    finally:
        await srv.stop()  # the side holding connections to the peer stops first
        await peer.stop()


async def test_federation_disabled_means_no_sender(start_server: StartServer) -> None:
    srv = await start_server({"federation.enabled": False, **OPEN})
    assert _services(srv).federation_sender is None
    alice = await new_user(srv, "alice")
    resp = await alice.call("POST", "/createRoom", {"preset": "public_chat"})
    assert resp.status_code == 200
