"""Our users' typing, receipts and presence reach the other servers in their rooms as EDUs, in
real signed transactions to a TLS peer on loopback (the peer records what it is sent)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from quart import Quart, request

from tests.conftest import StartServer
from tests.integration.federation_helpers import join_remote_user
from tests.integration.room_helpers import new_user
from tests.integration.test_key_query import tls_peer

SEND = "/_matrix/federation/v1/send/"
OPEN = {"registration.mode": "open", "ratelimit.enabled": False}


class EduRecorder:
    def __init__(self) -> None:
        self.edus: list[dict[str, Any]] = []

    def configure(self, app: Quart, listener: str) -> None:
        async def intercept() -> Any:
            if request.method != "PUT" or not request.path.startswith(SEND):
                return None
            body = await request.get_json()
            self.edus.extend(body.get("edus", []))
            return {"pdus": {}}

        app.before_request(intercept)

    def of_type(self, edu_type: str) -> list[dict[str, Any]]:
        return [e["content"] for e in self.edus if e["edu_type"] == edu_type]


async def _eventually(check: Any, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_typing_receipts_and_presence_are_sent_to_the_rooms_servers(
    start_server: StartServer, tmp_path: Path
) -> None:
    recorder = EduRecorder()
    peer = await tls_peer(start_server, tmp_path, configure_app=recorder.configure)
    srv = await start_server({"federation.verify_tls": False, "federation.trusted_key_servers": (), **OPEN})
    them = peer.config.server.server_name
    try:
        alice = await new_user(srv, "alice")
        room_id = await alice.create_room(preset="public_chat")
        await join_remote_user(srv, room_id, f"@bob:{them}")

        await alice.call("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 20000})
        await _eventually(lambda: recorder.of_type("m.typing"))
        assert recorder.of_type("m.typing") == [{"room_id": room_id, "user_id": alice.user_id, "typing": True}]

        event_id = await alice.send(room_id, "read")
        await alice.call("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
        await alice.call("POST", f"/rooms/{room_id}/receipt/m.read.private/{event_id}", {})
        await _eventually(lambda: recorder.of_type("m.receipt"))
        (receipt,) = recorder.of_type("m.receipt")
        read = receipt[room_id]["m.read"][alice.user_id]
        assert read["event_ids"] == [event_id] and isinstance(read["data"]["ts"], int)

        await alice.call("PUT", f"/presence/{alice.user_id}/status", {"presence": "unavailable", "status_msg": "lunch"})
        await _eventually(lambda: any(
            p["user_id"] == alice.user_id and p["presence"] == "unavailable"
            for c in recorder.of_type("m.presence") for p in c["push"]
        ))
        # Usually one entry; a transaction retried under load (EDUs are delivered at least once,
        # the receiver drops a repeated txn id) can record it twice.
        entries = [p for c in recorder.of_type("m.presence") for p in c["push"] if p["presence"] == "unavailable"]
        assert all(e["user_id"] == alice.user_id and e["status_msg"] == "lunch" for e in entries)
        assert isinstance(entries[-1]["last_active_ago"], int)

        await alice.call("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": False})
        await _eventually(lambda: len(recorder.of_type("m.typing")) == 2)
        assert recorder.of_type("m.typing")[-1]["typing"] is False
        # Only public receipts leave the server.
        assert all("m.read.private" not in c[room_id] for c in recorder.of_type("m.receipt"))
    finally:
        await srv.stop()
        await peer.stop()


async def test_a_joining_server_is_sent_the_rooms_presence(start_server: StartServer, tmp_path: Path) -> None:
    """Presence travels on changes only: a server whose user joins a room hears at once of the
    presence our members set before, which it would otherwise learn at their next change."""
    recorder = EduRecorder()
    peer = await tls_peer(start_server, tmp_path, configure_app=recorder.configure)
    srv = await start_server({"federation.verify_tls": False, "federation.trusted_key_servers": (), **OPEN})
    them = peer.config.server.server_name
    try:
        alice, carol = await new_user(srv, "alice"), await new_user(srv, "carol")
        room_id = await alice.create_room(preset="public_chat")
        await alice.call("PUT", f"/presence/{alice.user_id}/status", {"presence": "online", "status_msg": "here"})
        await carol.call("PUT", f"/presence/{carol.user_id}/status", {"presence": "online"})  # not in the room
        assert recorder.of_type("m.presence") == []  # no other server shares a room yet
        await join_remote_user(srv, room_id, f"@bob:{them}")
        await _eventually(lambda: recorder.of_type("m.presence"))
        (content,) = recorder.of_type("m.presence")
        (entry,) = content["push"]
        assert entry["user_id"] == alice.user_id and entry["presence"] == "online"
        assert entry["status_msg"] == "here" and isinstance(entry["last_active_ago"], int)
    finally:
        await srv.stop()
        await peer.stop()
