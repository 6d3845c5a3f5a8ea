"""Synapse-compatible federation destinations admin API through real servers: a TLS peer that
receives our events, then fails (we back off), then is retried at once by reset_connection; and a
destination on a closed loopback port for listing, searching, sorting and paging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import StartServer
from tests.integration.account_helpers import auth_header
from tests.integration.admin_room_helpers import make_admin
from tests.integration.federation_helpers import (
    RemoteServer,
    join_remote_user,
    services_of,
)
from tests.integration.room_helpers import User, new_user
from tests.integration.test_key_query import tls_peer
from tests.integration.test_outbox_delivery import Recorder

PREFIX = "/_synapse/admin/v1/federation/destinations"
OPEN = {"registration.mode": "open", "ratelimit.enabled": False}


async def _get(user: User, path: str, expect: int = 200, **params: Any) -> Any:
    resp = await user.client.get(path, params=params, headers=auth_header(user.token))
    assert resp.status_code == expect, resp.text
    return resp.json()


async def _reset(user: User, destination: str) -> httpx.Response:
    return await user.client.post(
        f"{PREFIX}/{destination}/reset_connection",
        json={},
        headers=auth_header(user.token),
    )


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
    """Seconds until `check()` held (fails the test after timeout_s)."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < timeout_s, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def _send(user: User, room_id: str, body: str) -> None:
    await user.call(
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/{body}",
        {"msgtype": "m.text", "body": body},
    )


async def test_failing_peer_shows_its_backoff_and_reset_connection_retries_now(
    start_server: StartServer, tmp_path: Path
) -> None:
    recorder = Recorder()
    peer = await tls_peer(start_server, tmp_path, configure_app=recorder.configure)
    srv = await start_server(
        {"federation.verify_tls": False, "federation.trusted_key_servers": (), **OPEN}
    )
    us, them = srv.config.server.server_name, peer.config.server.server_name
    try:
        admin = await make_admin(srv)
        room_id = await admin.create_room(preset="public_chat")
        await join_remote_user(srv, room_id, f"@bob:{them}")
        await _send(admin, room_id, "one")

        async def delivered_one() -> bool:
            d = await _get(admin, f"{PREFIX}/{them}")
            return "one" in recorder.bodies() and d["last_success_ts"] is not None

        await _until(delivered_one, 10)
        healthy = await _get(admin, f"{PREFIX}/{them}")
        assert healthy | {"last_success_ts": 0} == {
            "destination": them,
            "retry_last_ts": 0,
            "retry_interval": 0,
            "failure_ts": None,
            "last_successful_stream_ordering": None,
            "last_success_ts": 0,
            "last_failure_ts": None,
            "last_error": None,
            "next_retry_ts": 0,
            "queue_length": 0,
        }
        rooms = await _get(admin, f"{PREFIX}/{them}/rooms")
        assert [r["room_id"] for r in rooms["rooms"]] == [room_id] and rooms[
            "total"
        ] == 1
        delivered_at = rooms["rooms"][0]["stream_ordering"]
        assert delivered_at > 0  # our "one"

        # The peer fails: we back off, and the admin API shows it.
        recorder.up = False
        await _send(admin, room_id, "two")

        async def backing_off() -> bool:
            return (await _get(admin, f"{PREFIX}/{them}"))["retry_interval"] > 0

        await _until(backing_off, 10)
        failing = await _get(admin, f"{PREFIX}/{them}")
        assert failing["retry_interval"] == 5000 and failing["queue_length"] == 1
        assert (
            failing["retry_last_ts"]
            == failing["failure_ts"]
            == failing["last_failure_ts"]
            > 0
        )
        assert (
            "503" in failing["last_error"]
            and failing["next_retry_ts"] > failing["failure_ts"]
        )
        rooms = await _get(admin, f"{PREFIX}/{them}/rooms")
        assert (
            rooms["rooms"][0]["stream_ordering"] > delivered_at
        )  # "two", queued for it

        # Back up: reset_connection sends the backlog now, not after the (4 s or more) backoff.
        recorder.up = True
        assert (await _reset(admin, them)).json() == {}

        async def delivered_two() -> bool:
            d = await _get(admin, f"{PREFIX}/{them}")
            return (
                "two" in recorder.bodies()
                and d["queue_length"] == 0
                and d["retry_interval"] == 0
            )

        assert await _until(delivered_two, 3.5) < 3.5
        again = await _reset(admin, them)  # nothing to reset any more
        assert (again.status_code, again.json()["errcode"]) == (400, "M_INVALID_PARAM")
        ours = await _reset(admin, us)
        assert (ours.status_code, ours.json()["errcode"]) == (400, "M_INVALID_PARAM")
    finally:
        await srv.stop()  # the side holding connections to the peer stops first
        await peer.stop()


async def test_list_searches_sorts_and_pages(start_server: StartServer) -> None:
    srv = await start_server(OPEN)
    admin = await make_admin(srv)
    plain = await new_user(srv, "plain")
    # Two destinations on closed loopback ports: every attempt fails at once.
    remotes = [await RemoteServer.trusted_by(srv) for _ in range(2)]
    room_id = await admin.create_room(preset="public_chat")
    for remote in remotes:
        await join_remote_user(srv, room_id, remote.user("bob"))
    await _send(admin, room_id, "hello")
    names = sorted(r.name for r in remotes)

    async def both_failing() -> bool:
        listed = await _get(admin, PREFIX)
        return [d["retry_interval"] > 0 for d in listed["destinations"]] == [True, True]

    await _until(both_failing, 10)
    first = await _get(admin, PREFIX, limit=1)
    assert [d["destination"] for d in first["destinations"]] == names[:1]
    assert (first["total"], first["next_token"]) == (2, "1")
    second = await _get(admin, PREFIX, limit=1, **{"from": first["next_token"]})
    assert [d["destination"] for d in second["destinations"]] == names[1:]
    assert "next_token" not in second
    backwards = await _get(admin, PREFIX, dir="b")
    assert [d["destination"] for d in backwards["destinations"]] == names[::-1]
    port = names[1].rsplit(":", 1)[1]
    searched = await _get(admin, PREFIX, destination=f":{port}")
    assert [d["destination"] for d in searched["destinations"]] == names[1:]
    by_failure = await _get(admin, PREFIX, order_by="failure_ts")
    assert sorted(d["failure_ts"] for d in by_failure["destinations"]) == [
        d["failure_ts"] for d in by_failure["destinations"]
    ]
    other_room = await admin.create_room(preset="public_chat")
    await join_remote_user(srv, other_room, remotes[0].user("carol"))
    rooms = await _get(admin, f"{PREFIX}/{remotes[0].name}/rooms", limit=1)
    assert [r["room_id"] for r in rooms["rooms"]] == sorted([room_id, other_room])[:1]
    assert (rooms["total"], rooms["next_token"]) == (2, "1")
    rooms_b = await _get(admin, f"{PREFIX}/{remotes[0].name}/rooms", dir="b")
    assert [r["room_id"] for r in rooms_b["rooms"]] == sorted([room_id, other_room])[
        ::-1
    ]

    for params in (
        {"order_by": "colour"},
        {"dir": "up"},
        {"from": "-1"},
        {"limit": "many"},
        {"from": "9" * 25},
    ):
        bad = await _get(admin, PREFIX, 400, **params)
        assert bad["errcode"] == "M_INVALID_PARAM", params
    assert (await _get(admin, f"{PREFIX}/nowhere.example", 404))[
        "errcode"
    ] == "M_NOT_FOUND"
    assert (await _get(admin, f"{PREFIX}/nowhere.example/rooms", 404))[
        "errcode"
    ] == "M_NOT_FOUND"
    unknown = await _reset(admin, "nowhere.example")
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_NOT_FOUND")
    assert (await _get(plain, PREFIX, 403))["errcode"] == "M_FORBIDDEN"
    sender = services_of(srv).federation_sender
    assert sender is not None and sender.queue(names[0]) is not None
