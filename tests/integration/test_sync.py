"""GET /sync over real HTTP: initial and incremental contents, limited timelines joining up with
/messages, long-poll wake-up, sections for invites and leaves, tokens across restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import (
    User,
    bodies,
    create_room,
    join,
    numbered_user,
    send,
    sync,
)
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sync")) as s:
        yield s


def _check_schema(body: dict) -> None:
    assert_matches_operation("client-server/sync.yaml", "/sync", "get", 200, body)


async def test_initial_sync_contents_and_order(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice, name="Test room")
    sent = [await send(alice, room, f"m{i}", txn=f"init{i}") for i in range(3)]
    body = await sync(alice)
    _check_schema(body)
    joined = body["rooms"]["join"][room]
    timeline = joined["timeline"]["events"]
    assert [e["event_id"] for e in timeline][-3:] == sent
    assert bodies(timeline) == ["m0", "m1", "m2"]
    # Own events carry the transaction id for the device that sent them.
    assert timeline[-1]["unsigned"]["transaction_id"] == "init2"
    assert "room_id" not in timeline[-1]
    types = [e["type"] for e in timeline + joined["state"]["events"]]
    assert "m.room.create" in types and "m.room.name" in types
    assert joined["summary"]["m.joined_member_count"] == 1
    assert joined["unread_notifications"] == {"notification_count": 0, "highlight_count": 0}
    assert body["next_batch"].startswith("s")


async def test_incremental_sync_only_new_events(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    first = await sync(bob)
    await send(alice, room, "hello")
    await send(alice, room, "again")
    second = await sync(bob, since=first["next_batch"])
    _check_schema(second)
    timeline = second["rooms"]["join"][room]["timeline"]
    assert bodies(timeline["events"]) == ["hello", "again"]
    assert timeline["limited"] is False
    assert second["rooms"]["join"][room]["state"]["events"] == []
    # The other user's device gets no transaction id.
    assert "transaction_id" not in timeline["events"][0]["unsigned"]
    third = await sync(bob, since=second["next_batch"])
    assert room not in third["rooms"]["join"]


async def test_limited_timeline_prev_batch_joins_messages(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    first = await sync(alice)
    for i in range(25):
        await send(alice, room, f"n{i}")
    inc = await sync(alice, since=first["next_batch"], filter={"room": {"timeline": {"limit": 5}}})
    timeline = inc["rooms"]["join"][room]["timeline"]
    assert timeline["limited"] is True
    assert bodies(timeline["events"]) == [f"n{i}" for i in range(20, 25)]
    seen = bodies(timeline["events"])
    token = timeline["prev_batch"]
    while True:
        resp = await alice.get(f"/rooms/{room}/messages", dir="b", limit=7, **{"from": token})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert_matches_operation(
            "client-server/message_pagination.yaml", "/rooms/{roomId}/messages", "get", 200, page
        )
        seen = list(reversed(bodies(page["chunk"]))) + seen
        if "end" not in page:
            break
        token = page["end"]
    assert seen == [f"n{i}" for i in range(25)]


async def test_long_poll_wakes_within_100ms(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    since = (await sync(bob))["next_batch"]
    elapsed: list[float] = []
    for _ in range(5):
        poll = asyncio.create_task(sync(bob, since=since, timeout=10_000))
        await asyncio.sleep(0.2)  # the poll is waiting
        assert not poll.done()
        started = time.monotonic()
        await send(alice, room, "wake")
        body = await poll
        elapsed.append(time.monotonic() - started)  # from the start of the send request
        assert bodies(body["rooms"]["join"][room]["timeline"]["events"]) == ["wake"]
        since = body["next_batch"]
    # The median, so one scheduling hiccup of a loaded test machine does not decide the result;
    # a poll that waited for its timeout instead of being woken would take 10 s.
    elapsed.sort()
    assert elapsed[2] < 0.1, f"woke after {[round(e * 1000, 1) for e in elapsed]} ms"
    assert elapsed[-1] < 1.0


async def test_timeout_returns_empty_with_next_batch(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    await create_room(alice)
    since = (await sync(alice))["next_batch"]
    started = time.monotonic()
    body = await sync(alice, since=since, timeout=300)
    assert 0.25 < time.monotonic() - started < 2
    assert body["rooms"]["join"] == {} and body["next_batch"]
    _check_schema(body)


async def test_invite_and_leave_sections(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    room = await create_room(alice, name="Invite only")
    since = (await sync(bob))["next_batch"]
    resp = await alice.post(f"/rooms/{room}/invite", {"user_id": bob.user_id})
    assert resp.status_code == 200, resp.text
    inc = await sync(bob, since=since)
    invite = inc["rooms"]["invite"][room]["invite_state"]["events"]
    assert {"m.room.name", "m.room.create", "m.room.join_rules"} <= {e["type"] for e in invite}
    members = {e["state_key"]: e for e in invite if e["type"] == "m.room.member"}
    assert members[bob.user_id]["content"]["membership"] == "invite"
    # The inviter's own member event comes along (a client shows who invited).
    assert members[alice.user_id]["content"]["membership"] == "join"
    assert set(members) == {alice.user_id, bob.user_id}
    _check_schema(inc)
    await join(bob, room)
    joined = await sync(bob, since=inc["next_batch"])
    # Newly joined: the full state comes with the room.
    assert room in joined["rooms"]["join"]
    state_types = {e["type"] for e in joined["rooms"]["join"][room]["state"]["events"]} | {
        e["type"] for e in joined["rooms"]["join"][room]["timeline"]["events"]
    }
    assert "m.room.create" in state_types and "m.room.name" in state_types
    resp = await bob.post(f"/rooms/{room}/leave", {})
    assert resp.status_code == 200, resp.text
    await send(alice, room, "after bob left")
    left = await sync(bob, since=joined["next_batch"])
    leave = left["rooms"]["leave"][room]["timeline"]["events"]
    assert leave[-1]["type"] == "m.room.member" and leave[-1]["content"]["membership"] == "leave"
    assert "after bob left" not in bodies(leave)
    assert room not in left["rooms"]["join"]
    # Initial syncs list left rooms only with include_leave.
    assert room not in (await sync(bob))["rooms"]["leave"]
    with_leave = await sync(bob, filter={"room": {"include_leave": True}})
    assert room in with_leave["rooms"]["leave"]


async def test_unread_counts_rise_and_reset_with_receipt(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    carol = await numbered_user(srv, "carol")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    await join(carol, room)  # 3 members: .m.rule.message notifies
    since = (await sync(bob))["next_batch"]
    await send(alice, room, "one")
    last = await send(alice, room, f"hey {bob.user_id}")  # mentions bob's user id in the body
    body = await sync(bob, since=since)
    counts = body["rooms"]["join"][room]["unread_notifications"]
    assert counts["notification_count"] == 2
    # The sender's own messages never count for her.
    alice_counts = (await sync(alice))["rooms"]["join"][room]["unread_notifications"]
    assert alice_counts == {"notification_count": 0, "highlight_count": 0}
    resp = await bob.post(f"/rooms/{room}/receipt/m.read/{last}", {})
    assert resp.status_code == 200, resp.text
    after = await sync(bob, since=body["next_batch"])
    assert after["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 0
    receipts = [e for e in after["rooms"]["join"][room]["ephemeral"]["events"] if e["type"] == "m.receipt"]
    assert receipts and last in receipts[0]["content"]
    await send(alice, room, "three")
    again = await sync(bob, since=after["next_batch"])
    assert again["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 1


async def test_summary_highlights_and_typing(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    bob = await numbered_user(srv, "bob")
    carol = await numbered_user(srv, "carol")
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    await join(carol, room)
    first = await sync(bob)
    summary = first["rooms"]["join"][room]["summary"]
    assert summary["m.heroes"] == [alice.user_id, carol.user_id]
    assert summary["m.joined_member_count"] == 3 and summary["m.invited_member_count"] == 0
    resp = await alice.put(
        f"/rooms/{room}/send/m.room.message/mention1",
        {"msgtype": "m.text", "body": "bob!", "m.mentions": {"user_ids": [bob.user_id]}},
    )
    assert resp.status_code == 200, resp.text
    resp = await carol.put(f"/rooms/{room}/typing/{carol.user_id}", {"typing": True, "timeout": 10000})
    assert resp.status_code == 200, resp.text
    body = await sync(bob, since=first["next_batch"])
    joined = body["rooms"]["join"][room]
    assert joined["unread_notifications"] == {"notification_count": 1, "highlight_count": 1}
    assert {"type": "m.typing", "content": {"user_ids": [carol.user_id]}} in joined["ephemeral"]["events"]
    # Carol was not mentioned: a notification without highlight.
    carol_counts = (await sync(carol))["rooms"]["join"][room]["unread_notifications"]
    assert carol_counts == {"notification_count": 1, "highlight_count": 0}


async def test_filtered_timeline_limit_counts_matching_events(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    wanted = await send(alice, room, "My message")
    for i in range(12):
        resp = await alice.put(f"/rooms/{room}/send/a.filler.type/f{i}", {"n": i})
        assert resp.status_code == 200, resp.text
    f = {"room": {"timeline": {"limit": 1, "types": ["m.room.message"]}}}
    timeline = (await sync(alice, filter=f))["rooms"]["join"][room]["timeline"]
    assert [e["event_id"] for e in timeline["events"]] == [wanted]
    assert not timeline["limited"]  # the limit cut no m.room.message (sync.yaml `limited`)


async def test_filter_can_ask_for_the_federation_format(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "alice")
    room = await create_room(alice)
    event_id = await send(alice, room, "Test message")
    body = await sync(alice, filter={"event_format": "federation"})
    event = body["rooms"]["join"][room]["timeline"]["events"][-1]
    assert event["event_id"] == event_id and event["room_id"] == room
    assert {"prev_events", "auth_events", "depth", "hashes", "signatures"} <= set(event)


async def _joined_history_room(srv: RunningServer) -> tuple[User, User, User, str]:
    """A room with history_visibility joined that `syncer` is in: (creator, syncer, invitee)."""
    creator, syncer, invitee = [await numbered_user(srv, n) for n in ("creator", "syncer", "invitee")]
    room = await create_room(creator, preset="public_chat")
    await join(syncer, room)
    resp = await creator.put(
        f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": "joined"}
    )
    assert resp.status_code == 200, resp.text
    return creator, syncer, invitee, room


async def test_current_state_hidden_by_history_visibility_still_in_timeline(
    srv: RunningServer,
) -> None:
    creator, syncer, invitee, room = await _joined_history_room(srv)
    first = await sync(syncer)
    assert (await syncer.post(f"/rooms/{room}/leave", {})).status_code == 200
    await join(invitee, room)  # while syncer is away: hidden by "joined" visibility
    await join(syncer, room)
    timeline = (await sync(syncer, since=first["next_batch"]))["rooms"]["join"][room]["timeline"]
    joins = [e for e in timeline["events"]
             if e["type"] == "m.room.member" and e["state_key"] == invitee.user_id]
    assert joins and joins[0]["content"]["membership"] == "join"


async def test_newly_joined_room_is_limited_unless_its_start_is_in_the_timeline(
    srv: RunningServer,
) -> None:
    """SyTest "Newly joined room has correct timeline in incremental sync": every message fits,
    but the client never saw the room's start, so the timeline is limited (as Synapse)."""
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    for i in range(4):
        await send(alice, room, f"test1-{i}")
    f = {"room": {"timeline": {"types": ["m.room.message"], "limit": 10}, "state": {"types": []}}}
    first = await sync(bob, filter=f)
    for i in range(4):
        await send(alice, room, f"test2-{i}")
    await join(bob, room)
    second = await sync(bob, since=first["next_batch"], filter=f)
    timeline = second["rooms"]["join"][room]["timeline"]
    assert bodies(timeline["events"]) == [f"test{n}-{i}" for n in (1, 2) for i in range(4)]
    assert timeline["limited"] is True
    # The whole room in the timeline: nothing to page back for.
    carol = await numbered_user(srv, "carol")
    first = await sync(carol)
    await join(carol, room)
    whole = {"room": {"timeline": {"limit": 100}}}
    second = await sync(carol, since=first["next_batch"], filter=whole)
    timeline = second["rooms"]["join"][room]["timeline"]
    assert timeline["events"][0]["type"] == "m.room.create" and timeline["limited"] is False


async def test_room_joined_and_left_between_syncs_comes_with_its_state(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    room = await create_room(alice, preset="public_chat")
    resp = await alice.put(f"/rooms/{room}/state/a.test.state", {"my_key": 1})
    assert resp.status_code == 200, resp.text
    f = {"room": {"timeline": {"types": []}, "state": {"types": ["a.test.state"]},
                  "include_leave": True}}
    first = await sync(bob, filter=f)
    await join(bob, room)
    assert (await bob.post(f"/rooms/{room}/leave", {})).status_code == 200
    left = (await sync(bob, since=first["next_batch"], filter=f))["rooms"]["leave"][room]
    assert [e["type"] for e in left["state"]["events"]] == ["a.test.state"]
    # Invited and rejected, never joined: no state.
    carol = await numbered_user(srv, "carol")
    first = await sync(carol, filter=f)
    assert (await alice.post(f"/rooms/{room}/invite", {"user_id": carol.user_id})).status_code == 200
    assert (await carol.post(f"/rooms/{room}/leave", {})).status_code == 200
    left = (await sync(carol, since=first["next_batch"], filter=f))["rooms"]["leave"][room]
    assert left["state"]["events"] == []


async def test_timeline_thinned_by_visibility_reads_further_back(srv: RunningServer) -> None:
    creator, syncer, invitee, room = await _joined_history_room(srv)
    f = {"room": {"timeline": {"limit": 5}}}
    first = await sync(syncer, filter=f)
    assert (await syncer.post(f"/rooms/{room}/leave", {})).status_code == 200
    await join(invitee, room)
    for i in range(12):  # hidden from syncer, and more than a timeline's worth
        await send(creator, room, f"m{i}")
    await join(syncer, room)
    body = await sync(syncer, since=first["next_batch"], filter=f)
    events = body["rooms"]["join"][room]["timeline"]["events"]
    assert any(e["type"] == "m.room.member" and e["state_key"] == invitee.user_id for e in events)
    assert "m5" not in bodies(events)
