"""Helpers for the /sync, /messages and filter tests: users, rooms and messages over HTTP."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.integration.account_helpers import V3, auth_header, register

__all__ = ["User", "new_user", "numbered_user", "create_room", "send", "sync", "join", "V3"]

_txn = itertools.count(1)


@dataclass(frozen=True)
class User:
    client: httpx.AsyncClient
    user_id: str
    token: str
    device_id: str

    @property
    def headers(self) -> dict[str, str]:
        return auth_header(self.token)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"{V3}{path}", params=params, headers=self.headers)

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(f"{V3}{path}", json=body, headers=self.headers)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.client.put(f"{V3}{path}", json=body, headers=self.headers)


async def new_user(client: httpx.AsyncClient, name: str) -> User:
    body = await register(client, name)
    return User(client, body["user_id"], body["access_token"], body["device_id"])


_numbered = itertools.count()


async def numbered_user(srv: RunningServer, name: str) -> User:
    """A new user named `name` plus a number, so tests sharing a module's server never clash."""
    return await new_user(srv.client, f"{name}{next(_numbered)}")


async def create_room(user: User, **body: Any) -> str:
    resp = await user.post("/createRoom", body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["room_id"])


async def join(user: User, room_id: str) -> None:
    resp = await user.post(f"/rooms/{room_id}/join", {})
    assert resp.status_code == 200, resp.text


async def send(user: User, room_id: str, body: str, txn: str | None = None) -> str:
    txn = txn or f"t{next(_txn)}"
    resp = await user.put(
        f"/rooms/{room_id}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body}
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["event_id"])


async def sync(
    user: User, since: str | None = None, filter: Any = None, timeout: int = 0, **extra: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {"timeout": timeout, **extra}
    if since is not None:
        params["since"] = since
    if filter is not None:
        params["filter"] = filter if isinstance(filter, str) else json.dumps(filter)
    resp = await user.get("/sync", **params)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]
