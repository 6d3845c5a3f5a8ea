"""CORS for browser clients (client-server API §Web Browser Clients).

Every response, errors included, carries the recommended headers; `.well-known` needs them too,
so they are added everywhere rather than per prefix. An OPTIONS request is answered here before
routing: the spec says the server MUST NOT run endpoint logic for it.
"""

from __future__ import annotations

from quart import Quart, Response, request

__all__ = ["CORS_HEADERS", "register_cors"]

CORS_HEADERS: dict[str, str] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}


async def _preflight() -> Response | None:
    if request.method == "OPTIONS":
        return Response(b"", status=204)
    return None


async def _add_cors_headers(response: Response) -> Response:
    for name, value in CORS_HEADERS.items():
        response.headers[name] = value
    return response


def register_cors(app: Quart) -> None:
    app.before_request(_preflight)
    app.after_request(_add_cors_headers)
