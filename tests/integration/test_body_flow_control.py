"""A streamed request body is read off the connection no faster than its handler consumes it
(api/app.py BODY_BUFFER_BYTES): a slow consumer of a 16 MiB upload never has more than about
a megabyte of it waiting in memory. A body awaited whole is not held back."""

from __future__ import annotations

import asyncio
import hashlib

from quart import Blueprint, Quart, Response, jsonify, request

from dendrite_lite.api.app import BODY_BUFFER_BYTES, DrainableBody
from dendrite_lite.server import Listener
from tests.conftest import StartServer

bp = Blueprint("test_body_flow", __name__)


@bp.post("/_test/slow_sink")
async def slow_sink() -> Response:
    body = request.body
    assert isinstance(body, DrainableBody)
    digest = hashlib.sha256()
    most_waiting = 0
    async for chunk in body:
        most_waiting = max(most_waiting, len(chunk) + len(body._data))
        digest.update(chunk)
        await asyncio.sleep(0.02)  # a consumer slower than loopback (a disk, a thread hop)
    return jsonify({"sha256": digest.hexdigest(), "most_waiting": most_waiting})


@bp.post("/_test/whole")
async def whole() -> Response:
    return jsonify({"size": len(await request.get_data())})


def add_routes(app: Quart, listener: Listener) -> None:
    app.register_blueprint(bp)


async def test_streamed_body_is_held_back_for_a_slow_handler(start_server: StartServer) -> None:
    srv = await start_server({"limits.max_request_bytes": 64 * 1024 * 1024}, configure_app=add_routes)
    data = hashlib.sha256(b"flow").digest() * (512 * 1024)  # 16 MiB
    resp = await srv.client.post("/_test/slow_sink", content=data, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["sha256"] == hashlib.sha256(data).hexdigest()
    # Without flow control all 16 MiB would be waiting; with it, the buffer bound plus what
    # was already on its way (one ASGI message, Hypercorn's reads of up to 64 KiB).
    assert resp.json()["most_waiting"] < BODY_BUFFER_BYTES + 512 * 1024

    whole = await srv.client.post("/_test/whole", content=data, timeout=60)
    assert whole.json() == {"size": len(data)}
