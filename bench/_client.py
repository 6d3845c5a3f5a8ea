"""A minimal Matrix client for the benchmarks: register, login, createRoom, join, send, sync.

Only what bench/chat.py and bench/key_exchange.py need, written against the spec (so it drives
any homeserver the same way). One `Homeserver` holds the shared connection pool; `User` is a
logged-in device.

The client is aiohttp on uvloop, not httpx: with httpx the client itself needed 0.9 of the
machine's 2 cores to keep 16 sends in flight against dendrite-lite (bench/chat.py's "bench client
CPU" line) and became the bottleneck of the measurement; the same work costs aiohttp a fraction.
Every call raises `MatrixHTTPError` on a non-2xx answer so a broken run stops loudly instead of
producing numbers for work that was never done.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp

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
        self._timeout_s = timeout_s
        self.http = self.new_pool(max_connections)

    def new_pool(self, max_connections: int) -> aiohttp.ClientSession:
        """A keep-alive pool of its own (long-polls use one so they never starve sends)."""
        return aiohttp.ClientSession(
            base_url=self.base_url,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            connector=aiohttp.TCPConnector(limit=max_connections),
            skip_auto_headers=("User-Agent",),
        )

    async def aclose(self) -> None:
        await self.http.close()

    async def request(
        self, method: str, path: str, *, token: str | None = None, body: Any = None,
        params: dict[str, str] | None = None, ok: tuple[int, ...] = (200,),
        http: aiohttp.ClientSession | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        content = None if body is None else json.dumps(body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        async with (http or self.http).request(
            method, path, data=content, headers=headers, params=params
        ) as resp:
            text = await resp.text()
            if resp.status not in ok:
                raise MatrixHTTPError(method, path, resp.status, text)
            return dict(json.loads(text))

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
        return User(self, first["user_id"], first["access_token"], device_id=first["device_id"])

    async def login(self, localpart: str, password: str) -> User:
        """POST /login with a password: another device of an existing account."""
        body = {
            "type": "m.login.password", "password": password,
            "identifier": {"type": "m.id.user", "user": localpart},
        }
        resp = await self.request("POST", f"{CLIENT}/login", body=body)
        return User(self, resp["user_id"], resp["access_token"], device_id=resp["device_id"])


@dataclass
class User:
    hs: Homeserver
    user_id: str
    token: str
    txn_counter: int = 0
    device_id: str = ""

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
        http: aiohttp.ClientSession | None = None,
    ) -> dict[str, Any]:
        """GET /sync. `http` lets long-polls use their own pool so they never starve sends."""
        params = {"timeout": str(timeout_ms)}
        if since is not None:
            params["since"] = since
        if filter_json is not None:
            params["filter"] = filter_json
        return await self.hs.request("GET", f"{CLIENT}/sync", token=self.token, params=params,
                                     http=http)
