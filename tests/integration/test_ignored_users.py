"""Ignoring users (modules/ignore_users.md): m.ignored_user_list hides the ignored user's
non-state events from /sync, /messages, /context and unread counts at once, and their invites;
un-ignoring resumes without replaying what was missed, and a fresh initial sync shows it all."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.module_server import server_client
from tests.integration.sync_helpers import User, bodies, create_room, join, new_user, send, sync

_n = itertools.count(1)


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async for c in server_client(tmp_path_factory, "ignore"):
        yield c


async def _users(client: httpx.AsyncClient, *names: str) -> list[User]:
    n = next(_n)
    return [await new_user(client, f"ign{n}{name}") for name in names]


async def _ignore(user: User, *ignored: User) -> None:
    content: dict[str, Any] = {"ignored_users": {u.user_id: {} for u in ignored}}
    resp = await user.put(f"/user/{user.user_id}/account_data/m.ignored_user_list", content)
    assert resp.status_code == 200, resp.text


def _room(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    return body["rooms"]["join"].get(room_id, {})


def _timeline(body: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    return list(_room(body, room_id).get("timeline", {}).get("events", []))


async def test_ignored_users_messages_hidden_state_kept(client: httpx.AsyncClient) -> None:
    alice, bob, carol = await _users(client, "alice", "bob", "carol")
    levels = {"events": {"m.room.topic": 0}}
    room = await create_room(alice, preset="public_chat", power_level_content_override=levels)
    await join(bob, room)
    await join(carol, room)
    before = await send(bob, room, "bob before")
    await send(carol, room, "carol")
    await _ignore(alice, bob)
    resp = await bob.put(f"/rooms/{room}/state/m.room.topic/", {"topic": "bob's topic"})
    assert resp.status_code == 200, resp.text
    await send(bob, room, "bob after")

    timeline = _timeline(await sync(alice), room)
    assert bodies(timeline) == ["carol"]
    # Bob's state events still arrive: his join and the topic he set.
    assert [e["type"] for e in timeline if e["sender"] == bob.user_id] == [
        "m.room.member", "m.room.topic"
    ]
    messages = await alice.get(f"/rooms/{room}/messages", dir="b", limit=50)
    assert bodies(messages.json()["chunk"]) == ["carol"]
    context = await alice.get(f"/rooms/{room}/context/{before}")
    assert context.status_code == 404 and context.json()["errcode"] == "M_NOT_FOUND"
    # Carol does not ignore Bob: she sees everything.
    assert bodies(_timeline(await sync(carol), room)) == ["bob before", "carol", "bob after"]


async def test_ignored_users_no_unread_counts(client: httpx.AsyncClient) -> None:
    alice, bob = await _users(client, "alice", "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    await send(bob, room, "counted")
    await _ignore(alice, bob)
    await send(bob, room, "not counted")
    counts = _room(await sync(alice), room)["unread_notifications"]
    assert counts == {"notification_count": 1, "highlight_count": 0}


async def test_unignore_resumes_without_replay_until_fresh_sync(client: httpx.AsyncClient) -> None:
    alice, bob = await _users(client, "alice", "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    await _ignore(alice, bob)
    first = await sync(alice)
    await send(bob, room, "missed")
    quiet = await sync(alice, since=first["next_batch"])
    assert _timeline(quiet, room) == []
    await _ignore(alice)  # an empty list: nobody ignored any more
    await send(bob, room, "seen")
    later = await sync(alice, since=quiet["next_batch"])
    assert bodies(_timeline(later, room)) == ["seen"]
    # A fresh initial sync (what the spec tells clients to do) brings back what was missed.
    assert bodies(_timeline(await sync(alice), room)) == ["missed", "seen"]


async def test_invites_from_ignored_users_not_sent(client: httpx.AsyncClient) -> None:
    alice, bob, carol = await _users(client, "alice", "bob", "carol")
    await _ignore(alice, bob)
    start = await sync(alice)
    ignored_room = await create_room(bob, invite=[alice.user_id])
    other_room = await create_room(carol, invite=[alice.user_id])
    body = await sync(alice, since=start["next_batch"])
    assert list(body["rooms"]["invite"]) == [other_room]
    assert list((await sync(alice))["rooms"]["invite"]) == [other_room]
    # The invite exists: alice may still join if she wants to.
    resp = await alice.post(f"/rooms/{ignored_room}/join", {})
    assert resp.status_code == 200, resp.text


async def test_malformed_ignore_list_ignores_nobody(client: httpx.AsyncClient) -> None:
    alice, bob = await _users(client, "alice", "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    resp = await alice.put(
        f"/user/{alice.user_id}/account_data/m.ignored_user_list", {"ignored_users": [bob.user_id]}
    )
    assert resp.status_code == 200, resp.text
    await send(bob, room, "still here")
    assert bodies(_timeline(await sync(alice), room)) == ["still here"]
