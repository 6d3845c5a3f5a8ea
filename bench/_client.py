"""A minimal Matrix client for the benchmarks: register, createRoom, join, send, sync.

Only what bench/chat.py needs, written against the spec (so it drives any homeserver the same
way). One `Homeserver` holds the shared httpx connection pool; `User` is a logged-in account.
Every call raises `MatrixHTTPError` on a non-2xx answer so a broken run stops loudly instead of
producing numbers for work that was never done.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["MatrixHTTPError", "Homeserver", "User"]

CLIENT = "/_matrix/client/v3"


class MatrixHTTPError(Exception):
    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:300]}")
        self.status = status


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class Homeserver:
    """One server's base URL and a keep-alive connection pool shared by every User."""

    def __init__(self, base_url: str, *, max_connections: int = 64, timeout_s: float = 120) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None,
        params: dict[str, str] | None = None, ok: tuple[int, ...] = (200,),
        http: httpx.AsyncClient | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        content = None if body is None else json.dumps(body).encode()
        if content is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        resp = await (http or self.http).request(
            method, path, content=content, headers=headers, params=params
        )
        if resp.status_code not in ok:
            raise MatrixHTTPError(method, path, resp.status_code, resp.text)
        return dict(resp.json())

    async def register(self, localpart: str, password: str) -> User:
        """POST /register with the m.login.dummy stage (open registration on both servers)."""
        body: dict[str, Any] = {
            "username": localpart, "password": password,
            "initial_device_display_name": "bench",
        }
        # The first call opens a user-interactive auth session (401 with flows + session).
        first = await self.request("POST", f"{CLIENT}/register", body=body, ok=(200, 401))
        if "access_token" not in first:
            body["auth"] = {"type": "m.login.dummy", "session": first.get("session")}
            first = await self.request("POST", f"{CLIENT}/register", body=body)
        return User(self, first["user_id"], first["access_token"])


@dataclass
class User:
    hs: Homeserver
    user_id: str
    token: str
    txn_counter: int = 0

    async def create_room(self, body: dict[str, Any]) -> str:
        resp = await self.hs.request("POST", f"{CLIENT}/createRoom", token=self.token, body=body)
        return str(resp["room_id"])

    async def join(self, room_id: str) -> None:
        await self.hs.request("POST", f"{CLIENT}/rooms/{_q(room_id)}/join", token=self.token, body={})

    async def send_text(self, room_id: str, text: str) -> str:
        """PUT /rooms/{roomId}/send/m.room.message/{txnId}; returns the event ID."""
        self.txn_counter += 1
        path = f"{CLIENT}/rooms/{_q(room_id)}/send/m.room.message/b{self.txn_counter}"
        resp = await self.hs.request(
            "PUT", path, token=self.token, body={"msgtype": "m.text", "body": text}
        )
        return str(resp["event_id"])

    async def sync(
        self, *, since: str | None = None, timeout_ms: int = 0, filter_json: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> dict[str, Any]:
        """GET /sync. `http` lets long-polls use their own pool so they never starve sends."""
        params = {"timeout": str(timeout_ms)}
        if since is not None:
            params["since"] = since
        if filter_json is not None:
            params["filter"] = filter_json
        return await self.hs.request("GET", f"{CLIENT}/sync", token=self.token, params=params,
                                     http=http)
