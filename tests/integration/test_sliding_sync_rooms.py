"""Simplified sliding sync (MSC4186): how rooms change under a connection. A room moving in the
list, leaving and rejoining, a kick, a state change in required_state, a new invite and its
acceptance, lazy members, room subscriptions and their configs, expanded timelines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sliding_sync_helpers import all_rooms, bodies, sliding_sync
from tests.integration.sync_helpers import (
    create_room,
    join,
    numbered_user,
    send,
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sliding-sync-rooms")) as s:
        yield s


async def _ok(coro: Any) -> Any:
    resp = await coro
    assert resp.status_code == 200, resp.text
    return resp.json()


def _state(room: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], e["state_key"]): e for e in room.get("required_state", [])}


def _members(room: dict[str, Any]) -> set[str]:
    return {k for t, k in _state(room) if t == "m.room.member"}


async def test_a_room_moves_to_the_top_of_the_list_when_it_gets_a_message(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    first = await create_room(alice, name="first")
    second = await create_room(alice, name="second")
    await send(alice, first, "in first")
    await send(alice, second, "in second")
    body = await sliding_sync(alice, all_rooms(end=0))
    assert list(body["rooms"]) == [second]
    assert body["lists"]["all_rooms"]["count"] == 2
    await send(alice, first, "first again")
    moved = await sliding_sync(alice, all_rooms(end=0), pos=body["pos"])
    # The first room is now the newest: it enters the window (never sent, so in full).
    assert list(moved["rooms"]) == [first]
    room = moved["rooms"][first]
    assert room["initial"] is True and room["name"] == "first"
    assert bodies(room) == ["first again"] and room["num_live"] == 1
    await send(alice, second, "second again")
    back = await sliding_sync(alice, all_rooms(end=0), pos=moved["pos"])
    # Back in the window: only what it missed since it was sent, with a gap.
    room = back["rooms"][second]
    assert "initial" not in room
    assert bodies(room) == ["second again"] and room["num_live"] == 1
    assert room["bump_stamp"] > moved["rooms"][first]["bump_stamp"]
    quiet = await sliding_sync(alice, all_rooms(end=0), pos=back["pos"])
    assert quiet["rooms"] == {}


async def test_leaving_sends_the_leave_once_and_rejoining_sends_the_room_again_in_full(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, name="comings and goings", preset="public_chat")
    await join(bob, room)
    body = await sliding_sync(bob, all_rooms(timeline_limit=5))
    await _ok(bob.post(f"/rooms/{room}/leave", {}))
    await send(alice, room, "said while bob was away")
    left = await sliding_sync(bob, all_rooms(timeline_limit=5), pos=body["pos"])
    gone = left["rooms"][room]
    assert gone["membership"] == "leave"
    timeline = gone["timeline"]
    assert [(e["type"], e["content"].get("membership")) for e in timeline] == [
        ("m.room.member", "leave")
    ]
    assert left["lists"]["all_rooms"]["count"] == 1  # it stays listed, as left
    again = await sliding_sync(bob, all_rooms(timeline_limit=5), pos=left["pos"])
    assert again["rooms"] == {}
    # A fresh connection does not list a room the user left by themselves.
    fresh = await sliding_sync(bob, all_rooms(), conn_id="fresh")
    assert fresh["rooms"] == {} and fresh["lists"]["all_rooms"]["count"] == 0
    await join(bob, room)
    rejoined = await sliding_sync(bob, all_rooms(timeline_limit=5), pos=again["pos"])
    back = rejoined["rooms"][room]
    assert back["initial"] is True and back["membership"] == "join"
    assert back["name"] == "comings and goings"
    assert back["timeline"][-1]["state_key"] == bob.user_id
    assert back["timeline"][-1]["content"]["membership"] == "join"


async def test_a_kicked_user_gets_the_kick_and_no_state_after_it(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, name="strict", preset="public_chat")
    await join(bob, room)
    body = await sliding_sync(bob, all_rooms())
    await _ok(
        alice.post(f"/rooms/{room}/kick", {"user_id": bob.user_id, "reason": "bye"})
    )
    await _ok(alice.put(f"/rooms/{room}/state/m.room.name/", {"name": "renamed after"}))
    kicked = await sliding_sync(bob, all_rooms(), pos=body["pos"])
    room_body = kicked["rooms"][room]
    assert room_body["membership"] == "leave"
    assert room_body["timeline"][-1]["content"] == {
        "membership": "leave",
        "reason": "bye",
    }
    assert "name" not in room_body  # the rename came after the kick
    assert "joined_count" not in room_body  # who is in it now is for its members
    # A new connection lists the room too: a kick is news the user may have missed.
    fresh = await sliding_sync(bob, all_rooms(), conn_id="after-kick")
    assert fresh["rooms"][room]["membership"] == "leave"
    assert fresh["rooms"][room]["name"] == "strict"


async def test_a_state_change_in_required_state_is_sent_and_others_are_not(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="old name")
    required = [["m.room.name", ""], ["m.room.member", "$ME"]]
    body = await sliding_sync(alice, all_rooms(required_state=required))
    assert body["rooms"][room]["name"] == "old name"
    await _ok(alice.put(f"/rooms/{room}/state/m.room.name/", {"name": "new name"}))
    changed = await sliding_sync(
        alice, all_rooms(required_state=required), pos=body["pos"]
    )
    room_body = changed["rooms"][room]
    assert room_body["name"] == "new name"
    assert list(_state(room_body)) == [("m.room.name", "")]
    assert _state(room_body)[("m.room.name", "")]["content"] == {"name": "new name"}
    await _ok(
        alice.put(f"/rooms/{room}/state/m.room.topic/", {"topic": "not asked for"})
    )
    topic = await sliding_sync(
        alice, all_rooms(required_state=required), pos=changed["pos"]
    )
    room_body = topic["rooms"][room]
    assert room_body["required_state"] == []
    assert "name" not in room_body  # unchanged: a delta leaves it out
    assert [e["type"] for e in room_body["timeline"]] == ["m.room.topic"]
    # Removing the name is sent as name null.
    await _ok(alice.put(f"/rooms/{room}/state/m.room.name/", {}))
    removed = await sliding_sync(
        alice, all_rooms(required_state=required), pos=topic["pos"]
    )
    assert removed["rooms"][room]["name"] is None


async def test_asking_for_more_state_sends_the_newly_matched_state_at_once(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="n", topic="t")
    body = await sliding_sync(alice, all_rooms(required_state=[["m.room.name", ""]]))
    assert list(_state(body["rooms"][room])) == [("m.room.name", "")]
    more = all_rooms(required_state=[["m.room.name", ""], ["m.room.topic", ""]])
    grown = await sliding_sync(alice, more, pos=body["pos"])
    room_body = grown["rooms"][room]
    assert list(_state(room_body)) == [("m.room.topic", "")]
    assert room_body["timeline"] == [] and "initial" not in room_body
    assert (await sliding_sync(alice, more, pos=grown["pos"]))["rooms"] == {}


async def test_wildcards_all_state_and_every_state_key(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    space = await create_room(alice, name="space", creation_content={"type": "m.space"})
    room = await create_room(alice, name="child", preset="public_chat")
    await _ok(alice.put(f"/rooms/{room}/state/m.space.parent/{space}", {"via": ["x"]}))
    await join(bob, room)
    every_parent = await sliding_sync(
        alice, all_rooms(required_state=[["m.space.parent", "*"]])
    )
    assert list(_state(every_parent["rooms"][room])) == [("m.space.parent", space)]
    everything = await sliding_sync(alice, all_rooms(required_state=[["*", "*"]]))
    keys = set(_state(everything["rooms"][room]))
    assert {("m.room.create", ""), ("m.room.history_visibility", "")} <= keys
    assert _members(everything["rooms"][room]) == {alice.user_id, bob.user_id}
    # Every type, members lazily: only the timeline's sender among the members.
    lazy = await sliding_sync(
        alice, all_rooms(required_state=[["*", "*"], ["m.room.member", "$LAZY"]])
    )
    assert ("m.room.create", "") in _state(lazy["rooms"][room])
    assert _members(lazy["rooms"][room]) == {bob.user_id}


async def test_a_new_invite_arrives_with_its_stripped_state_then_the_join_in_full(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    body = await sliding_sync(bob, all_rooms())
    assert body["rooms"] == {}
    waiting = asyncio.create_task(
        sliding_sync(bob, all_rooms(), pos=body["pos"], timeout=10_000)
    )
    room = await create_room(
        alice, name="invite only", invite=[bob.user_id], is_direct=True
    )
    invited = await waiting
    room_body = invited["rooms"][room]
    assert room_body["membership"] == "invite" and room_body["initial"] is True
    assert room_body["is_dm"] is True  # the invite says is_direct
    assert room_body["name"] == "invite only"  # from the stripped state
    stripped = {(e["type"], e["state_key"]): e for e in room_body["invite_state"]}
    assert stripped[("m.room.name", "")]["content"] == {"name": "invite only"}
    assert stripped[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
    # Who invited: the inviter's own member event comes along.
    assert stripped[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
    assert "timeline" not in room_body and "required_state" not in room_body
    assert invited["lists"]["all_rooms"]["count"] == 1
    # An is_invite list holds it; a list without invites does not.
    lists = {
        "lists": {
            "invites": {
                "timeline_limit": 0,
                "required_state": [],
                "filters": {"is_invite": True},
            },
            "joined": {
                "timeline_limit": 0,
                "required_state": [],
                "filters": {"is_invite": False},
            },
        }
    }
    split = await sliding_sync(bob, lists, conn_id="split")
    assert split["lists"] == {"invites": {"count": 1}, "joined": {"count": 0}}
    assert split["rooms"][room]["lists"] == ["invites"]
    same = await sliding_sync(bob, all_rooms(), pos=invited["pos"])
    assert same["rooms"] == {}
    await join(bob, room)
    joined = await sliding_sync(bob, all_rooms(), pos=same["pos"])
    room_body = joined["rooms"][room]
    assert room_body["membership"] == "join" and room_body["initial"] is True
    assert room_body["name"] == "invite only" and "invite_state" not in room_body
    assert room_body["joined_count"] == 2


async def test_lazy_members_are_sent_once_and_kept_up_to_date(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    carol = await numbered_user(srv, "carol")
    dave = await numbered_user(srv, "dave")
    room = await create_room(alice, name="lazy", preset="public_chat")
    for user in (dave, bob, carol):
        await join(user, room)
    await send(carol, room, "carol speaks")
    lazy = all_rooms(timeline_limit=2, required_state=[["m.room.member", "$LAZY"]])
    body = await sliding_sync(bob, lazy)
    # Carol joined and spoke: the timeline's only sender and target.
    assert _members(body["rooms"][room]) == {carol.user_id}
    await send(carol, room, "carol again")
    await send(alice, room, "alice speaks")
    more = await sliding_sync(bob, lazy, pos=body["pos"])
    assert bodies(more["rooms"][room]) == ["carol again", "alice speaks"]
    # Carol's member event was sent already: only alice's is new.
    assert _members(more["rooms"][room]) == {alice.user_id}
    resp = await carol.put(
        f"/rooms/{room}/state/m.room.member/{carol.user_id}",
        {"membership": "join", "displayname": "Carol C."},
    )
    assert resp.status_code == 200, resp.text
    renamed = await sliding_sync(bob, lazy, pos=more["pos"])
    state = _state(renamed["rooms"][room])
    assert (
        state[("m.room.member", carol.user_id)]["content"]["displayname"] == "Carol C."
    )
    # Dave's member event never went out; his leave shows him as the timeline's target.
    await _ok(dave.post(f"/rooms/{room}/leave", {}))
    left = await sliding_sync(bob, lazy, pos=renamed["pos"])
    assert _members(left["rooms"][room]) == {dave.user_id}


async def test_room_subscription_with_a_larger_timeline_and_all_state(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, name="subscribed", preset="public_chat")
    other = await create_room(alice, name="other", preset="public_chat")
    await join(bob, room)
    await join(bob, other)
    for i in range(6):
        await send(alice, room, f"m{i}")
    await send(alice, other, "newest elsewhere")
    body = await sliding_sync(bob, all_rooms(end=0))
    assert list(body["rooms"]) == [other]
    # Opening the room: a subscription with a longer timeline (Element X's room screen).
    sub = {
        **all_rooms(end=0),
        "room_subscriptions": {
            room: {"timeline_limit": 4, "required_state": [["*", "*"]]},
            "!nowhere:test.localhost": {"timeline_limit": 4, "required_state": []},
        },
    }
    opened = await sliding_sync(bob, sub, pos=body["pos"])
    assert set(opened["rooms"]) == {room}  # a room the user cannot see is ignored
    room_body = opened["rooms"][room]
    assert "lists" not in room_body  # in no list window, there by subscription
    assert bodies(room_body) == ["m2", "m3", "m4", "m5"]
    assert room_body["limited"] is True and room_body["initial"] is True
    assert _members(room_body) == {alice.user_id, bob.user_id}
    # /messages from prev_batch goes on where the timeline starts.
    older = await _ok(
        bob.get(
            f"/rooms/{room}/messages",
            dir="b",
            limit=2,
            **{"from": room_body["prev_batch"]},
        )
    )
    assert [e["content"].get("body") for e in older["chunk"]] == ["m1", "m0"]


async def test_a_larger_timeline_limit_expands_the_timeline_of_a_room_sent_with_less(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="history")
    for i in range(5):
        await send(alice, room, f"m{i}")
    body = await sliding_sync(alice, all_rooms(timeline_limit=1))
    assert bodies(body["rooms"][room]) == ["m4"]
    sub = {
        **all_rooms(timeline_limit=1),
        "room_subscriptions": {room: {"timeline_limit": 3, "required_state": []}},
    }
    expanded = await sliding_sync(alice, sub, pos=body["pos"])
    room_body = expanded["rooms"][room]
    assert bodies(room_body) == ["m2", "m3", "m4"]
    assert room_body["unstable_expanded_timeline"] is True
    assert room_body["lists"] == ["all_rooms"] and "initial" not in room_body
    assert (await sliding_sync(alice, sub, pos=expanded["pos"]))["rooms"] == {}
    await send(alice, room, "m5")
    new = await sliding_sync(alice, sub, pos=expanded["pos"])
    assert bodies(new["rooms"][room]) == ["m5"]
    assert "unstable_expanded_timeline" not in new["rooms"][room]


async def test_timeline_limit_zero_still_reports_activity(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    body = await sliding_sync(alice, all_rooms(timeline_limit=0))
    assert body["rooms"][room]["timeline"] == []
    await send(alice, room, "hi")
    later = await sliding_sync(alice, all_rooms(timeline_limit=0), pos=body["pos"])
    room_body = later["rooms"][room]
    assert room_body["timeline"] == [] and room_body["limited"] is True
    assert room_body["bump_stamp"] > body["rooms"][room]["bump_stamp"]


async def test_unread_counts_follow_mentions_and_receipts(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    body = await sliding_sync(bob, all_rooms())
    assert body["rooms"][room]["notification_count"] == 0
    await send(alice, room, "plain")
    resp = await alice.put(
        f"/rooms/{room}/send/m.room.message/mention1",
        {
            "msgtype": "m.text",
            "body": f"hey {bob.user_id}",
            "m.mentions": {"user_ids": [bob.user_id]},
        },
    )
    assert resp.status_code == 200
    counted = await sliding_sync(bob, all_rooms(), pos=body["pos"])
    room_body = counted["rooms"][room]
    assert room_body["notification_count"] == 2 and room_body["highlight_count"] == 1
    last = resp.json()["event_id"]
    await _ok(bob.post(f"/rooms/{room}/receipt/m.read/{last}", {}))
    fresh = await sliding_sync(bob, all_rooms(), conn_id="after-receipt")
    assert fresh["rooms"][room]["notification_count"] == 0
    assert fresh["rooms"][room]["highlight_count"] == 0


async def test_a_knock_shows_its_knock_state(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(
        alice, name="knock here", preset="private_chat", room_version="10"
    )
    await _ok(
        alice.put(f"/rooms/{room}/state/m.room.join_rules/", {"join_rule": "knock"})
    )
    await _ok(bob.post(f"/knock/{room}", {"reason": "let me in"}))
    body = await sliding_sync(bob, all_rooms())
    room_body = body["rooms"][room]
    assert room_body["membership"] == "knock" and room_body["initial"] is True
    stripped = {(e["type"], e["state_key"]): e for e in room_body["knock_state"]}
    assert stripped[("m.room.name", "")]["content"] == {"name": "knock here"}
    assert stripped[("m.room.member", bob.user_id)]["content"]["membership"] == "knock"
    assert "invite_state" not in room_body and "timeline" not in room_body
    # Let in: the room comes again, joined and in full.
    await _ok(alice.post(f"/rooms/{room}/invite", {"user_id": bob.user_id}))
    await join(bob, room)
    joined = await sliding_sync(bob, all_rooms(), pos=body["pos"])
    assert joined["rooms"][room]["membership"] == "join"
    assert joined["rooms"][room]["initial"] is True


async def test_avatar_is_sent_first_and_again_only_when_it_changes(
    srv: RunningServer,
) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="pictured")
    await _ok(
        alice.put(f"/rooms/{room}/state/m.room.avatar/", {"url": "mxc://test/one"})
    )
    required = all_rooms(required_state=[["m.room.avatar", ""]])
    body = await sliding_sync(alice, required)
    assert body["rooms"][room]["avatar"] == "mxc://test/one"
    await send(alice, room, "no avatar change")
    quiet = await sliding_sync(alice, required, pos=body["pos"])
    assert "avatar" not in quiet["rooms"][room]
    await _ok(
        alice.put(f"/rooms/{room}/state/m.room.avatar/", {"url": "mxc://test/two"})
    )
    changed = await sliding_sync(alice, required, pos=quiet["pos"])
    assert changed["rooms"][room]["avatar"] == "mxc://test/two"


async def test_any_event_moves_a_room_up_but_only_bump_types_its_bump_stamp(
    srv: RunningServer,
) -> None:
    """MSC4186 §Activity ordering: rooms are ordered by their last event ("Rooms are not
    ordered by bump_stamp"), as Synapse does; bump_stamp counts only the MSC's event types."""
    alice = await numbered_user(srv, "alice")
    first = await create_room(alice, name="first")
    second = await create_room(alice, name="second")
    await send(alice, first, "older message")
    await send(alice, second, "newer message")
    body = await sliding_sync(alice, all_rooms(end=1))
    assert list(body["rooms"]) == [second, first]
    stamp = body["rooms"][first]["bump_stamp"]
    assert body["rooms"][second]["bump_stamp"] > stamp
    # A topic change and a reaction are activity: the room comes first, its bump_stamp stays.
    await _ok(
        alice.put(f"/rooms/{first}/state/m.room.topic/", {"topic": "quiet change"})
    )
    await _ok(alice.put(f"/rooms/{first}/send/m.reaction/r1", {}))
    moved = await sliding_sync(alice, all_rooms(end=0), conn_id="order")
    assert list(moved["rooms"]) == [first]
    assert moved["rooms"][first]["bump_stamp"] == stamp
    resp = await alice.put(
        f"/rooms/{first}/send/m.room.encrypted/e1",
        {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "x",
            "session_id": "s",
            "sender_key": "k",
            "device_id": "D",
        },
    )
    assert resp.status_code == 200, resp.text
    bumped = await sliding_sync(alice, all_rooms(end=0), conn_id="order2")
    assert list(bumped["rooms"]) == [first]
    assert bumped["rooms"][first]["bump_stamp"] > stamp


async def test_heroes_fall_back_to_those_who_left(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    dm = await create_room(alice, preset="trusted_private_chat", invite=[bob.user_id])
    await join(bob, dm)
    body = await sliding_sync(alice, all_rooms())
    assert [h["user_id"] for h in body["rooms"][dm]["heroes"]] == [bob.user_id]
    await _ok(bob.post(f"/rooms/{dm}/leave", {}))
    left = await sliding_sync(alice, all_rooms(), pos=body["pos"])
    room = left["rooms"][dm]
    # Nobody else is in it now: the one who left still names it (MSC4186 heroes).
    assert room["heroes"] == [{"user_id": bob.user_id}]
    assert room["joined_count"] == 1 and room["invited_count"] == 0
