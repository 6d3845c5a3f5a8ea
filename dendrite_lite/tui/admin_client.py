"""The TUI's one way to the server: HTTP over the admin unix socket (httpx).

Opening the socket is the authentication, so no token is sent. Every call answers the JSON
body, or raises:
- `AdminUnavailable`: nothing answers on the socket (the server is not running, or the path is
  wrong), so the TUI shows its "not running" screen;
- `AdminRequestError(status, errcode, error)`: the server answered with a Matrix error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

__all__ = ["AdminClient", "AdminRequestError", "AdminUnavailable"]

# The admin API answers from local state; a request this slow means a wedged server.
_TIMEOUT_S = 10.0


class AdminUnavailable(Exception):
    """No server answers on the admin socket."""

    def __init__(self, socket_path: Path, reason: str) -> None:
        super().__init__(f"no answer on {socket_path}: {reason}")
        self.socket_path = socket_path
        self.reason = reason


class AdminRequestError(Exception):
    """The server refused or failed a request: its HTTP status and Matrix error."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error


class AdminClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket_path)),
            # The host is never resolved: the transport always connects to the socket.
            base_url="http://admin.socket",
            timeout=_TIMEOUT_S,
        )

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        # None means "not given", so callers can pass optional filters as they are.
        query = {k: v for k, v in params.items() if v is not None}
        return await self._request("GET", path, params=query)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._request("POST", path, json=body if body is not None else {})

    async def put(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._request("PUT", path, json=body if body is not None else {})

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._request("DELETE", path, json=body)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = await self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise AdminUnavailable(self.socket_path, _reason(e)) from None
        except httpx.TimeoutException:
            raise AdminUnavailable(self.socket_path, "no answer in time") from None
        body = _json(resp)
        if resp.status_code >= 400:
            raise AdminRequestError(
                resp.status_code,
                str(body.get("errcode", "M_UNKNOWN")),
                str(body.get("error", resp.reason_phrase)),
            )
        return body


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"value": body}


def _reason(e: httpx.TransportError) -> str:
    # httpx keeps the OSError's text only ("[Errno 2] No such file or directory").
    text = str(e)
    for marker, reason in (
        ("No such file", "no socket file"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied (run it as the server's user)"),
    ):
        if marker in text:
            return reason
    return text or type(e).__name__
