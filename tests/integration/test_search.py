"""POST /search (issue 13 item 9) over real HTTP: FTS5 ranking and recency, keys, filter,
highlights, event_context with profiles, groupings, pagination, include_state, history
visibility and membership, redaction, and the error cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.relations_helpers import send_content, thread_reply
from tests.integration.room_helpers import User, new_user
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("search")) as s:
        yield s


async def _search(
    user: User, term: str, *, expect: int = 200, next_batch: str | None = None, **criteria: Any
) -> dict[str, Any]:
    body = {"search_categories": {"room_events": {"search_term": term, **criteria}}}
    params = {"next_batch": next_batch} if next_batch else None
    resp = await user.call("POST", "/search", body, params=params, expect=expect)
    if expect == 200:
        assert_matches_operation("client-server/search.yaml", "/search", "post", 200, resp.json())
        return dict(resp.json()["search_categories"]["room_events"])
    return dict(resp.json())


def _ids(found: dict[str, Any]) -> list[str]:
    return [r["result"]["event_id"] for r in found["results"]]


async def _say(user: User, room: str, body: str) -> str:
    return await send_content(user, room, {"msgtype": "m.text", "body": body})


async def test_rank_recent_highlights_and_count(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    room = await alice.create_room()
    weak = await _say(alice, room, "a martian landed somewhere near the old farm yesterday")
    strong = await _say(alice, room, "Martians! martians and more martians")
    await _say(alice, room, "men only, nothing else")
    newest = await _say(alice, room, "the Martian")
    ranked = await _search(alice, "martian")
    assert ranked["count"] == 3
    assert _ids(ranked)[0] == strong
    assert set(_ids(ranked)) == {weak, strong, newest}
    ranks = [r["rank"] for r in ranked["results"]]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[-1]
    # Porter stemming and the words as written: "Martians", "martians", "martian", "Martian".
    assert {w.lower() for w in ranked["highlights"]} == {"martian", "martians"}
    assert "Martians" in ranked["highlights"]
    recent = await _search(alice, "martian", order_by="recent")
    assert _ids(recent) == [newest, strong, weak]
    # Every word must match; a prefix is enough ("mart"), and nothing typed is FTS5 syntax.
    assert _ids(await _search(alice, "martians more")) == [strong]
    assert _ids(await _search(alice, "mart farm")) == [weak]
    assert _ids(await _search(alice, 'NEAR("x") OR * "')) == []
    assert _ids(await _search(alice, '"the old farm"')) == [weak]
    assert (await _search(alice, "   ")) == {"count": 0, "highlights": [], "results": []}


async def test_keys_filter_and_pagination(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room = await alice.create_room(preset="public_chat", name="Zebra crossing")
    other = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{room}", {})
    await alice.call("PUT", f"/rooms/{room}/state/m.room.topic", {
        "topic": "", "m.topic": {"m.text": [{"body": "zebra topic"}]}})
    mine = [await _say(alice, room, f"zebra {i}") for i in range(3)]
    bobs = [await _say(bob, room, f"zebra from bob {i}") for i in range(2)]
    elsewhere = await _say(alice, other, "zebra elsewhere")
    await send_content(alice, room, {"body": "zebra", "msgtype": "m.notice"}, "m.custom")

    names = await _search(alice, "zebra", keys=["content.name"])
    assert [r["result"]["type"] for r in names["results"]] == ["m.room.name"]
    topics = await _search(alice, "zebra", keys=["content.topic"])
    assert [r["result"]["type"] for r in topics["results"]] == ["m.room.topic"]
    by_bob = await _search(alice, "zebra", filter={"senders": [bob.user_id]}, order_by="recent")
    assert _ids(by_bob) == list(reversed(bobs))
    in_other = await _search(alice, "zebra", filter={"rooms": [other]})
    assert _ids(in_other) == [elsewhere]
    not_bob = await _search(alice, "zebra", keys=["content.body"],
                            filter={"not_senders": [bob.user_id], "not_rooms": [other]})
    assert set(_ids(not_bob)) == set(mine)
    typed = await _search(alice, "zebra", filter={"types": ["m.room.name"]})
    assert [r["result"]["type"] for r in typed["results"]] == ["m.room.name"]

    everything = set(mine + bobs + [elsewhere])
    for order in ("recent", "rank"):
        seen: list[str] = []
        page = await _search(alice, "zebra", keys=["content.body"], order_by=order, filter={"limit": 2})
        while True:
            assert len(page["results"]) <= 2
            seen += _ids(page)
            if "next_batch" not in page:
                break
            page = await _search(alice, "zebra", keys=["content.body"], order_by=order,
                                 filter={"limit": 2}, next_batch=page["next_batch"])
        assert len(seen) == len(set(seen)) and set(seen) == everything, order
        if order == "recent":
            assert seen == list(reversed(mine + bobs + [elsewhere]))


async def test_groupings_and_paging_within_a_group(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room = await alice.create_room(preset="public_chat")
    other = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{room}", {})
    a = [await _say(alice, room, "quokka") for _ in range(3)]
    b = await _say(bob, room, "quokka")
    o = [await _say(alice, other, "quokka") for _ in range(2)]
    groupings = {"group_by": [{"key": "room_id"}, {"key": "sender"}]}
    page = await _search(alice, "quokka", order_by="recent", groupings=groupings, filter={"limit": 3})
    assert _ids(page) == [o[1], o[0], b]
    rooms = page["groups"]["room_id"]
    assert rooms[other]["results"] == [o[1], o[0]] and rooms[other]["order"] == 1
    assert rooms[room]["results"] == [b] and rooms[room]["order"] == 2
    senders = page["groups"]["sender"]
    assert senders[alice.user_id]["results"] == [o[1], o[0]]
    assert senders[bob.user_id]["results"] == [b]
    # The room group's token pages on in that room only; the sender's in that sender only.
    in_room = await _search(alice, "quokka", order_by="recent", groupings=groupings,
                            filter={"limit": 3}, next_batch=rooms[room]["next_batch"])
    assert _ids(in_room) == list(reversed(a))
    from_alice = await _search(alice, "quokka", order_by="recent", filter={"limit": 10},
                               next_batch=senders[alice.user_id]["next_batch"])
    assert _ids(from_alice) == list(reversed(a))


async def test_context_profiles_and_state(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room = await alice.create_room(preset="public_chat", name="Context room")
    await bob.call("POST", f"/join/{room}", {})
    await bob.call("PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bob Before"})
    before = [await _say(alice, room, f"before {i}") for i in range(3)]
    hit = await _say(bob, room, "the wombat")
    after = [await _say(alice, room, f"after {i}") for i in range(2)]
    await bob.call("PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bob After"})
    found = await _search(alice, "wombat", include_state=True,
                          event_context={"before_limit": 2, "after_limit": 1, "include_profile": True})
    (result,) = found["results"]
    ctx = result["context"]
    assert [e["event_id"] for e in ctx["events_before"]] == [before[2], before[1]]
    assert [e["event_id"] for e in ctx["events_after"]] == [after[0]]
    assert ctx["start"] and ctx["end"]
    # Profiles as they were at the result, not as they are now.
    assert ctx["profile_info"][bob.user_id]["displayname"] == "Bob Before"
    assert alice.user_id in ctx["profile_info"]
    state = found["state"][room]
    assert {"m.room.create", "m.room.name", "m.room.member"} <= {e["type"] for e in state}
    names = [e for e in state if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert names[0]["content"]["displayname"] == "Bob After"
    plain = await _search(alice, "wombat")
    assert "context" not in plain["results"][0] and "state" not in plain and "groups" not in plain


async def test_visibility_membership_and_redaction(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room = await alice.create_room(preset="public_chat")
    await alice.call(
        "PUT", f"/rooms/{room}/state/m.room.history_visibility", {"history_visibility": "joined"}
    )
    early = await _say(alice, room, "platypus early")
    await bob.call("POST", f"/join/{room}", {})
    seen = await _say(alice, room, "platypus while bob is here")
    root = await _say(alice, room, "platypus thread root")
    await thread_reply(bob, room, root, "reply")
    await bob.call("POST", f"/rooms/{room}/leave", {})
    await _say(alice, room, "platypus after bob left")
    assert set(_ids(await _search(bob, "platypus"))) == {seen, root}
    # Results carry their bundled aggregations.
    by_id = {r["result"]["event_id"]: r["result"] for r in (await _search(bob, "platypus"))["results"]}
    assert by_id[root]["unsigned"]["m.relations"]["m.thread"]["count"] == 1
    outsider = await new_user(srv, "eve")
    assert (await _search(outsider, "platypus"))["results"] == []
    # Even where history is world readable, search stops at the leave (search.md) and does not
    # reach rooms the user was never in.
    open_room = await alice.create_room(preset="public_chat")
    await alice.call("PUT", f"/rooms/{open_room}/state/m.room.history_visibility",
                     {"history_visibility": "world_readable"})
    await bob.call("POST", f"/join/{open_room}", {})
    kept = await _say(alice, open_room, "echidna before")
    await bob.call("POST", f"/rooms/{open_room}/leave", {})
    await _say(alice, open_room, "echidna after")
    assert _ids(await _search(bob, "echidna")) == [kept]
    assert _ids(await _search(outsider, "echidna")) == []
    # Redacted events leave the index.
    assert early in _ids(await _search(alice, "platypus"))
    await alice.call("PUT", f"/rooms/{room}/redact/{early}/r1", {})
    assert early not in _ids(await _search(alice, "platypus"))
    assert (await _search(alice, "platypus"))["count"] == 3


async def test_errors(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    for body, code in (
        ({}, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {}}}, "M_MISSING_PARAM"),
        ({"search_categories": {"room_events": {"search_term": 5}}}, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {"search_term": "x", "order_by": "best"}}},
         "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "x", "keys": ["content.url"]}}},
         "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "x",
          "groupings": {"group_by": [{"key": "type"}]}}}}, "M_INVALID_PARAM"),
        ({"search_categories": {"room_events": {"search_term": "x", "filter": {"limit": "x"}}}},
         "M_BAD_JSON"),
    ):
        resp = await alice.call("POST", "/search", body, expect=400)
        assert resp.json()["errcode"] == code, body
    resp = await alice.call("POST", "/search", {"search_categories": {"room_events": {
        "search_term": "x"}}}, params={"next_batch": "garbage!"}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    assert (await alice.call("POST", "/search", {"search_categories": {}})).json() == {
        "search_categories": {}}
    resp = await alice.client.post("/_matrix/client/v3/search", json={"search_categories": {}})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"
