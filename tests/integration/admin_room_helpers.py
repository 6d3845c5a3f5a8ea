"""Helpers for the room admin API tests: a module server with one server admin, and admin
requests by path (User.call prefixes the client API)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from dendrite_lite.storage import accounts as accounts_table
from tests.conftest import RunningServer
from tests.integration.account_helpers import auth_header, server_storage
from tests.integration.room_helpers import User, new_user

__all__ = ["V1", "V2", "admin_call", "make_admin", "wait_for_status"]

V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"


async def make_admin(srv: RunningServer, prefix: str = "admin") -> User:
    user = await new_user(srv, prefix)
    await server_storage(srv).db.write(
        lambda c: accounts_table.update_account_admin(c, user.user_id, True)
    )
    return user


async def admin_call(
    user: User,
    method: str,
    path: str,
    body: Any = None,
    *,
    expect: int | None = 200,
    **kw: Any,
) -> httpx.Response:
    resp = await user.client.request(
        method, path, json=body, headers=auth_header(user.token), **kw
    )
    if expect is not None:
        assert resp.status_code == expect, (
            f"{method} {path}: {resp.status_code} {resp.text}"
        )
    return resp


async def wait_for_status(
    user: User, path: str, *, timeout: float = 10.0
) -> dict[str, Any]:
    """Poll a background job's status until it is no longer active."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body: dict[str, Any] = (await admin_call(user, "GET", path)).json()
        if (
            body.get("status") != "active"
            or asyncio.get_running_loop().time() > deadline
        ):
            return body
        await asyncio.sleep(0.05)
