"""Synapse's admin purge history API (purge_history_api.md) through a real server: the purge
id and its status, the errors, and what clients see afterwards (/messages stops at the purge
point, the state stays), and what stays in the database (local events as outliers unless
delete_local_events)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dendrite_lite.storage import events as events_table
from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server, server_storage
from tests.integration.admin_room_helpers import (
    V1,
    admin_call,
    make_admin,
    wait_for_status,
)
from tests.integration.room_helpers import User, new_user


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("admin_purge")) as s:
        yield s


@pytest.fixture(scope="module")
async def admin(srv: RunningServer) -> User:
    return await make_admin(srv)


async def _room_with_messages(
    srv: RunningServer, n: int
) -> tuple[User, str, list[str]]:
    user = await new_user(srv, "purged")
    room_id = await user.create_room(name="Keep my name")
    return user, room_id, [await user.send(room_id, f"m{i}") for i in range(n)]


async def _purge(admin: User, path: str, body: dict[str, object]) -> dict[str, object]:
    purge_id = (
        await admin_call(admin, "POST", f"{V1}/purge_history/{path}", body)
    ).json()["purge_id"]
    return await wait_for_status(admin, f"{V1}/purge_history_status/{purge_id}")


async def _messages(user: User, room_id: str) -> list[str]:
    resp = await user.call(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": 50}
    )
    return [
        e["content"].get("body")
        for e in resp.json()["chunk"]
        if e["type"] == "m.room.message"
    ]


async def test_purge_up_to_an_event_keeps_it_and_the_state(
    srv: RunningServer, admin: User
) -> None:
    user, room_id, sent = await _room_with_messages(srv, 5)
    assert await _purge(admin, f"{room_id}/{sent[3]}", {}) == {"status": "complete"}
    # Newest first: the point and what came after it, nothing before.
    assert await _messages(user, room_id) == ["m4", "m3"]
    assert (await user.state(room_id, "m.room.name")).json() == {"name": "Keep my name"}
    sync = (await user.call("GET", "/sync")).json()["rooms"]["join"][room_id]
    types = {e["type"] for e in sync["state"]["events"] + sync["timeline"]["events"]}
    assert {
        "m.room.create",
        "m.room.power_levels",
        "m.room.member",
        "m.room.name",
    } <= types
    # The room goes on: a new message is sent and read.
    await user.send(room_id, "after")
    assert await _messages(user, room_id) == ["after", "m4", "m3"]
    # Local events stay as outliers (the default); delete_local_events removes them.
    stored = await server_storage(srv).db.read(
        lambda c: events_table.select_event(c, sent[0])
    )
    assert stored is not None and stored.outlier


async def test_delete_local_events_and_purge_by_ts(
    srv: RunningServer, admin: User
) -> None:
    user, room_id, sent = await _room_with_messages(srv, 4)
    got = await server_storage(srv).db.read(
        lambda c: events_table.select_event(c, sent[2])
    )
    assert got is not None
    ts = got.event.origin_server_ts
    body = {"purge_up_to_ts": ts, "delete_local_events": True}
    assert await _purge(admin, room_id, body) == {"status": "complete"}
    remaining = await _messages(user, room_id)
    assert "m0" not in remaining and "m3" in remaining
    gone = await server_storage(srv).db.read(
        lambda c: events_table.select_event(c, sent[0])
    )
    assert gone is None


async def test_purge_errors(srv: RunningServer, admin: User) -> None:
    user, room_id, sent = await _room_with_messages(srv, 1)
    _, other_room, other = await _room_with_messages(srv, 1)
    cases = [
        (user, f"{room_id}/{sent[0]}", {}, 403, "M_FORBIDDEN"),
        (admin, "!nope:test.localhost", {"purge_up_to_ts": 1}, 404, "M_NOT_FOUND"),
        (admin, f"{room_id}/$missing", {}, 404, "M_NOT_FOUND"),
        (admin, f"{room_id}/{other[0]}", {}, 400, "M_INVALID_PARAM"),
        (admin, room_id, {}, 400, "M_MISSING_PARAM"),
        (admin, room_id, {"purge_up_to_ts": "soon"}, 400, "M_BAD_JSON"),
        (admin, room_id, {"purge_up_to_ts": 2**64}, 400, "M_INVALID_PARAM"),
        (
            admin,
            room_id,
            {"purge_up_to_ts": 1, "delete_local_events": "yes"},
            400,
            "M_BAD_JSON",
        ),
    ]
    for who, path, body, status, errcode in cases:
        resp = await admin_call(
            who, "POST", f"{V1}/purge_history/{path}", body, expect=None
        )
        assert (resp.status_code, resp.json()["errcode"]) == (status, errcode), (
            path,
            body,
        )
    unknown = await admin_call(
        admin, "GET", f"{V1}/purge_history_status/nope", expect=404
    )
    assert unknown.json()["errcode"] == "M_NOT_FOUND"
    assert other_room != room_id


async def test_purged_events_leave_the_unread_counts(
    srv: RunningServer, admin: User
) -> None:
    alice, bob = await new_user(srv, "counted"), await new_user(srv, "reader")
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/rooms/{room_id}/join", {})
    first = await alice.send(room_id, "first")
    await bob.call("POST", f"/rooms/{room_id}/receipt/m.read/{first}", {})
    sent = [await alice.send(room_id, f"unread {i}") for i in range(4)]

    async def unread() -> int:
        rooms = (await bob.call("GET", "/sync", params={"timeout": "0"})).json()[
            "rooms"
        ]
        return int(rooms["join"][room_id]["unread_notifications"]["notification_count"])

    assert await unread() == 4
    assert await _purge(admin, f"{room_id}/{sent[-1]}", {}) == {"status": "complete"}
    assert await unread() == 1
    await alice.send(room_id, "new")
    assert await unread() == 2
