"""Helpers for tests that need accounts on a real server: a server factory with cheap password
hashing and open registration, registration through the real /register, and UIA round trips."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from dendrite_lite.api.app import Services
from dendrite_lite.storage import Storage
from dendrite_lite.users.passwords import fast_hashing_for_tests
from tests.conftest import RunningServer, launch

__all__ = ["running_server", "register", "login", "auth_header", "uia_password", "server_storage", "PASSWORD"]

PASSWORD = "correct horse battery staple"
V3 = "/_matrix/client/v3"


@contextlib.asynccontextmanager
async def running_server(
    data_dir: Path, overrides: dict[str, Any] | None = None
) -> AsyncIterator[RunningServer]:
    """A real server with registration open and rate limits off (unless overridden), and
    cheap argon2."""
    defaults = {"registration.mode": "open", "ratelimit.enabled": False}
    with fast_hashing_for_tests():
        srv = await launch(data_dir, {**defaults, **(overrides or {})})
        try:
            yield srv
        finally:
            await srv.stop()


def server_storage(srv: RunningServer) -> Storage:
    """The running server's database, for setting up what has no HTTP API (tokens, admins)."""
    # api.app keeps the Services in the app's extensions (what services() reads in a request).
    svc: Services = srv.app().extensions["dendrite_lite"]
    return svc.storage


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    """Register through the two-request m.login.dummy flow; returns the 200 body."""
    body = {"username": username, "password": password, **extra}
    first = await client.post(f"{V3}/register", json=body)
    assert first.status_code == 401, first.text
    session = first.json()["session"]
    resp = await client.post(
        f"{V3}/register", json={**body, "auth": {"type": "m.login.dummy", "session": session}}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def login(
    client: httpx.AsyncClient, user: str, password: str = PASSWORD, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"{V3}/login",
        json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
              "password": password, **extra},
    )


async def uia_password(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    token: str,
    user: str,
    body: dict[str, Any] | None = None,
    password: str = PASSWORD,
) -> httpx.Response:
    """Do a UIA-protected request: first without auth (expecting 401 with [m.login.password]),
    then again with the password stage. Returns the second response."""
    body = body or {}
    first = await client.request(method, path, json=body, headers=auth_header(token))
    assert first.status_code == 401, first.text
    assert first.json()["flows"] == [{"stages": ["m.login.password"]}]
    auth = {"type": "m.login.password", "session": first.json()["session"],
            "identifier": {"type": "m.id.user", "user": user}, "password": password}
    return await client.request(
        method, path, json={**body, "auth": auth}, headers=auth_header(token)
    )
