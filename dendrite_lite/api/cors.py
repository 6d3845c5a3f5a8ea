"""CORS for browser clients (client-server API §Web Browser Clients).

Every response, errors included, carries the recommended headers; `.well-known` needs them too,
so they are added everywhere rather than per prefix (api/asgi.py). An OPTIONS request is answered
there before routing: the spec says the server MUST NOT run endpoint logic for it.
"""

from __future__ import annotations

__all__ = ["CORS_HEADERS"]

CORS_HEADERS: dict[str, str] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}
