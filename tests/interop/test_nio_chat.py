"""matrix-nio (a real Matrix client library) chats through dendrite-lite (issue 4).

Two users register and log in with nio, create a room with an invite, join, exchange 200
messages seen in order through /sync, back-paginate all of them without gaps or duplicates,
see each other's typing, receipts and display name through /sync, and a /sync long-poll wakes
within 100 ms of a send. Every nio call must come back as nio's success Response class: nio
checks each response and event against its own JSON schemas, so this is an interop check of
the wire format, and the autouse fixture nio_validation (nio_helpers.py) fails a test on any
schema complaint nio logs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from nio import (  # type: ignore[import-untyped]
    AsyncClient,
    DevicesResponse,
    FullyReadEvent,
    InviteMemberEvent,
    JoinedMembersResponse,
    JoinedRoomsResponse,
    JoinResponse,
    LogoutResponse,
    MatrixRoom,
    MessageDirection,
    PresenceGetResponse,
    PresenceSetResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    ReceiptEvent,
    RegisterResponse,
    RedactedEvent,
    RedactionEvent,
    Response,
    RoomContextResponse,
    RoomCreateEvent,
    RoomCreateResponse,
    RoomForgetResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomLeaveResponse,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPutStateResponse,
    RoomReadMarkersResponse,
    RoomRedactResponse,
    RoomSendResponse,
    RoomTopicEvent,
    RoomTypingResponse,
    RoomVisibility,
    SyncResponse,
    TypingNoticeEvent,
    UpdateReceiptMarkerResponse,
    UploadFilterResponse,
    WhoamiError,
    WhoamiResponse,
)
from nio.api import ReceiptType  # type: ignore[import-untyped]

from dendrite_lite.users.passwords import fast_hashing_for_tests
from dendrite_lite.users.registration_tokens import create_token
from dendrite_lite.users.sessions import now_ms
from tests.conftest import StartServer
from tests.integration.account_helpers import server_storage
from tests.interop.nio_helpers import (
    PASSWORD,
    NioUser,
    NioValidationLog,
    bad_events,
    expect,
    login_nio_user,
    new_nio_client,
    nio_validation,  # noqa: F401  (an autouse fixture: every test here fails on nio's complaints)
    register_nio_user,
    sync_until,
)

MESSAGES = 200
# A timeline limit no incremental sync of these tests can reach: a live client must see every
# message through /sync itself, never a `limited` gap it would have to fill from /messages.
NO_GAP_FILTER: dict[str, Any] = {"room": {"timeline": {"limit": 1000}}}


@dataclass
class Chat:
    url: str
    alice: NioUser
    bob: NioUser
    room_id: str


async def create_room_and_join(alice: NioUser, bob: NioUser) -> str:
    """alice creates a room inviting bob; bob sees the invite through /sync and joins."""
    created = expect(
        await alice.client.room_create(name="nio chat", invite=[bob.user_id]), RoomCreateResponse
    )
    room_id = created.room_id
    invite = await sync_until(bob.client, lambda r: r.rooms.invite.get(room_id))
    members = [e for e in invite.invite_state if isinstance(e, InviteMemberEvent)]
    assert any(
        e.state_key == bob.user_id and e.membership == "invite" and e.sender == alice.user_id
        for e in members
    ), invite.invite_state
    assert room_id in bob.client.invited_rooms

    joined = expect(await bob.client.join(room_id), JoinResponse)
    assert joined.room_id == room_id
    await sync_until(bob.client, lambda r: r.rooms.join.get(room_id))
    await sync_until(
        alice.client, lambda r: _member_event(r, room_id, bob.user_id, "join")
    )
    return room_id


def _member_event(
    resp: SyncResponse, room_id: str, user_id: str, membership: str
) -> RoomMemberEvent | None:
    info = resp.rooms.join.get(room_id)
    if info is None:
        return None
    for event in [*info.state, *info.timeline.events]:
        if (
            isinstance(event, RoomMemberEvent)
            and event.state_key == user_id
            and event.membership == membership
        ):
            return event
    return None


@pytest.fixture
async def chat(start_server: StartServer) -> AsyncIterator[Chat]:
    with fast_hashing_for_tests():
        srv = await start_server({"registration.mode": "open", "ratelimit.enabled": False})
        url = srv.listening.client_url
        alice = await register_nio_user(url, "alice")
        bob = await register_nio_user(url, "bob")
        try:
            room_id = await create_room_and_join(alice, bob)
            yield Chat(url, alice, bob, room_id)
        finally:
            await alice.client.close()
            await bob.client.close()


async def send_text(user: NioUser, room_id: str, body: str) -> str:
    resp = expect(
        await user.client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body}),
        RoomSendResponse,
    )
    assert resp.event_id.startswith("$") and resp.room_id == room_id
    return resp.event_id


async def send_conversation(chat: Chat, count: int) -> list[tuple[str, str, str]]:
    """alice and bob take turns; returns (sender, body, event_id) in send order."""
    sent = []
    for i in range(count):
        user = chat.alice if i % 2 == 0 else chat.bob
        body = f"message {i:03d} from {user.user_id}"
        sent.append((user.user_id, body, await send_text(user, chat.room_id, body)))
    return sent


async def wait_for(
    condition: Callable[[], bool], tasks: list[asyncio.Task[Any]], within_s: float
) -> None:
    """Wait until `condition()` holds; a background task dying fails the test at once."""
    deadline = time.monotonic() + within_s
    while not condition():
        for task in tasks:
            if task.done():
                task.result()  # raises what killed it
                raise AssertionError("sync_forever returned early")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s")
        await asyncio.sleep(0.01)


# --- accounts -------------------------------------------------------------------------------


async def test_register_login_whoami_logout(chat: Chat, nio_validation: NioValidationLog) -> None:
    whoami = expect(await chat.alice.client.whoami(), WhoamiResponse)
    assert (whoami.user_id, whoami.device_id, whoami.is_guest) == (
        chat.alice.user_id, chat.alice.device_id, False
    )

    second = await login_nio_user(chat.url, chat.alice.user_id)
    try:
        assert second.user_id == chat.alice.user_id
        assert second.device_id != chat.alice.device_id
        whoami = expect(await second.client.whoami(), WhoamiResponse)
        assert (whoami.user_id, whoami.device_id) == (chat.alice.user_id, second.device_id)

        token = second.client.access_token
        expect(await second.client.logout(), LogoutResponse)
        # The logged-out token is dead (401 M_UNKNOWN_TOKEN); nio forgets it, so put it back.
        second.client.access_token = token
        dead = expect(await second.client.whoami(), WhoamiError)
        assert dead.status_code == "M_UNKNOWN_TOKEN"
        # nio first tries the error body as a whoami answer; that complaint is expected.
        assert nio_validation.messages == [
            "nio.responses: Error validating response: 'user_id' is a required property"
        ]
        nio_validation.messages.clear()
    finally:
        await second.client.close()

    # The first device is untouched by the second one's logout.
    whoami = expect(await chat.alice.client.whoami(), WhoamiResponse)
    assert whoami.device_id == chat.alice.device_id


async def test_register_with_token_on_a_token_gated_server(
    start_server: StartServer, nio_validation: NioValidationLog
) -> None:
    with fast_hashing_for_tests():
        srv = await start_server({"registration.mode": "token", "ratelimit.enabled": False})
        await create_token(server_storage(srv), now=now_ms(), token="invite-1", uses_allowed=1)
        client = new_nio_client(srv.listening.client_url, "carol")
        try:
            try:
                resp = await client.register_with_token("carol", PASSWORD, "invite-1")
            finally:
                # Whatever the outcome, this test owns the complaints nio logged on the way.
                complaints = list(nio_validation.messages)
                nio_validation.messages.clear()
            expect(resp, RegisterResponse)
            assert complaints == []
            whoami = expect(await client.whoami(), WhoamiResponse)
            assert whoami.user_id == "@carol:test.localhost"
        finally:
            await client.close()


# --- rooms ----------------------------------------------------------------------------------


async def test_invite_join_joined_rooms_and_room_state(chat: Chat) -> None:
    for user in (chat.alice, chat.bob):
        rooms = expect(await user.client.joined_rooms(), JoinedRoomsResponse)
        assert rooms.rooms == [chat.room_id]
        # nio's own room model, built from /sync alone, knows both members and the name.
        room = user.client.rooms[chat.room_id]
        assert set(room.users) == {chat.alice.user_id, chat.bob.user_id}
        assert room.name == "nio chat"

    state = expect(await chat.bob.client.room_get_state(chat.room_id), RoomGetStateResponse)
    assert state.room_id == chat.room_id
    by_key = {(e["type"], e["state_key"]): e for e in state.events}
    for key in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.name", ""),
    ]:
        assert key in by_key, sorted(by_key)
    assert by_key[("m.room.member", chat.alice.user_id)]["content"]["membership"] == "join"
    assert by_key[("m.room.member", chat.bob.user_id)]["content"]["membership"] == "join"
    assert by_key[("m.room.name", "")]["content"] == {"name": "nio chat"}
    # private_chat (nio's default preset for a private room) -> invite-only.
    assert by_key[("m.room.join_rules", "")]["content"]["join_rule"] == "invite"

    create = expect(
        await chat.bob.client.room_get_state_event(chat.room_id, "m.room.create"),
        RoomGetStateEventResponse,
    )
    assert create.room_id == chat.room_id
    assert create.content == by_key[("m.room.create", "")]["content"]


# --- messages -------------------------------------------------------------------------------


async def test_200_messages_seen_in_order_through_sync(chat: Chat) -> None:
    seen: dict[str, list[tuple[str, str, str]]] = {chat.alice.user_id: [], chat.bob.user_id: []}
    responses: list[Response] = []

    def collector(user: NioUser) -> Callable[[MatrixRoom, RoomMessageText], Any]:
        async def on_message(room: MatrixRoom, event: RoomMessageText) -> None:
            assert room.room_id == chat.room_id
            seen[user.user_id].append((event.sender, event.body, event.event_id))
        return on_message

    async def on_response(resp: Any) -> None:
        # sync_forever also hands over the (empty) list of to-device sends: not a response.
        if not isinstance(resp, list):
            responses.append(resp)

    for user in (chat.alice, chat.bob):
        user.client.add_event_callback(collector(user), RoomMessageText)
        user.client.add_response_callback(on_response)
    syncing = [
        asyncio.create_task(u.client.sync_forever(timeout=30_000, sync_filter=NO_GAP_FILTER))
        for u in (chat.alice, chat.bob)
    ]
    try:
        sent = await send_conversation(chat, MESSAGES)
        await wait_for(
            lambda: all(len(s) >= MESSAGES for s in seen.values()), syncing, within_s=20
        )
    finally:
        for task in syncing:
            task.cancel()
        await asyncio.gather(*syncing, return_exceptions=True)

    assert seen[chat.alice.user_id] == sent
    assert seen[chat.bob.user_id] == sent
    syncs = [r for r in responses if isinstance(r, SyncResponse)]
    assert syncs and len(syncs) == len(responses), [r for r in responses if r not in syncs]
    for resp in syncs:
        info = resp.rooms.join.get(chat.room_id)
        if info is not None:
            assert not info.timeline.limited
            assert not bad_events(info.timeline.events)


async def paginate_back(
    user: NioUser, room_id: str, start: str, limit: int
) -> tuple[list[Any], list[RoomMessagesResponse]]:
    """/messages dir=b from `start` until the server omits `end` (the start of the room)."""
    events: list[Any] = []
    pages: list[RoomMessagesResponse] = []
    token: str | None = start
    while token is not None:
        assert len(pages) < 100, "pagination does not terminate"
        page = expect(
            await user.client.room_messages(room_id, start=token, limit=limit,
                                            direction=MessageDirection.back),
            RoomMessagesResponse,
        )
        assert page.start == token
        assert len(page.chunk) <= limit
        assert not bad_events(page.chunk)
        pages.append(page)
        events.extend(page.chunk)
        token = page.end
    return events, pages


def messages_of(events: list[Any]) -> list[tuple[str, str, str]]:
    return [(e.sender, e.body, e.event_id) for e in events if isinstance(e, RoomMessageText)]


async def test_back_paginate_all_200_without_gaps_or_duplicates(chat: Chat) -> None:
    sent = await send_conversation(chat, MESSAGES)

    # A fresh device of bob does what a client does on start: an initial sync showing the
    # latest few messages (limited, with prev_batch), then scrolls back to the room's start.
    fresh = await login_nio_user(chat.url, chat.bob.user_id)
    try:
        initial = expect(
            await fresh.client.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 10}}}),
            SyncResponse,
        )
        timeline = initial.rooms.join[chat.room_id].timeline
        assert timeline.limited and timeline.prev_batch
        assert messages_of(timeline.events) == sent[-10:]

        older, pages = await paginate_back(fresh, chat.room_id, timeline.prev_batch, limit=17)
        assert len(pages) > MESSAGES // 17
        # Newest first going back; the two halves meet without a gap or an overlap.
        assert messages_of(older) == sent[-11::-1]
        ids = [e.event_id for e in [*older, *timeline.events]]
        assert len(ids) == len(set(ids)), "duplicate events"
        # It really went back to the beginning: the last page ends with the room's creation.
        assert isinstance(older[-1], RoomCreateEvent)

        # The same from the sync token itself (next_batch) in pages of 50: exactly the 200.
        everything, _ = await paginate_back(fresh, chat.room_id, initial.next_batch, limit=50)
        assert messages_of(everything) == sent[::-1]
        ids = [e.event_id for e in everything]
        assert len(ids) == len(set(ids)), "duplicate events"
    finally:
        await fresh.client.close()


# --- ephemeral: typing and receipts ---------------------------------------------------------


def typing_in(room_id: str) -> Callable[[SyncResponse], list[str] | None]:
    def found(resp: SyncResponse) -> list[str] | None:
        info = resp.rooms.join.get(room_id)
        notices = [e for e in info.ephemeral if isinstance(e, TypingNoticeEvent)] if info else []
        return notices[-1].users if notices else None
    return found


async def test_typing_seen_through_sync(chat: Chat) -> None:
    expect(await chat.alice.client.room_typing(chat.room_id, True, 30_000), RoomTypingResponse)
    assert await sync_until(chat.bob.client, typing_in(chat.room_id)) == [chat.alice.user_id]
    assert chat.bob.client.rooms[chat.room_id].typing_users == [chat.alice.user_id]

    expect(await chat.bob.client.room_typing(chat.room_id, True, 30_000), RoomTypingResponse)
    users = await sync_until(chat.alice.client, typing_in(chat.room_id))
    assert sorted(users) == sorted([chat.alice.user_id, chat.bob.user_id])

    for user in (chat.alice, chat.bob):
        expect(await user.client.room_typing(chat.room_id, False), RoomTypingResponse)

    def nobody_typing(resp: SyncResponse) -> list[str] | None:
        users = typing_in(chat.room_id)(resp)
        return users if users == [] else None

    # Both stopped: bob is told that nobody types any more (an empty typing notice).
    assert await sync_until(chat.bob.client, nobody_typing) == []
    assert chat.bob.client.rooms[chat.room_id].typing_users == []


def receipts_in(room_id: str, predicate: Callable[[Any], bool]) -> Callable[[SyncResponse], Any]:
    def found(resp: SyncResponse) -> Any:
        info = resp.rooms.join.get(room_id)
        for event in info.ephemeral if info else []:
            if isinstance(event, ReceiptEvent):
                for receipt in event.receipts:
                    if predicate(receipt):
                        return receipt
        return None
    return found


async def test_read_receipts_seen_through_sync(chat: Chat) -> None:
    first = await send_text(chat.alice, chat.room_id, "please read this")
    expect(
        await chat.bob.client.update_receipt_marker(chat.room_id, first, ReceiptType.read),
        UpdateReceiptMarkerResponse,
    )
    receipt = await sync_until(
        chat.alice.client,
        receipts_in(chat.room_id, lambda r: r.user_id == chat.bob.user_id and r.event_id == first),
    )
    assert receipt.receipt_type == "m.read"
    assert isinstance(receipt.timestamp, int) and receipt.timestamp > 0
    assert receipt.thread_id == "main"  # nio sends thread_id "main"; the server keeps it

    # bob's private receipt is for bob only; his next public one reaches alice, and alice
    # must never have been shown the private one in between.
    second = await send_text(chat.alice, chat.room_id, "and this")
    third = await send_text(chat.alice, chat.room_id, "and this too")
    expect(
        await chat.bob.client.room_read_markers(chat.room_id, second, private_read_event=second),
        RoomReadMarkersResponse,
    )
    private = await sync_until(
        chat.bob.client,
        receipts_in(chat.room_id, lambda r: r.receipt_type == "m.read.private"),
    )
    assert (private.user_id, private.event_id) == (chat.bob.user_id, second)
    expect(
        await chat.bob.client.update_receipt_marker(chat.room_id, third, ReceiptType.read),
        UpdateReceiptMarkerResponse,
    )
    leaked: list[Any] = []

    def public_third(resp: SyncResponse) -> Any:
        leaked.extend(
            r for r in _all_receipts(resp, chat.room_id) if r.receipt_type == "m.read.private"
        )
        return receipts_in(chat.room_id, lambda r: r.event_id == third)(resp)

    receipt = await sync_until(chat.alice.client, public_third)
    assert (receipt.user_id, receipt.receipt_type) == (chat.bob.user_id, "m.read")
    assert leaked == []

    # alice moves her fully-read marker and read receipt with /read_markers: bob sees the
    # receipt, alice sees m.fully_read in her room account data.
    expect(
        await chat.alice.client.room_read_markers(chat.room_id, third, read_event=third),
        RoomReadMarkersResponse,
    )
    receipt = await sync_until(
        chat.bob.client,
        receipts_in(chat.room_id, lambda r: r.user_id == chat.alice.user_id),
    )
    assert (receipt.event_id, receipt.receipt_type) == (third, "m.read")

    def fully_read(resp: SyncResponse) -> FullyReadEvent | None:
        info = resp.rooms.join.get(chat.room_id)
        marks = [e for e in info.account_data if isinstance(e, FullyReadEvent)] if info else []
        return marks[-1] if marks else None

    assert (await sync_until(chat.alice.client, fully_read)).event_id == third


def _all_receipts(resp: SyncResponse, room_id: str) -> list[Any]:
    info = resp.rooms.join.get(room_id)
    events = info.ephemeral if info else []
    return [r for e in events if isinstance(e, ReceiptEvent) for r in e.receipts]


# --- profile --------------------------------------------------------------------------------


async def test_displayname_change_seen_by_the_other_user(chat: Chat) -> None:
    expect(
        await chat.alice.client.set_displayname("Alice in Wonderland"),
        ProfileSetDisplayNameResponse,
    )
    member = await sync_until(
        chat.bob.client,
        lambda r: next(
            (e for e in _members(r, chat.room_id, chat.alice.user_id)
             if e.content.get("displayname") == "Alice in Wonderland"),
            None,
        ),
    )
    assert member.membership == "join" and member.sender == chat.alice.user_id
    assert chat.bob.client.rooms[chat.room_id].user_name(chat.alice.user_id) == (
        "Alice in Wonderland"
    )
    profile = expect(
        await chat.bob.client.get_displayname(chat.alice.user_id), ProfileGetDisplayNameResponse
    )
    assert profile.displayname == "Alice in Wonderland"


def _members(resp: SyncResponse, room_id: str, user_id: str) -> list[RoomMemberEvent]:
    info = resp.rooms.join.get(room_id)
    events = [*info.state, *info.timeline.events] if info else []
    return [e for e in events if isinstance(e, RoomMemberEvent) and e.state_key == user_id]


# --- long-poll wake-up ----------------------------------------------------------------------


async def test_sync_long_poll_wakes_within_100ms_of_a_send(chat: Chat) -> None:
    """Measured from just before alice's room_send to the moment bob's pending /sync
    (timeout 30 s) has returned with the event, through nio on both sides."""
    bob = chat.bob.client
    latencies_ms: list[float] = []
    for i in range(15):
        pending = await _parked_sync(bob)
        started = time.perf_counter()
        event_id = await send_text(chat.alice, chat.room_id, f"wake up {i}")
        resp = expect(await pending, SyncResponse)
        # Something else (alice's presence, say) may wake the poll first: keep polling, the
        # clock keeps running until bob holds the event.
        while chat.room_id not in resp.rooms.join:
            resp = expect(await bob.sync(timeout=30_000, sync_filter=NO_GAP_FILTER), SyncResponse)
        woke = time.perf_counter()
        timeline = resp.rooms.join[chat.room_id].timeline.events
        assert [e.event_id for e in timeline] == [event_id]
        latencies_ms.append((woke - started) * 1000)
    median = statistics.median(latencies_ms)
    print(f"sync wake-up after send (ms): median {median:.1f}, "
          f"all {[round(x, 1) for x in latencies_ms]}")
    assert median < 100, latencies_ms


async def _parked_sync(client: AsyncClient) -> asyncio.Task[Any]:
    """A /sync long-poll (timeout 30 s) that has reached the server and is waiting on it."""
    for _ in range(10):
        # Catch up first (e.g. the other user's presence), so only new news can wake the poll.
        expect(await client.sync(timeout=0, sync_filter=NO_GAP_FILTER), SyncResponse)
        pending = asyncio.create_task(client.sync(timeout=30_000, sync_filter=NO_GAP_FILTER))
        await asyncio.sleep(0.05)
        if not pending.done():
            return pending
        expect(pending.result(), SyncResponse)
    raise AssertionError("the /sync long-poll never stayed parked for 50 ms")


# --- more of what a client does -------------------------------------------------------------


async def test_members_topic_event_context_and_redaction(chat: Chat) -> None:
    members = expect(await chat.bob.client.joined_members(chat.room_id), JoinedMembersResponse)
    assert {m.user_id for m in members.members} == {chat.alice.user_id, chat.bob.user_id}

    expect(
        await chat.alice.client.room_put_state(chat.room_id, "m.room.topic", {"topic": "nio"}),
        RoomPutStateResponse,
    )
    topic = await sync_until(
        chat.bob.client,
        lambda r: next((e for e in _room_events(r, chat.room_id)
                        if isinstance(e, RoomTopicEvent)), None),
    )
    assert topic.topic == "nio" and chat.bob.client.rooms[chat.room_id].topic == "nio"

    ids = [await send_text(chat.alice, chat.room_id, f"context {i}") for i in range(5)]
    context = expect(
        await chat.bob.client.room_context(chat.room_id, ids[2], limit=4), RoomContextResponse
    )
    # The limit covers events_before and events_after together (split evenly).
    assert context.event.event_id == ids[2]
    assert [e.event_id for e in context.events_before] == [ids[1], ids[0]]  # newest first
    assert [e.event_id for e in context.events_after] == [ids[3], ids[4]]
    fetched = expect(
        await chat.bob.client.room_get_event(chat.room_id, ids[3]), RoomGetEventResponse
    )
    assert isinstance(fetched.event, RoomMessageText) and fetched.event.body == "context 3"

    redaction = expect(
        await chat.alice.client.room_redact(chat.room_id, ids[4], reason="typo"),
        RoomRedactResponse,
    )
    seen = await sync_until(
        chat.bob.client,
        lambda r: next((e for e in _room_events(r, chat.room_id)
                        if isinstance(e, RedactionEvent)), None),
    )
    assert (seen.event_id, seen.redacts, seen.reason) == (redaction.event_id, ids[4], "typo")
    page = expect(
        await chat.bob.client.room_messages(chat.room_id, start=chat.bob.client.next_batch,
                                            limit=3),
        RoomMessagesResponse,
    )
    redacted = next(e for e in page.chunk if e.event_id == ids[4])
    # Served redacted, with redacted_because (nio reads redacter and reason from it).
    assert isinstance(redacted, RedactedEvent)
    assert (redacted.redacter, redacted.reason) == (chat.alice.user_id, "typo")


async def test_filter_id_sync_leave_and_forget(chat: Chat) -> None:
    await send_text(chat.alice, chat.room_id, "only messages please")
    uploaded = expect(
        await chat.bob.client.upload_filter(
            room={"timeline": {"types": ["m.room.message"], "limit": 5}}
        ),
        UploadFilterResponse,
    )
    fresh = await login_nio_user(chat.url, chat.bob.user_id)
    try:
        initial = expect(
            await fresh.client.sync(timeout=0, sync_filter=uploaded.filter_id), SyncResponse
        )
        timeline = initial.rooms.join[chat.room_id].timeline.events
        assert [(type(e), e.body) for e in timeline] == [(RoomMessageText, "only messages please")]
    finally:
        await fresh.client.close()

    expect(await chat.bob.client.room_leave(chat.room_id), RoomLeaveResponse)
    left = await sync_until(
        chat.alice.client, lambda r: _member_event(r, chat.room_id, chat.bob.user_id, "leave")
    )
    assert left.sender == chat.bob.user_id
    assert chat.bob.user_id not in chat.alice.client.rooms[chat.room_id].users
    rooms = expect(await chat.bob.client.joined_rooms(), JoinedRoomsResponse)
    assert rooms.rooms == []
    await sync_until(chat.bob.client, lambda r: r.rooms.leave.get(chat.room_id))
    expect(await chat.bob.client.room_forget(chat.room_id), RoomForgetResponse)


async def test_presence_and_devices(chat: Chat) -> None:
    expect(await chat.alice.client.set_presence("online", "hacking"), PresenceSetResponse)
    presence = expect(
        await chat.bob.client.get_presence(chat.alice.user_id), PresenceGetResponse
    )
    assert (presence.user_id, presence.presence, presence.status_msg) == (
        chat.alice.user_id, "online", "hacking"
    )
    event = await sync_until(
        chat.bob.client,
        lambda r: next((p for p in r.presence_events
                        if p.user_id == chat.alice.user_id and p.status_msg == "hacking"), None),
    )
    assert event.presence == "online"

    devices = expect(await chat.alice.client.devices(), DevicesResponse)
    assert [(d.id, d.display_name) for d in devices.devices] == [
        (chat.alice.device_id, "nio alice")
    ]
    # Seen by the requests above: last_seen_ip (loopback) and last_seen_ts are recorded.
    assert devices.devices[0].last_seen_ip == "127.0.0.1"
    assert devices.devices[0].last_seen_date is not None


def _room_events(resp: SyncResponse, room_id: str) -> list[Any]:
    info = resp.rooms.join.get(room_id)
    return [*info.state, *info.timeline.events] if info else []


async def test_public_room_joined_by_alias_and_full_state_sync(chat: Chat) -> None:
    created = expect(
        await chat.alice.client.room_create(
            visibility=RoomVisibility.public, alias="nio-lobby", name="Lobby", topic="hi"
        ),
        RoomCreateResponse,
    )
    joined = expect(await chat.bob.client.join("#nio-lobby:test.localhost"), JoinResponse)
    assert joined.room_id == created.room_id

    full = expect(await chat.bob.client.sync(timeout=0, full_state=True), SyncResponse)
    assert set(full.rooms.join) == {chat.room_id, created.room_id}
    lobby = full.rooms.join[created.room_id]
    events = [*lobby.state, *lobby.timeline.events]
    types = {(e.source["type"], e.source["state_key"]) for e in events if "state_key" in e.source}
    assert {("m.room.create", ""), ("m.room.canonical_alias", ""), ("m.room.name", ""),
            ("m.room.topic", ""), ("m.room.member", chat.bob.user_id)} <= types
    room = chat.bob.client.rooms[created.room_id]
    assert (room.canonical_alias, room.name, room.topic, room.join_rule) == (
        "#nio-lobby:test.localhost", "Lobby", "hi", "public"
    )
