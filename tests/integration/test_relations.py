"""Relations (issue 13 item 8): bundled aggregations wherever events are served, GET /relations
with pagination and recursion, GET /threads, and visibility, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.relations_helpers import (
    V1,
    edit,
    reference,
    relations_of,
    send_content,
    served,
    thread_reply,
)
from tests.integration.room_helpers import User, new_user
from tests.spec_schema import assert_matches_operation

CS = "client-server/"
REL_PATH = "/rooms/{roomId}/relations/{eventId}"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("relations")) as s:
        yield s


async def _room(srv: RunningServer, **body: Any) -> tuple[User, User, str]:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room_id = await alice.create_room(preset="public_chat", **body)
    await bob.call("POST", f"/join/{room_id}", {})
    return alice, bob, room_id


async def _joined_only_root(srv: RunningServer) -> tuple[User, User, str, str]:
    """A room with history_visibility "joined" that bob has joined, and a root alice sent."""
    alice, bob, room = await _room(srv)
    await alice.call(
        "PUT", f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": "joined"}
    )
    root = await send_content(alice, room, {"msgtype": "m.text", "body": "root"})
    return alice, bob, room, root


def _latest(events: list[dict[str, Any]]) -> str:
    """The spec's most recent replacement: origin_server_ts, then the largest event_id."""
    return str(max(events, key=lambda e: (e["origin_server_ts"], e["event_id"]))["event_id"])


async def test_latest_valid_edit_is_bundled_everywhere(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    original = await send_content(alice, room, {"msgtype": "m.text", "body": "hello"})
    first = await edit(alice, room, original, "hello 1")
    second = await edit(alice, room, original, "hello 2")
    # Invalid replacements, which must never be the bundled one (sent last, so newest):
    await edit(bob, room, original, "not yours")  # another sender
    await send_content(alice, room, {  # no m.new_content
        "body": "x", "m.relates_to": {"rel_type": "m.replace", "event_id": original}})
    await send_content(alice, room, {  # another type
        "body": "x", "m.new_content": {"body": "x"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original}}, "m.room.other")
    edits = [(await alice.call("GET", f"/rooms/{room}/event/{e}")).json() for e in (first, second)]
    expected = _latest(edits)
    for where, event in (await served(bob, room, original)).items():
        bundled = event["unsigned"]["m.relations"]["m.replace"]
        assert bundled["event_id"] == expected, where
        assert bundled["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": original}
        # The server leaves the original's content alone (event_replacements.md, v1.7).
        assert event["content"] == {"msgtype": "m.text", "body": "hello"}, where

    # Redacting the latest edit reverts to the one before; redacting that one to none.
    await alice.call("PUT", f"/rooms/{room}/redact/{expected}/r1", {})
    other = first if expected == second else second
    event = (await bob.call("GET", f"/rooms/{room}/event/{original}")).json()
    assert event["unsigned"]["m.relations"]["m.replace"]["event_id"] == other
    await alice.call("PUT", f"/rooms/{room}/redact/{other}/r2", {})
    event = (await bob.call("GET", f"/rooms/{room}/event/{original}")).json()
    assert "m.relations" not in event["unsigned"]


async def test_redacted_original_has_no_edit_and_an_edit_cannot_be_edited(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    original = await send_content(alice, room, {"msgtype": "m.text", "body": "one"})
    first = await edit(alice, room, original, "two")
    await edit(alice, room, first, "edit of an edit")
    event = (await bob.call("GET", f"/rooms/{room}/event/{first}")).json()
    assert "m.relations" not in event["unsigned"]
    await alice.call("PUT", f"/rooms/{room}/redact/{original}/r1", {})
    for where, event in (await served(bob, room, original)).items():
        assert event["content"] == {}, where
        assert "m.relations" not in event["unsigned"], where


async def test_thread_summary_and_references(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    carol = await new_user(srv, "carol")
    await carol.call("POST", f"/join/{room}", {})
    root = await send_content(alice, room, {"msgtype": "m.text", "body": "root"})
    await thread_reply(bob, room, root, "reply 1")
    last = await thread_reply(bob, room, root, "reply 2")
    last_edit = await edit(bob, room, last, "reply 2 edited")
    refs = [await reference(carol, room, root), await reference(bob, room, root)]
    for user, participated in ((alice, True), (bob, True), (carol, False)):
        for where, event in (await served(user, room, root)).items():
            relations = event["unsigned"]["m.relations"]
            thread = relations["m.thread"]
            assert thread["count"] == 2, where
            assert thread["current_user_participated"] is participated, (user.user_id, where)
            latest = thread["latest_event"]
            assert latest["event_id"] == last and latest["content"]["body"] == "reply 2"
            # The latest event carries its own aggregations.
            assert latest["unsigned"]["m.relations"]["m.replace"]["event_id"] == last_edit
            assert relations["m.reference"] == {"chunk": [{"event_id": r} for r in refs]}, where


async def test_relations_pagination_filters_and_errors(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    root = await send_content(alice, room, {"msgtype": "m.text", "body": "root"})
    replies = [await thread_reply(bob, room, root, f"r{i}") for i in range(5)]
    ref = await reference(alice, room, root)
    newest_first = [ref, *reversed(replies)]

    page = await relations_of(bob, room, root, limit=2)
    assert_matches_operation(CS + "relations.yaml", REL_PATH, "get", 200, page)
    seen = [e["event_id"] for e in page["chunk"]]
    assert "prev_batch" not in page and "recursion_depth" not in page
    while "next_batch" in page:
        page = await relations_of(bob, room, root, limit=2, **{"from": page["next_batch"]})
        assert page["prev_batch"]
        seen += [e["event_id"] for e in page["chunk"]]
    assert seen == newest_first

    forwards = await relations_of(bob, room, root, dir="f", limit=10)
    assert [e["event_id"] for e in forwards["chunk"]] == list(reversed(newest_first))
    assert "next_batch" not in forwards
    # A forward page from a backward token continues after it.
    first = await relations_of(bob, room, root, limit=3)
    rest = await relations_of(bob, room, root, dir="f", **{"from": first["next_batch"]})
    assert [e["event_id"] for e in rest["chunk"]] == list(reversed(newest_first[:3]))
    # `to` stops the page: from the first page's token to the start covers the rest.
    bounded = await relations_of(bob, room, root, limit=10, to=first["next_batch"])
    assert [e["event_id"] for e in bounded["chunk"]] == newest_first[:3]

    threaded = await relations_of(bob, room, root, "m.thread")
    assert [e["event_id"] for e in threaded["chunk"]] == list(reversed(replies))
    assert (await relations_of(bob, room, root, "m.thread", "m.room.other"))["chunk"] == []
    typed = await relations_of(bob, room, root, "m.reference", "m.room.message")
    assert [e["event_id"] for e in typed["chunk"]] == [ref]

    for params, code in (({"dir": "x"}, "M_INVALID_PARAM"), ({"limit": "x"}, "M_INVALID_PARAM"),
                         ({"recurse": "maybe"}, "M_INVALID_PARAM"), ({"from": "nope"}, "M_INVALID_PARAM")):
        assert (await relations_of(bob, room, root, expect=400, **params))["errcode"] == code
    missing = await relations_of(bob, room, "$missing", expect=404)
    assert missing["errcode"] == "M_NOT_FOUND"
    outsider = await new_user(srv, "eve")
    assert (await relations_of(outsider, room, root, expect=403))["errcode"] == "M_FORBIDDEN"


async def test_recurse_follows_relations_of_relations(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    root = await send_content(alice, room, {"msgtype": "m.text", "body": "root"})
    reply = await thread_reply(bob, room, root, "in thread")
    reply_edit = await edit(bob, room, reply, "in thread, edited")
    deep = await reference(alice, room, reply_edit)
    flat = await relations_of(alice, room, root)
    assert [e["event_id"] for e in flat["chunk"]] == [reply]
    deep_page = await relations_of(alice, room, root, recurse="true")
    assert deep_page["recursion_depth"] == 3
    assert [e["event_id"] for e in deep_page["chunk"]] == [deep, reply_edit, reply]
    # The rel_type filter applies at every level: the edit relates to the reply by m.replace.
    only_thread = await relations_of(alice, room, root, "m.thread", recurse="true")
    assert [e["event_id"] for e in only_thread["chunk"]] == [reply]
    unstable = await relations_of(alice, room, root, **{"org.matrix.msc3981.recurse": "true"})
    assert unstable["recursion_depth"] == 3


async def test_left_user_sees_no_relations_after_leaving(srv: RunningServer) -> None:
    alice, bob, room, root = await _joined_only_root(srv)
    before = await thread_reply(alice, room, root, "before bob left")
    await bob.call("POST", f"/rooms/{room}/leave", {})
    await thread_reply(alice, room, root, "after bob left")
    await edit(alice, room, root, "edited after bob left")
    page = await relations_of(bob, room, root)
    assert [e["event_id"] for e in page["chunk"]] == [before]
    event = (await bob.call("GET", f"/rooms/{room}/event/{root}")).json()
    relations = event["unsigned"]["m.relations"]
    assert relations["m.thread"]["count"] == 1
    assert relations["m.thread"]["latest_event"]["event_id"] == before
    assert "m.replace" not in relations
    # Carol joins later: under "joined" visibility the root is not hers to see.
    carol = await new_user(srv, "carol")
    await carol.call("POST", f"/join/{room}", {})
    assert (await relations_of(carol, room, root, expect=404))["errcode"] == "M_NOT_FOUND"
    threads = (await carol.call("GET", f"{V1}/rooms/{room}/threads")).json()
    assert threads["chunk"] == []


async def test_threads_list_by_latest_activity(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    roots = [await send_content(alice, room, {"msgtype": "m.text", "body": f"t{i}"}) for i in range(3)]
    bobs = await send_content(bob, room, {"msgtype": "m.text", "body": "bob's root"})
    await thread_reply(bob, room, roots[0], "a")
    await thread_reply(alice, room, bobs, "b")
    await thread_reply(bob, room, roots[2], "c")
    await thread_reply(bob, room, roots[1], "d")
    await thread_reply(bob, room, roots[0], "e")  # roots[0] is the most recently active again
    path = f"{V1}/rooms/{room}/threads"
    everything = (await bob.call("GET", path, params={"limit": 10})).json()
    assert_matches_operation(CS + "threads_list.yaml", "/rooms/{roomId}/threads", "get", 200, everything)
    assert [e["event_id"] for e in everything["chunk"]] == [roots[0], roots[1], roots[2], bobs]
    assert everything["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 2
    assert "next_batch" not in everything

    seen, params = [], {"limit": 3}
    while True:
        page = (await alice.call("GET", path, params=params)).json()
        seen += [e["event_id"] for e in page["chunk"]]
        if "next_batch" not in page:
            break
        params = {"limit": 3, "from": page["next_batch"]}
    assert seen == [roots[0], roots[1], roots[2], bobs]

    # Alice sent roots[0..2] and replied in bob's thread; bob replied in all of alice's.
    carol = await new_user(srv, "carol")
    await carol.call("POST", f"/join/{room}", {})
    await thread_reply(carol, room, roots[2], "carol was here")
    mine = (await carol.call("GET", path, params={"include": "participated"})).json()
    assert [e["event_id"] for e in mine["chunk"]] == [roots[2]]
    assert mine["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["current_user_participated"]
    alices = (await alice.call("GET", path, params={"include": "participated", "limit": 10})).json()
    assert [e["event_id"] for e in alices["chunk"]] == [roots[2], roots[0], roots[1], bobs]

    for params, status, code in (
        ({"include": "some"}, 400, "M_INVALID_PARAM"), ({"limit": "0"}, 400, "M_INVALID_PARAM"),
        ({"from": "bogus"}, 400, "M_INVALID_PARAM"),
    ):
        resp = await alice.call("GET", path, params=params, expect=status)
        assert resp.json()["errcode"] == code
    outsider = await new_user(srv, "eve")
    resp = await outsider.call("GET", path, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"


async def test_a_thread_cannot_start_from_a_child_event(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    root = await send_content(alice, room, {"msgtype": "m.text", "body": "root"})
    reply = await thread_reply(bob, room, root, "in thread")
    ref = await reference(alice, room, root)
    for parent in (reply, ref):
        resp = await bob.call("PUT", f"/rooms/{room}/send/m.room.message/nest{parent[1:8]}", {
            "body": "nested", "m.relates_to": {"rel_type": "m.thread", "event_id": parent}},
            expect=400)
        assert resp.json()["errcode"] == "M_UNKNOWN"
    # A reply (m.in_reply_to, no rel_type) can still be a thread root.
    quoted = await send_content(alice, room, {
        "body": "quote", "m.relates_to": {"m.in_reply_to": {"event_id": root}}})
    await thread_reply(bob, room, quoted, "fine")


async def test_thread_summary_skips_what_a_rejoined_user_missed(srv: RunningServer) -> None:
    """Replies sent while the user was away are not theirs under "joined" visibility: older
    children are checked one by one, those after the current join need no check."""
    alice, bob, room, root = await _joined_only_root(srv)
    first = await thread_reply(alice, room, root, "bob is here")
    await bob.call("POST", f"/rooms/{room}/leave", {})
    missed = await thread_reply(alice, room, root, "bob is away")
    await bob.call("POST", f"/join/{room}", {})
    await edit(alice, room, root, "root, edited while bob is back")
    last = await thread_reply(alice, room, root, "bob is back")
    thread = (await bob.call("GET", f"/rooms/{room}/event/{root}")).json()["unsigned"]["m.relations"]
    assert thread["m.thread"]["count"] == 2 and thread["m.thread"]["latest_event"]["event_id"] == last
    assert thread["m.replace"]["content"]["m.new_content"]["body"] == "root, edited while bob is back"
    page = await relations_of(bob, room, root, "m.thread")
    assert [e["event_id"] for e in page["chunk"]] == [last, first]
    seen_by_alice = await relations_of(alice, room, root, "m.thread")
    assert [e["event_id"] for e in seen_by_alice["chunk"]] == [last, missed, first]


async def test_encrypted_edit_needs_no_visible_new_content(srv: RunningServer) -> None:
    """m.new_content of an encrypted edit is inside the ciphertext (event_replacements.md
    §Editing encrypted events): the server cannot and must not ask for it."""
    alice, bob, room = await _room(srv)
    megolm = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "sender_key": "k",
              "device_id": "D", "session_id": "s"}
    original = await send_content(alice, room, megolm, "m.room.encrypted")
    fixed = await send_content(alice, room, {
        **megolm, "m.relates_to": {"rel_type": "m.replace", "event_id": original}}, "m.room.encrypted")
    event = (await bob.call("GET", f"/rooms/{room}/event/{original}")).json()
    assert event["unsigned"]["m.relations"]["m.replace"]["event_id"] == fixed


async def test_ignored_users_children_are_not_aggregated(srv: RunningServer) -> None:
    alice, bob, room = await _room(srv)
    carol = await new_user(srv, "carol")
    await carol.call("POST", f"/join/{room}", {})
    await carol.call("PUT", f"/user/{carol.user_id}/account_data/m.ignored_user_list",
                     {"ignored_users": {bob.user_id: {}}})
    root = await send_content(alice, room, {"msgtype": "m.text", "body": "root"})
    mine = await thread_reply(alice, room, root, "from alice")
    await thread_reply(bob, room, root, "from bob, ignored by carol")
    await reference(bob, room, root)
    for where, event in (await served(carol, room, root)).items():
        relations = event["unsigned"]["m.relations"]
        assert relations["m.thread"]["count"] == 1, where
        assert relations["m.thread"]["latest_event"]["event_id"] == mine, where
        assert "m.reference" not in relations, where
    seen_by_alice = (await alice.call("GET", f"/rooms/{room}/event/{root}")).json()
    assert seen_by_alice["unsigned"]["m.relations"]["m.thread"]["count"] == 2
