"""GET /notifications (push.md §Listing Notifications): newest first, the matching rule's
actions, read per the user's receipts, only=highlight, from/limit pagination, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import User, create_room, join, new_user, send
from tests.spec_schema import assert_matches_operation

SOUND = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight", "value": True}


@pytest.fixture(scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[User, User, str, list[str]]]:
    """alice and bob in a room; bob sent two messages and one mentioning alice."""
    srv: RunningServer
    async with running_server(tmp_path_factory.mktemp("notifs")) as srv:
        alice, bob = await new_user(srv.client, "alice"), await new_user(srv.client, "bob")
        room = await create_room(alice, preset="public_chat")
        await join(bob, room)
        ids = [await send(bob, room, "one"), await send(bob, room, "two")]
        resp = await bob.put(f"/rooms/{room}/send/m.room.message/m1", {
            "msgtype": "m.text", "body": "hey you", "m.mentions": {"user_ids": [alice.user_id]},
        })
        assert resp.status_code == 200, resp.text
        ids.append(resp.json()["event_id"])
        yield alice, bob, room, ids


async def _list(user: User, **params: Any) -> dict[str, Any]:
    resp = await user.get("/notifications", **params)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_list_contents_newest_first(world: tuple[User, User, str, list[str]]) -> None:
    alice, bob, room, ids = world
    body = await _list(alice)
    assert_matches_operation("client-server/notifications.yaml", "/notifications", "get", 200, body)
    assert "next_token" not in body
    notes = body["notifications"]
    assert [n["event"]["event_id"] for n in notes] == ids[::-1]
    assert [n["actions"] for n in notes] == [["notify", HIGHLIGHT, SOUND], ["notify", SOUND],
                                             ["notify", SOUND]]
    assert {n["room_id"] for n in notes} == {room}
    first = notes[-1]
    assert first["event"]["content"] == {"msgtype": "m.text", "body": "one"}
    assert first["event"]["sender"] == bob.user_id and first["event"]["room_id"] == room
    assert first["ts"] == first["event"]["origin_server_ts"]
    assert sorted(first) == ["actions", "event", "read", "room_id", "ts"]
    # bob's own messages never notify him.
    assert (await _list(bob))["notifications"] == []


async def test_read_follows_receipts_and_only_highlight(
    world: tuple[User, User, str, list[str]],
) -> None:
    alice, _, room, ids = world
    resp = await alice.post(f"/rooms/{room}/receipt/m.read/{ids[1]}", {})
    assert resp.status_code == 200, resp.text
    notes = (await _list(alice))["notifications"]
    assert [n["read"] for n in notes] == [False, True, True]
    only = (await _list(alice, only="highlight"))["notifications"]
    assert [n["event"]["event_id"] for n in only] == [ids[2]]


async def test_pagination(world: tuple[User, User, str, list[str]]) -> None:
    alice, _, _, ids = world
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        body = await _list(alice, **params)
        seen += [n["event"]["event_id"] for n in body["notifications"]]
        pages += 1
        if "next_token" not in body:
            break
        params["from"] = body["next_token"]
    assert seen == ids[::-1] and pages == 2


async def test_errors(world: tuple[User, User, str, list[str]]) -> None:
    alice = world[0]
    for params in ({"from": "nope"}, {"limit": "x"}):
        resp = await alice.get("/notifications", **params)
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM", params
    resp = await alice.client.get("/_matrix/client/v3/notifications")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"


async def test_invite_in_create_room_notifies(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Element starts a direct chat with POST /createRoom {invite, is_direct}: the invitee's
    phone must ring for that invite as for one sent with /invite (.m.rule.invite_for_me)."""
    async with running_server(tmp_path_factory.mktemp("notifs-dm")) as srv:
        alice, carol = await new_user(srv.client, "alice"), await new_user(srv.client, "carol")
        room = await create_room(alice, preset="trusted_private_chat", is_direct=True, invite=[carol.user_id])
        notes = (await _list(carol))["notifications"]
        assert [(n["room_id"], n["event"]["type"], n["event"]["state_key"]) for n in notes] == [
            (room, "m.room.member", carol.user_id)
        ]
        assert notes[0]["event"]["content"]["membership"] == "invite"
        assert notes[0]["actions"] == ["notify", SOUND]
