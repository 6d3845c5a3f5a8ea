"""A server with three users and one room (alice created it, bob joined, carol did not), for the
per-user data and ephemeral event tests; `World.call` sends an authenticated request."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from dendrite_lite.api.app import Services
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, register, running_server

__all__ = ["World", "open_world", "assert_error", "V3", "q"]

V3 = "/_matrix/client/v3"
_txn = itertools.count(1)


def q(part: str) -> str:
    """A path segment, percent-encoded (room IDs, event IDs and user IDs contain ! $ @ :)."""
    return quote(part, safe="")


def assert_error(resp: httpx.Response, status: int, errcode: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["errcode"] == errcode


@dataclass
class World:
    srv: RunningServer
    tokens: dict[str, str] = field(default_factory=dict)  # name -> access token
    ids: dict[str, str] = field(default_factory=dict)  # name -> user ID
    room_id: str = ""

    @property
    def client(self) -> httpx.AsyncClient:
        return self.srv.client

    @property
    def services(self) -> Services:
        svc: Services = self.srv.app().extensions["dendrite_lite"]
        return svc

    async def call(
        self, who: str, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.client.request(
            method, f"{V3}{path}", json=body, headers=auth_header(self.tokens[who]), **kwargs
        )

    async def send(self, who: str = "alice", content: dict[str, Any] | None = None) -> str:
        body = content if content is not None else {"msgtype": "m.text", "body": "hello"}
        resp = await self.call(who, "PUT", f"/rooms/{q(self.room_id)}/send/m.room.message/t{next(_txn)}", body)
        assert resp.status_code == 200, resp.text
        event_id: str = resp.json()["event_id"]
        return event_id

    async def create_room(self, who: str) -> str:
        resp = await self.call(who, "POST", "/createRoom", {"preset": "public_chat"})
        assert resp.status_code == 200, resp.text
        room_id: str = resp.json()["room_id"]
        return room_id


async def open_world(data_dir: Path) -> AsyncIterator[World]:
    async with running_server(data_dir) as srv:
        world = World(srv)
        for name in ("alice", "bob", "carol"):
            reg = await register(srv.client, name)
            world.tokens[name], world.ids[name] = reg["access_token"], reg["user_id"]
        world.room_id = await world.create_room("alice")
        resp = await world.call("bob", "POST", f"/rooms/{q(world.room_id)}/join", {})
        assert resp.status_code == 200, resp.text
        yield world
