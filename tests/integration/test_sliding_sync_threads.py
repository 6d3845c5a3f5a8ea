"""Threads in sliding sync through a real server: thread subscriptions (MSC4306) and their
changes (MSC4308: the io.element.msc4308.thread_subscriptions extension and the
/thread_subscriptions companion endpoint), and thread updates (MSC4360: the
io.element.msc4360.threads extension and /thread_updates), with their scoping, their limits and
the long-polls they wake."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sliding_sync_helpers import (
    all_rooms,
    sliding_sync,
    sliding_sync_response,
)
from tests.integration.sync_helpers import (
    User,
    create_room,
    join,
    new_user,
    numbered_user,
    send,
)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("sliding-threads")) as s:
        yield s


_n = itertools.count()
SUBS = "io.element.msc4308.thread_subscriptions"
THREADS = "io.element.msc4360.threads"
CONFLICT = "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION"
NOT_IN_THREAD = "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"
CHANGES = "/_matrix/client/unstable/io.element.msc4308/thread_subscriptions"
UPDATES = "/_matrix/client/unstable/io.element.msc4360/thread_updates"


async def _room(owner: User, *others: User, name: str | None = None) -> str:
    room_id = await create_room(owner, preset="public_chat", **({"name": name} if name else {}))
    for other in others:
        await join(other, room_id)
    return room_id


async def _reply(user: User, room_id: str, root: str, body: str) -> str:
    resp = await user.put(
        f"/rooms/{room_id}/send/m.room.message/r{next(_n)}",
        {"msgtype": "m.text", "body": body,
         "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["event_id"])


def _sub_path(room_id: str, root: str) -> str:
    return (f"/_matrix/client/unstable/io.element.msc4306/rooms/{quote(room_id)}"
            f"/thread/{quote(root)}/subscription")


async def _sub(user: User, method: str, room_id: str, root: str,
               body: dict[str, Any] | None = None) -> httpx.Response:
    return await user.client.request(
        method, _sub_path(room_id, root), headers=user.headers,
        json=body if method == "PUT" else None)


async def _subscribe(user: User, room_id: str, root: str, automatic: str | None = None) -> None:
    body = {"automatic": automatic} if automatic is not None else {}
    resp = await _sub(user, "PUT", room_id, root, body)
    assert resp.status_code == 200 and resp.json() == {}, resp.text


async def _unsubscribe(user: User, room_id: str, root: str) -> None:
    resp = await _sub(user, "DELETE", room_id, root)
    assert resp.status_code == 200 and resp.json() == {}, resp.text


async def _subscription(user: User, room_id: str, root: str) -> httpx.Response:
    return await _sub(user, "GET", room_id, root)


async def _changes(user: User, **params: Any) -> httpx.Response:
    return await user.client.get(CHANGES, params=params, headers=user.headers)


def _err(resp: httpx.Response, status: int, errcode: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["errcode"] == errcode, resp.text


def _ext(name: str, **config: Any) -> dict[str, Any]:
    return {"extensions": {name: {"enabled": True, **config}}}


def _stamps(section: dict[str, dict[str, dict[str, Any]]]) -> dict[str, int]:
    """root -> bump_stamp, over all rooms of a subscribed/unsubscribed map."""
    return {root: v["bump_stamp"] for threads in section.values() for root, v in threads.items()}


# --- MSC4306: the subscription endpoints ---------------------------------------------------------


async def test_versions_advertises_thread_subscriptions(srv: RunningServer) -> None:
    resp = await srv.client.get("/_matrix/client/versions")
    assert resp.json()["unstable_features"]["org.matrix.msc4306"] is True


async def test_subscribe_read_unsubscribe(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "sra")
    room = await _room(alice)
    root = await send(alice, room, "root")
    _err(await _subscription(alice, room, root), 404, "M_NOT_FOUND")
    await _subscribe(alice, room, root)
    got = await _subscription(alice, room, root)
    assert got.status_code == 200 and got.json() == {"automatic": False}
    await _unsubscribe(alice, room, root)
    _err(await _subscription(alice, room, root), 404, "M_NOT_FOUND")
    await _unsubscribe(alice, room, root)  # not subscribed: still 200 {}, nothing changes
    # Only two changes were made: the subscription and one unsubscription.
    changes = (await _changes(alice, dir="b")).json()
    assert list(changes) == ["unsubscribed"]
    assert list(changes["unsubscribed"][room]) == [root]


async def test_automatic_subscription_never_downgrades_a_manual_one(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "aua"), await numbered_user(srv, "aub")
    room = await _room(alice, bob)
    root = await send(alice, room, "root")
    mention = await _reply(bob, room, root, "hey alice")
    await _subscribe(alice, room, root, automatic=mention)
    assert (await _subscription(alice, room, root)).json() == {"automatic": True}
    first = _stamps((await _changes(alice, dir="b")).json()["subscribed"])[root]
    # Automatic again: no change at all (same bump_stamp).
    await _subscribe(alice, room, root, automatic=await _reply(bob, room, root, "again"))
    assert _stamps((await _changes(alice, dir="b")).json()["subscribed"])[root] == first
    # Manual takes over...
    await _subscribe(alice, room, root)
    assert (await _subscription(alice, room, root)).json() == {"automatic": False}
    manual = (await _changes(alice, dir="b")).json()["subscribed"][room][root]
    assert manual["automatic"] is False and manual["bump_stamp"] > first
    # ... and an automatic one does not downgrade it.
    await _subscribe(alice, room, root, automatic=await _reply(bob, room, root, "once more"))
    assert (await _subscription(alice, room, root)).json() == {"automatic": False}
    assert (await _changes(alice, dir="b")).json()["subscribed"][room][root] == manual


async def test_automatic_subscription_after_unsubscribing_conflicts(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "aca"), await numbered_user(srv, "acb")
    room = await _room(alice, bob)
    root = await send(alice, room, "root")
    seen = await _reply(bob, room, root, "@alice look")
    await _subscribe(alice, room, root)
    await _unsubscribe(alice, room, root)
    # A dormant device that saw `seen` wants to subscribe automatically: refused.
    resp = await _sub(alice, "PUT", room, root, {"automatic": seen})
    _err(resp, 409, CONFLICT)
    _err(await _subscription(alice, room, root), 404, "M_NOT_FOUND")
    # A mention after the unsubscription does subscribe again.
    later = await _reply(bob, room, root, "@alice again")
    await _subscribe(alice, room, root, automatic=later)
    assert (await _subscription(alice, room, root)).json() == {"automatic": True}
    # A manual subscription is never refused, whatever came before.
    await _unsubscribe(alice, room, root)
    await _subscribe(alice, room, root)
    assert (await _subscription(alice, room, root)).json() == {"automatic": False}


async def test_automatic_cause_must_be_in_the_thread(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "ica"), await numbered_user(srv, "icb")
    room = await _room(alice, bob)
    root = await send(alice, room, "root")
    other_root = await send(alice, room, "another root")
    elsewhere = await _reply(bob, room, other_root, "in the other thread")
    plain = await send(bob, room, "not in a thread")
    for cause in (elsewhere, plain, root):
        _err(await _sub(alice, "PUT", room, root, {"automatic": cause}), 400, NOT_IN_THREAD)
    unknown = "$" + "A" * 43
    _err(await _sub(alice, "PUT", room, root, {"automatic": unknown}), 404, "M_NOT_FOUND")
    for bad in ("not-an-event-id", True, 12, {"event_id": plain}):
        _err(await _sub(alice, "PUT", room, root, {"automatic": bad}), 400, "M_BAD_JSON")
    _err(await _subscription(alice, room, root), 404, "M_NOT_FOUND")  # none of them subscribed


async def test_unknown_or_invisible_thread_root_is_404(srv: RunningServer) -> None:
    alice, eve = await numbered_user(srv, "ira"), await numbered_user(srv, "ire")
    room = await _room(alice)
    root = await send(alice, room, "root")
    private = await create_room(alice, preset="private_chat")
    hidden = await send(alice, private, "secret root")
    eve_room = await _room(eve)
    unknown = "$" + "B" * 43
    for method in ("GET", "PUT", "DELETE"):
        _err(await _sub(eve, method, private, hidden, {}), 404, "M_NOT_FOUND")  # not in the room
        _err(await _sub(alice, method, room, unknown, {}), 404, "M_NOT_FOUND")
        _err(await _sub(eve, method, eve_room, root, {}), 404, "M_NOT_FOUND")  # root of another room
        _err(await _sub(alice, method, "not-a-room", root, {}), 400, "M_INVALID_PARAM")
        _err(await _sub(alice, method, room, "no-sigil", {}), 400, "M_INVALID_PARAM")
    resp = await srv.client.get(_sub_path(room, root))
    _err(resp, 401, "M_MISSING_TOKEN")


# --- MSC4308: the companion endpoint -------------------------------------------------------------


async def test_changes_page_backwards(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "pga")
    room = await _room(alice)
    roots = [await send(alice, room, f"root {i}") for i in range(4)]
    for root in roots:
        await _subscribe(alice, room, root)
    await _unsubscribe(alice, room, roots[0])  # roots[0]'s change is now the newest
    page1 = (await _changes(alice, dir="b", limit=2)).json()
    assert list(page1["subscribed"][room]) == [roots[3]]
    assert list(page1["unsubscribed"][room]) == [roots[0]]
    assert page1["unsubscribed"][room][roots[0]]["bump_stamp"] > \
        page1["subscribed"][room][roots[3]]["bump_stamp"]
    page2 = (await _changes(alice, dir="b", limit=2, **{"from": page1["end"]})).json()
    assert list(page2["subscribed"][room]) == [roots[1], roots[2]]  # oldest first
    assert "unsubscribed" not in page2
    page3 = (await _changes(alice, dir="b", limit=2, **{"from": page2["end"]})).json()
    assert page3 == {}  # nothing older; no `end` either
    everything = (await _changes(alice, dir="b")).json()
    assert "end" not in everything
    assert _stamps(everything["subscribed"]) == {
        **_stamps(page1["subscribed"]), **_stamps(page2["subscribed"])}


async def test_changes_bad_parameters_are_400(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "pba")
    _err(await _changes(alice), 400, "M_MISSING_PARAM")
    _err(await _changes(alice, dir="f"), 400, "M_INVALID_PARAM")
    _err(await _changes(alice, dir="b", limit=0), 400, "M_INVALID_PARAM")
    _err(await _changes(alice, dir="b", limit="many"), 400, "M_INVALID_PARAM")
    _err(await _changes(alice, dir="b", **{"from": "s1_2"}), 400, "M_INVALID_PARAM")
    _err(await _changes(alice, dir="b", to="garbage"), 400, "M_INVALID_PARAM")


# --- MSC4308: the sliding sync extension ---------------------------------------------------------


async def test_extension_initial_then_incremental(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "exa")
    room = await _room(alice)
    a, b, c = [await send(alice, room, f"root {x}") for x in "abc"]
    await _subscribe(alice, room, a)
    await _subscribe(alice, room, b)
    body = _ext(SUBS)
    first = await sliding_sync(alice, body)
    got = first["extensions"][SUBS]
    assert list(got) == ["subscribed"]
    assert list(got["subscribed"][room]) == [a, b]
    assert got["subscribed"][room][a]["automatic"] is False
    assert got["subscribed"][room][a]["bump_stamp"] < got["subscribed"][room][b]["bump_stamp"]
    # Nothing new: the extension is left out.
    idle = await sliding_sync(alice, body, pos=first["pos"], timeout=0)
    assert SUBS not in idle["extensions"]
    await _unsubscribe(alice, room, a)
    await _subscribe(alice, room, c)
    later = await sliding_sync(alice, body, pos=idle["pos"], timeout=0)
    news = later["extensions"][SUBS]
    unsub_stamp = news["unsubscribed"][room][a]["bump_stamp"]
    assert unsub_stamp > got["subscribed"][room][b]["bump_stamp"]
    assert news == {
        "subscribed": {room: {c: {"automatic": False, "bump_stamp": unsub_stamp + 1}}},
        "unsubscribed": {room: {a: {"bump_stamp": unsub_stamp}}},
    }
    # A retried request (its answer lost) gets the same changes again.
    retried = await sliding_sync(alice, body, pos=idle["pos"], timeout=0)
    assert retried["extensions"][SUBS] == later["extensions"][SUBS]
    # Another user's subscriptions are not alice's.
    bob = await numbered_user(srv, "exb")
    await join(bob, room)
    await _subscribe(bob, room, b)
    after_bob = await sliding_sync(alice, body, pos=later["pos"], timeout=0)
    assert SUBS not in after_bob["extensions"]


async def test_extension_limit_leaves_a_prev_batch_to_page_from(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "lma")
    room = await _room(alice)
    first = await sliding_sync(alice, _ext(SUBS))
    assert SUBS not in first["extensions"]
    roots = [await send(alice, room, f"root {i}") for i in range(3)]
    for root in roots:
        await _subscribe(alice, room, root)
    limited = await sliding_sync(alice, _ext(SUBS, limit=2), pos=first["pos"], timeout=0)
    got = limited["extensions"][SUBS]
    assert list(got["subscribed"][room]) == roots[1:]  # only the newest changes
    # The gap, walked with the companion endpoint down to the request's pos.
    rest = (await _changes(alice, dir="b", to=first["pos"], **{"from": got["prev_batch"]})).json()
    assert list(rest["subscribed"][room]) == roots[:1]
    assert "end" not in rest
    # `to` is exclusive: paging down to the newer pos finds nothing older.
    assert (await _changes(alice, dir="b", to=limited["pos"])).json() == {}


async def test_extension_limit_must_be_positive(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "lpa")
    for bad in (0, -1, "5", True):
        resp = await sliding_sync_response(alice, _ext(SUBS, limit=bad))
        _err(resp, 400, "M_INVALID_PARAM")


async def test_subscription_change_wakes_a_long_poll(srv: RunningServer) -> None:
    alice = await numbered_user(srv, "wka")
    room = await _room(alice)
    root = await send(alice, room, "root")
    body = {**all_rooms(), **_ext(SUBS)}
    first = await sliding_sync(alice, body)
    poll = asyncio.create_task(sliding_sync(alice, body, pos=first["pos"], timeout=10_000))
    await asyncio.sleep(0.3)
    assert not poll.done()
    start = time.perf_counter()
    await _subscribe(alice, room, root)
    answer = await poll
    assert time.perf_counter() - start < 2
    assert list(answer["extensions"][SUBS]["subscribed"][room]) == [root]
    assert answer["rooms"] == {}
    # Subscribing again changes nothing: the long-poll sleeps to its timeout.
    poll = asyncio.create_task(sliding_sync(alice, body, pos=answer["pos"], timeout=800))
    await asyncio.sleep(0.2)
    await _subscribe(alice, room, root)
    quiet = await poll
    assert SUBS not in quiet["extensions"]


# --- MSC4360: the threads extension --------------------------------------------------------------


def _threads_body(timeline_limit: int = 0, end: int = 19, **config: Any) -> dict[str, Any]:
    return {**all_rooms(end=end, timeline_limit=timeline_limit, required_state=[]),
            **_ext(THREADS, **config)}


async def _relations(user: User, room_id: str, root: str, **params: Any) -> list[str]:
    resp = await user.client.get(
        f"/_matrix/client/v1/rooms/{quote(room_id)}/relations/{quote(root)}",
        params=params, headers=user.headers)
    assert resp.status_code == 200, resp.text
    return [e["content"]["body"] for e in resp.json()["chunk"]]


async def test_threads_initial_then_incremental(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "tha"), await numbered_user(srv, "thb")
    room = await _room(alice, bob)
    old_root = await send(alice, room, "old root")
    await _reply(bob, room, old_root, "old reply")
    root = await send(alice, room, "root")
    await _reply(bob, room, root, "reply 1")
    await _reply(alice, room, root, "reply 2")
    first = await sliding_sync(alice, _threads_body())
    updates = first["extensions"][THREADS]["updates"]
    assert list(updates) == [room]
    assert list(updates[room]) == [root, old_root]  # newest update first
    assert "prev_batch" not in updates[room][old_root]  # one reply only
    assert "thread_root" not in updates[room][root]  # include_roots not asked
    # prev_batch pages the thread's other replies, the newest one left out.
    prev = updates[room][root]["prev_batch"]
    assert await _relations(alice, room, root, dir="b", **{"from": prev}) == ["reply 1"]
    assert "prev_batch" not in first["extensions"][THREADS]
    idle = await sliding_sync(alice, _threads_body(), pos=first["pos"], timeout=0)
    assert THREADS not in idle["extensions"]
    await send(bob, room, "a message outside any thread")
    plain = await sliding_sync(alice, _threads_body(), pos=idle["pos"], timeout=0)
    assert THREADS not in plain["extensions"]
    await _reply(bob, room, old_root, "old thread moves")
    moved = await sliding_sync(alice, _threads_body(), pos=plain["pos"], timeout=0)
    assert moved["extensions"][THREADS] == {"updates": {room: {old_root: {}}}}
    for n in range(3):
        await _reply(bob, room, root, f"burst {n}")
    burst = await sliding_sync(alice, _threads_body(), pos=moved["pos"], timeout=0)
    entry = burst["extensions"][THREADS]["updates"][room][root]
    # Down to the previous pos: the burst's replies before the newest, newest first.
    assert await _relations(alice, room, root, dir="b", to=moved["pos"],
                            **{"from": entry["prev_batch"]}) == ["burst 1", "burst 0"]


async def test_threads_include_roots(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "ira2"), await numbered_user(srv, "irb2")
    room = await _room(alice, bob)
    root = await send(alice, room, "the root")
    await _reply(bob, room, root, "first")
    latest = await _reply(bob, room, root, "latest")
    got = await sliding_sync(alice, _threads_body(include_roots=True))
    entry = got["extensions"][THREADS]["updates"][room][root]
    thread_root = entry["thread_root"]
    assert thread_root["event_id"] == root
    assert thread_root["content"]["body"] == "the root"
    bundle = thread_root["unsigned"]["m.relations"]["m.thread"]
    assert bundle["latest_event"]["event_id"] == latest
    assert bundle["latest_event"]["content"]["body"] == "latest"
    assert bundle["count"] == 2
    assert bundle["current_user_participated"] is True  # alice sent the root
    assert "prev_batch" in entry


async def test_threads_on_the_timeline_are_left_out_without_include_roots(
    srv: RunningServer,
) -> None:
    alice, bob = await numbered_user(srv, "tla"), await numbered_user(srv, "tlb")
    room = await _room(alice, bob)
    root = await send(alice, room, "root")
    first = await sliding_sync(alice, _threads_body(timeline_limit=5))
    assert THREADS not in first["extensions"]  # no reply yet
    await _reply(bob, room, root, "on the timeline")
    shown = await sliding_sync(alice, _threads_body(timeline_limit=5), pos=first["pos"], timeout=0)
    assert [e["content"]["body"] for e in shown["rooms"][room]["timeline"]] == ["on the timeline"]
    assert THREADS not in shown["extensions"]
    # With include_roots the thread comes anyway, with its root.
    await _reply(bob, room, root, "again")
    with_roots = await sliding_sync(alice, _threads_body(timeline_limit=5, include_roots=True),
                                    pos=shown["pos"], timeout=0)
    assert with_roots["extensions"][THREADS]["updates"][room][root]["thread_root"]["event_id"] == root
    # A timeline too short for all the new replies: the thread is sent, with its prev_batch.
    for n in range(3):
        await _reply(bob, room, root, f"many {n}")
    cut = await sliding_sync(alice, _threads_body(timeline_limit=1), pos=with_roots["pos"],
                             timeout=0)
    assert [e["content"]["body"] for e in cut["rooms"][room]["timeline"]] == ["many 2"]
    assert list(cut["extensions"][THREADS]["updates"][room][root]) == ["prev_batch"]


async def test_threads_scoped_by_lists_and_rooms(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "sca"), await numbered_user(srv, "scb")
    quiet = await _room(alice, bob, name="quiet")
    busy = await _room(alice, bob, name="busy")
    quiet_root = await send(alice, quiet, "quiet root")
    await _reply(bob, quiet, quiet_root, "quiet reply")
    busy_root = await send(alice, busy, "busy root")
    await _reply(bob, busy, busy_root, "busy reply")  # busy is now the most recent room
    left = await _room(bob, alice, name="left")
    left_root = await send(bob, left, "left root")
    await _reply(bob, left, left_root, "left reply")
    assert (await alice.post(f"/rooms/{left}/leave", {})).status_code == 200
    # Window [0, 0]: only `busy` (the leave bumped `left`, which alice is no longer in).
    windowed = _threads_body(end=0, lists=["all_rooms"])
    got = await sliding_sync(alice, windowed)
    assert list(got["rooms"]) == [busy]
    assert got["extensions"][THREADS] == {"updates": {busy: {busy_root: {}}}}
    # A room subscription named in `rooms`, no list.
    by_room = {**_threads_body(end=0, lists=[], rooms=[quiet]),
               "room_subscriptions": {quiet: {"timeline_limit": 0, "required_state": []}}}
    got = await sliding_sync(alice, by_room, conn_id="by-room")
    assert got["extensions"][THREADS] == {"updates": {quiet: {quiet_root: {}}}}
    # Neither named: every room alice is joined to, in or out of the window, never `left`.
    got = await sliding_sync(alice, _threads_body(end=0), conn_id="all")
    assert got["extensions"][THREADS] == {
        "updates": {busy: {busy_root: {}}, quiet: {quiet_root: {}}}}
    assert list(got["extensions"][THREADS]["updates"]) == [busy, quiet]  # newest update first


async def test_thread_reply_wakes_a_long_poll_without_any_room(srv: RunningServer) -> None:
    """A connection with no list and no room subscription (an Element-X-like "threads"
    connection): only the extension can answer the long-poll."""
    alice, bob = await numbered_user(srv, "owa"), await numbered_user(srv, "owb")
    far = await _room(alice, bob, name="far")
    root = await send(alice, far, "far root")
    body = _ext(THREADS)
    first = await sliding_sync(alice, body, conn_id="threads")
    assert THREADS not in first["extensions"] and first["rooms"] == {}
    poll = asyncio.create_task(
        sliding_sync(alice, body, pos=first["pos"], timeout=10_000, conn_id="threads"))
    await asyncio.sleep(0.3)
    assert not poll.done()
    start = time.perf_counter()
    await _reply(bob, far, root, "psst")
    answer = await poll
    assert time.perf_counter() - start < 2
    assert answer["rooms"] == {}
    assert answer["extensions"][THREADS] == {"updates": {far: {root: {}}}}
    # A message outside any thread is not the extension's news: the long-poll sleeps on.
    poll = asyncio.create_task(
        sliding_sync(alice, body, pos=answer["pos"], timeout=800, conn_id="threads"))
    await asyncio.sleep(0.2)
    await send(bob, far, "not threaded")
    quiet = await poll
    assert THREADS not in quiet["extensions"]


async def test_threads_limit_and_the_thread_updates_endpoint(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "tua"), await numbered_user(srv, "tub")
    room = await _room(alice, bob)
    first = await sliding_sync(alice, _threads_body())
    roots = [await send(alice, room, f"root {i}") for i in range(3)]
    for i, root in enumerate(roots):
        await _reply(bob, room, root, f"reply {i}")
    limited = await sliding_sync(alice, _threads_body(limit=2), pos=first["pos"], timeout=0)
    ext = limited["extensions"][THREADS]
    assert list(ext["updates"][room]) == [roots[2], roots[1]]
    page = await alice.client.get(UPDATES, headers=alice.headers, params={
        "dir": "b", "from": ext["prev_batch"], "to": first["pos"]})
    assert page.status_code == 200, page.text
    chunk = page.json()["chunk"]
    assert list(chunk[room]) == [roots[0]]
    assert chunk[room][roots[0]]["thread_root"]["event_id"] == roots[0]
    assert "next_batch" not in page.json()
    # Paging the whole list one thread at a time.
    seen: list[str] = []
    params: dict[str, Any] = {"dir": "b", "limit": 1, "to": first["pos"]}
    while True:
        resp = (await alice.client.get(UPDATES, headers=alice.headers, params=params)).json()
        seen += [root for threads in resp["chunk"].values() for root in threads]
        if "next_batch" not in resp:
            break
        params["from"] = resp["next_batch"]
    assert seen == roots[::-1]
    resp = await alice.client.get(UPDATES, headers=alice.headers, params={})
    _err(resp, 400, "M_MISSING_PARAM")
    resp = await alice.client.get(UPDATES, headers=alice.headers, params={"dir": "f"})
    _err(resp, 400, "M_INVALID_PARAM")
    resp = await alice.client.get(UPDATES, headers=alice.headers, params={"dir": "b", "limit": 0})
    _err(resp, 400, "M_INVALID_PARAM")


async def test_subscription_positions_survive_a_restart(tmp_path: Path) -> None:
    """The stream position lives in the `pos` and the changes in the database: after a restart
    the connection gets only what changed since, and new changes take later bump_stamps."""
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice = await new_user(srv.client, "rsa")
        room = await _room(alice)
        kept, later = await send(alice, room, "kept"), await send(alice, room, "later")
        await _subscribe(alice, room, kept)
        first = await sliding_sync(alice, _ext(SUBS))
        stamp = first["extensions"][SUBS]["subscribed"][room][kept]["bump_stamp"]
        key_file = srv.config.signing_key_path
    key_file.unlink()  # the test launcher writes a fresh key each start; the database stays
    async with running_server(data) as srv:
        alice = dataclasses.replace(alice, client=srv.client)
        quiet = await sliding_sync(alice, _ext(SUBS), pos=first["pos"], timeout=0)
        assert SUBS not in quiet["extensions"]
        await _subscribe(alice, room, later)
        news = await sliding_sync(alice, _ext(SUBS), pos=quiet["pos"], timeout=0)
        assert news["extensions"][SUBS] == {
            "subscribed": {room: {later: {"automatic": False, "bump_stamp": stamp + 1}}}}
        assert (await _subscription(alice, room, kept)).json() == {"automatic": False}
