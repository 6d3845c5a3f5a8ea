"""A second homeserver simulated in the test process: its own signing key (which the real
server under test is told about, as if fetched), X-Matrix signed requests to the server's
federation listener, and events its users "send", built and signed with its key against the
room as the server under test holds it.

    remote = await RemoteServer.trusted_by(srv)       # name 127.0.0.1:<closed port>
    bob = remote.user("bob")
    await join_remote_user(srv, room_id, bob)          # bob joined (via our pipeline)
    event = await remote.build(srv, room_id, bob, "m.room.message", {"body": "hi"})
    resp = await remote.request(srv, "PUT", f"{FED}/send/t1", {"origin": ..., "pdus": [...]})

The remote server's name points at a port nothing listens on, so anything the server under test
sends it (events, fetches of missing events) fails at once instead of hanging.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from dendrite_lite.api.app import Services
from dendrite_lite.crypto.keys import ServerKey, new_server_key
from dendrite_lite.events.builder import build_event
from dendrite_lite.events.event import Event
from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.federation.auth import authorization_header
from dendrite_lite.rooms.pipeline import EventSpec
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import server_keys as keys_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.events.room_versions import get_room_version
from tests.conftest import RunningServer
from tests.interop.synapse_server import free_port

__all__ = ["FED", "RemoteServer", "services_of", "join_remote_user", "transaction"]

FED = "/_matrix/federation/v1"
_txn = itertools.count(1)


def services_of(srv: RunningServer) -> Services:
    svc = srv.app().extensions["dendrite_lite"]
    assert isinstance(svc, Services)
    return svc


def transaction(origin: str, pdus: Sequence[Any] = (), edus: Sequence[Any] = ()) -> dict[str, Any]:
    return {
        "origin": origin,
        "origin_server_ts": int(time.time() * 1000),
        "pdus": list(pdus),
        "edus": list(edus),
    }


@dataclass
class RemoteServer:
    name: str
    key: ServerKey = field(default_factory=new_server_key)

    @classmethod
    async def trusted_by(cls, srv: RunningServer, name: str | None = None) -> RemoteServer:
        """A new remote server whose key `srv` holds (as if fetched from it)."""
        remote = cls(name or f"127.0.0.1:{free_port()}")
        await remote.introduce_to(srv)
        return remote

    async def introduce_to(self, srv: RunningServer) -> None:
        now = int(time.time() * 1000)
        stored = keys_table.StoredKey(
            self.name, self.key.key_id, self.key.verify_key_base64,
            valid_until_ts=now + 24 * 3600 * 1000, expired_ts=None, fetched_ts=now, source=self.name,
        )
        await services_of(srv).storage.db.write(lambda c: keys_table.upsert_server_keys(c, [stored]))

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.name}"

    def auth(self, srv: RunningServer, method: str, uri: str, content: Any = None, *,
             key: ServerKey | None = None, destination: str | None = None) -> str:
        dest = destination or srv.config.server.server_name
        return authorization_header(self.name, key or self.key, dest, method, uri, content)

    async def request(
        self, srv: RunningServer, method: str, uri: str, content: Any = None, **kw: Any
    ) -> httpx.Response:
        """A request signed by this server; `uri` is the exact path and query sent."""
        headers = {"Authorization": self.auth(srv, method, uri, content, **kw)}
        return await srv.federation.request(method, uri, json=content, headers=headers)

    async def send(self, srv: RunningServer, pdus: Sequence[Any] = (), edus: Sequence[Any] = (),
                   *, txn_id: str | None = None) -> httpx.Response:
        txn_id = txn_id or f"txn{next(_txn)}"
        return await self.request(srv, "PUT", f"{FED}/send/{txn_id}", transaction(self.name, pdus, edus))

    async def build(
        self,
        srv: RunningServer,
        room_id: str,
        sender: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        prev_events: Sequence[Event] | None = None,
    ) -> Event:
        """An event by `sender` (a user of this server) on top of the room as `srv` holds it
        now (its forward extremities and current state), signed by this server."""
        storage = services_of(srv).storage

        async def load(conn: Any) -> tuple[str, dict[Any, Event], list[Event]]:
            room = await rooms_table.select_room(conn, room_id)
            assert room is not None
            state = await state_table.select_current_state(conn, room_id)
            stored = await events_table.select_events(conn, state.values())
            ext = await events_table.select_forward_extremities(conn, room_id)
            prevs = await events_table.select_events(conn, [e for e, _ in ext])
            return (
                room.room_version,
                {k: stored[v].event for k, v in state.items()},
                [p.event for p in prevs.values()],
            )

        version, state, prevs = await storage.db.read(load)
        return build_event(
            room_version=get_room_version(version), server_name=self.name, key=self.key,
            sender=sender, event_type=event_type, content=content,
            origin_server_ts=int(time.time() * 1000), state=state,
            prev_events=prevs if prev_events is None else prev_events, state_key=state_key,
            room_id=room_id,
        )


def pdu(event: Event) -> dict[str, Any]:
    return pdu_for_federation(event)


async def join_remote_user(srv: RunningServer, room_id: str, user_id: str) -> str:
    """The remote user joins (in real life through send_join; here our pipeline writes the
    member event). Returns its event id."""
    persisted = await services_of(srv).pipeline.send(
        room_id, EventSpec(user_id, "m.room.member", {"membership": "join"}, user_id)
    )
    return persisted.event.event_id
