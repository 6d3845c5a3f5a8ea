"""X-Matrix authentication for federation handlers: `origin = await authenticated_origin()`.

Every federation endpoint except the key endpoints calls it first; it answers 401
M_UNAUTHORIZED (via MatrixError) unless the request carries a valid signature of its origin
for this server. The checks themselves live in dendrite_lite.federation.auth.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from quart import request

from dendrite_lite.api.app import services
from dendrite_lite.federation.auth import parse_request_body, verify_request

__all__ = ["authenticated_origin", "request_uri"]


def request_uri() -> str:
    """The request target exactly as the sender wrote (and signed) it: raw path and query."""
    scope = request.scope
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else quote(request.path)
    query = scope.get("query_string") or b""
    return path + ("?" + query.decode("latin-1") if query else "")


async def authenticated_origin() -> str:
    """The verified origin server of the current request (401 M_UNAUTHORIZED otherwise)."""
    svc = services()
    body = await request.get_data()
    content = parse_request_body(body)
    origin = await verify_request(
        svc.keyring,
        svc.config.server.server_name,
        request.method,
        request_uri(),
        content,
        request.headers.get("Authorization"),
        int(time.time() * 1000),
    )
    if svc.federation_sender is not None:
        # It is up: anything we hold back for it while backing off goes out now.
        await svc.federation_sender.mark_alive(origin)
    return origin
