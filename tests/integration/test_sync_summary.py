"""/sync room summaries are sent when memberships changed since the token and omitted otherwise
(sync.yaml: heroes and member counts "may be omitted" when unchanged); unread counts always."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import (
    create_room,
    join,
    numbered_user,
    send,
    sync,
)
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sync-summary")) as s:
        yield s


def _room(body: dict, room: str) -> dict:
    assert_matches_operation("client-server/sync.yaml", "/sync", "get", 200, body)
    return body["rooms"]["join"][room]


async def test_summary_only_when_memberships_changed(srv: RunningServer) -> None:
    alice, bob, carol = [await numbered_user(srv, n) for n in ("alice", "bob", "carol")]
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    first = await sync(bob)
    assert _room(first, room)["summary"] == {
        "m.heroes": [alice.user_id], "m.joined_member_count": 2, "m.invited_member_count": 0,
    }

    await send(alice, room, "no membership change")
    quiet = await sync(bob, since=first["next_batch"])
    body = _room(quiet, room)
    assert body["summary"] == {}  # unchanged: omitted
    assert body["unread_notifications"] == {"notification_count": 1, "highlight_count": 0}

    await join(carol, room)
    await send(alice, room, "after carol")
    changed = await sync(bob, since=quiet["next_batch"])
    assert _room(changed, room)["summary"] == {
        "m.heroes": [alice.user_id, carol.user_id],
        "m.joined_member_count": 3,
        "m.invited_member_count": 0,
    }


async def test_summary_when_the_change_is_outside_a_limited_timeline(srv: RunningServer) -> None:
    alice, bob, carol = [await numbered_user(srv, n) for n in ("alice", "bob", "carol")]
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    first = await sync(bob)
    await join(carol, room)
    for i in range(4):
        await send(alice, room, f"m{i}")
    limited = await sync(bob, since=first["next_batch"], filter={"room": {"timeline": {"limit": 2}}})
    body = _room(limited, room)
    assert body["timeline"]["limited"] is True
    assert all(e["type"] == "m.room.message" for e in body["timeline"]["events"])
    assert body["summary"]["m.joined_member_count"] == 3


async def test_named_room_summary_has_counts_but_no_heroes(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat", name="A room name")
    await join(bob, room)
    assert _room(await sync(alice), room)["summary"] == {
        "m.joined_member_count": 2, "m.invited_member_count": 0,
    }
