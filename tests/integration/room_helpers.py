"""Helpers for the room tests: users registered on a real server, each with its own token, and
short request helpers that assert the status code."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import V3, auth_header, register

__all__ = ["User", "new_user", "V3", "SERVER_NAME"]

_names = itertools.count(1)


@dataclass
class User:
    client: httpx.AsyncClient
    user_id: str
    token: str
    device_id: str

    async def call(
        self, method: str, path: str, body: Any = None, *, expect: int | None = 200, **kw: Any
    ) -> httpx.Response:
        """`path` is relative to /_matrix/client/v3 unless it starts with /_matrix."""
        url = path if path.startswith("/_matrix") else f"{V3}{path}"
        resp = await self.client.request(
            method, url, json=body, headers=auth_header(self.token), **kw
        )
        if expect is not None:
            assert resp.status_code == expect, f"{method} {url}: {resp.status_code} {resp.text}"
        return resp

    async def create_room(self, **body: Any) -> str:
        return (await self.call("POST", "/createRoom", body)).json()["room_id"]

    async def send(self, room_id: str, body: str = "hi", *, txn: str | None = None) -> str:
        txn = txn or f"t{next(_names)}"
        resp = await self.call(
            "PUT", f"/rooms/{room_id}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body}
        )
        return resp.json()["event_id"]

    async def state(self, room_id: str, event_type: str, state_key: str = "", **kw: Any) -> httpx.Response:
        return await self.call("GET", f"/rooms/{room_id}/state/{event_type}/{state_key}", **kw)


async def new_user(srv: RunningServer, prefix: str = "u", **extra: Any) -> User:
    name = f"{prefix}{next(_names)}"
    body = await register(srv.client, name, **extra)
    return User(srv.client, body["user_id"], body["access_token"], body["device_id"])
