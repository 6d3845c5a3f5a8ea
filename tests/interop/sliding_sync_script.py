"""The requests Element X (matrix-rust-sdk's RoomListService and EncryptionSyncService) sends to
simplified sliding sync (MSC4186), replayed against any homeserver, with a normalised result
that two servers must agree on.

`build_world(make_user)` prepares the same world on a server through the client API: alice (the
Element X user), bob and carol; named group rooms with unread messages, a DM (m.direct), a room
with no name (its name comes from heroes), an encrypted room, a space (filtered out of the list)
and a pending invite. `replay(world)` then plays, as alice:

  1. "room-list" connection, no pos: list all_rooms, ranges [[0,19]], timeline_limit 1, the
     rust SDK's required_state, not_room_types [m.space]; account_data, receipts, typing on;
  2. "encryption" connection, no pos: to_device and e2ee on, no lists;
  3. room-list with pos: a room subscription to Garden, timeline_limit 20, more state;
  4. room-list long-poll while bob sends to Garden (the incremental delivery, timed);
  5. room-list long-poll while bob starts typing in Garden;
  6. room-list after alice's read receipt on Garden (its counts drop to 0);
  7. encryption long-poll while bob sends alice's device a to-device message; then the same
     connection with to_device.since = the next_batch it got, which acknowledges it;
  8. alice uploads one-time and fallback keys; encryption long-poll while bob uploads his
     device keys (a device list change for a user alice shares rooms with);
  9. thread subscriptions (MSC4306/MSC4308, what Element X turns on when /versions advertises
     org.matrix.msc4306): bob starts two threads in Garden; alice subscribes to one by hand and
     to the other automatically (bob's reply mentions her); a "threads" connection with only
     the io.element.msc4308.thread_subscriptions extension (limit 10, as the rust SDK asks) gets
     both; its long-poll while alice unsubscribes from the first; after more changes, a request
     with limit 1 whose `prev_batch` the /thread_subscriptions endpoint pages. The endpoint
     calls along the way (their status, errcode or body) are kept in `Replay.calls`;
 10. a "window" connection (account data and receipts on) scrolls: all rooms in its range, then
     the top one only; alice tags Kitchen and bob reads it while Kitchen is out of the window,
     and a request covers that; scrolled back, Kitchen's new tag and receipt arrive;
 11. window long-poll over the top room while alice joins carol's older room Porch: it comes
     first (the list is ordered by any activity, not bump_stamp) and arrives at once;
 12. window long-poll over the second room only while carol invites alice to Shed: the invite
     goes first, the room it pushes into the window was sent already, so only the count is new
     (Synapse answers at the poll's timeout, we at once: `count_only_ms`).

`normalise` keeps what must match across servers: for each step the rooms (by label, never by
id), their order by bump_stamp, names, counts, the (type, state key) pairs of required_state,
timeline (type, sender, body), invite state types and the extensions' contents, with every user
ID reduced to its localpart and every thread root to its label. Each server's own ids, tokens,
timestamps and bump_stamps (only their order) are left out.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tests.integration.e2ee_helpers import DeviceKeyring
from tests.integration.room_helpers import User

__all__ = [
    "ALL_ROOMS_REQUIRED_STATE",
    "COUNT_ONLY_TIMEOUT_MS",
    "SLIDING_SYNC",
    "SUBSCRIPTION_REQUIRED_STATE",
    "THREAD_SUBSCRIPTIONS",
    "Replay",
    "World",
    "build_world",
    "normalise",
    "replay",
]

SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

# What matrix-rust-sdk's RoomListService asks for in its all_rooms list.
ALL_ROOMS_REQUIRED_STATE = [
    ["m.room.name", ""],
    ["m.room.encryption", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.topic", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"],
    ["m.room.join_rules", ""],
    ["m.room.tombstone", ""],
    ["m.room.create", ""],
    ["m.room.history_visibility", ""],
    ["io.element.functional_members", ""],
]
# ... and adds for a room the user opens (its room subscription).
SUBSCRIPTION_REQUIRED_STATE = [
    *ALL_ROOMS_REQUIRED_STATE,
    ["m.room.avatar", ""],
    ["m.room.pinned_events", ""],
]

ROOM_LIST_EXTENSIONS = {
    "account_data": {"enabled": True},
    "receipts": {"enabled": True, "rooms": ["*"]},
    "typing": {"enabled": True},
}
ENCRYPTION_EXTENSIONS = {"to_device": {"enabled": True}, "e2ee": {"enabled": True}}
THREAD_SUBSCRIPTIONS = "io.element.msc4308.thread_subscriptions"
_MSC4306 = "/_matrix/client/unstable/io.element.msc4306"
_MSC4308 = "/_matrix/client/unstable/io.element.msc4308"
# The window connection leaves typing out: bob's typing of step 5 may time out in between.
WINDOW_EXTENSIONS = {"account_data": {"enabled": True}, "receipts": {"enabled": True}}
POLL_TIMEOUT_MS = 10_000
# Step 12's long-poll: Synapse answers it at this timeout, so it is shorter than the others.
COUNT_ONLY_TIMEOUT_MS = 6_000
_txns = itertools.count(1)


@dataclass
class World:
    alice: User
    bob: User
    carol: User
    rooms: dict[str, str] = field(default_factory=dict)  # label -> room id
    threads: dict[str, str] = field(default_factory=dict)  # label -> thread root event id

    def label(self, room_id: str) -> str:
        return next((k for k, v in self.rooms.items() if v == room_id), "?unknown room")

    def thread(self, root_id: str) -> str:
        return next((k for k, v in self.threads.items() if v == root_id), "?unknown thread")

    def who(self, user_id: str) -> str:
        """alice, bob or carol: the role, not the server's (or run's) user ID."""
        roles = {self.alice.user_id: "alice", self.bob.user_id: "bob", self.carol.user_id: "carol"}
        return roles.get(user_id, user_id)


@dataclass
class Replay:
    steps: list[dict[str, Any]]  # the raw response of each step, in order
    delivery_ms: float  # bob's send (start) -> alice's long-poll answer with the message
    names: list[str]  # each step's name
    # The thread-subscription endpoint calls: [name, status, errcode or normalised body]
    calls: list[list[Any]] = field(default_factory=list)
    conns: list[str] = field(default_factory=list)  # each step's connection
    # Step 12: carol's invite (start) -> the long-poll's answer with the count
    count_only_ms: float = 0.0


async def build_world(make_user: Callable[[str], Awaitable[User]]) -> World:
    """The same rooms, members, messages and account data on whichever server `make_user`
    registers on; rooms are made one after another so their activity order is fixed."""
    alice, bob, carol = await make_user("alice"), await make_user("bob"), await make_user("carol")
    w = World(alice, bob, carol)

    async def room(label: str, owner: User, joiners: list[User], **body: Any) -> str:
        room_id = await owner.create_room(preset="private_chat", **body)
        for member in joiners:
            await owner.call("POST", f"/rooms/{room_id}/invite", {"user_id": member.user_id})
            await member.call("POST", f"/rooms/{room_id}/join", {})
        w.rooms[label] = room_id
        return room_id

    await room("Space", alice, [bob], name="Space", creation_content={"type": "m.space"})
    garden = await room("Garden", alice, [bob, carol], name="Garden", topic="Plants")
    vault = await room(
        "Vault", bob, [alice], name="Vault",
        initial_state=[{"type": "m.room.encryption", "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
    )
    unnamed = await room("Unnamed", carol, [alice, bob])
    dm = await room("DM", bob, [alice], is_direct=True)
    await alice.call("PUT", f"/user/{quote(alice.user_id)}/account_data/m.direct",
                     {bob.user_id: [dm]})
    await alice.call("PUT", f"/user/{quote(alice.user_id)}/rooms/{quote(garden)}/account_data/m.tag",
                     {"tags": {"m.favourite": {"order": 0.5}}})
    kitchen = await room("Kitchen", bob, [alice, carol], name="Kitchen")
    await alice.send(kitchen, "alice in the kitchen")
    await bob.send(vault, "vault note")
    await carol.send(unnamed, "no name here")
    for i in range(3):
        await bob.send(garden, f"garden {i}")
    await bob.send(dm, "hi alice")
    await bob.send(dm, "are you there?")
    attic = await carol.create_room(preset="private_chat", name="Attic")
    await carol.call("POST", f"/rooms/{attic}/invite", {"user_id": alice.user_id})
    w.rooms["Attic"] = attic
    return w


async def _post(user: User, body: dict[str, Any], timeout_s: float = 30) -> dict[str, Any]:
    """`pos` and `timeout` go in the query string, the rest in the body: how ruma (so Element
    X) and matrix-js-sdk send them, and where Synapse reads them."""
    params = {k: str(body[k]) for k in ("pos", "timeout") if k in body}
    rest = {k: v for k, v in body.items() if k not in params}
    resp = await user.call("POST", SLIDING_SYNC, rest, params=params, timeout=timeout_s)
    return dict(resp.json())


async def _while_polling(user: User, body: dict[str, Any], action: Callable[[], Awaitable[Any]]
                         ) -> tuple[dict[str, Any], float]:
    """Long-poll with `body`, do `action` once the request is parked; the answer and the time
    from the action's start to the answer."""
    poll = asyncio.create_task(_post(user, body))
    await asyncio.sleep(0.3)  # the request reaches the server and parks
    assert not poll.done(), f"the long-poll answered before anything happened: {poll.result()}"
    start = time.perf_counter()
    await action()
    answer = await poll
    return answer, (time.perf_counter() - start) * 1000


async def replay(w: World) -> Replay:
    alice = w.alice
    garden = w.rooms["Garden"]
    steps: list[dict[str, Any]] = []
    names: list[str] = []
    conns: list[str] = []

    def record(name: str, answer: dict[str, Any], conn: str = "") -> dict[str, Any]:
        names.append(name)
        conns.append(conn or ("room-list" if answer.get("lists") else "encryption"))
        steps.append(answer)
        return answer

    all_rooms = {
        "ranges": [[0, 19]], "timeline_limit": 1, "required_state": ALL_ROOMS_REQUIRED_STATE,
        "filters": {"not_room_types": ["m.space"]},
    }
    room_list = {"conn_id": "room-list", "lists": {"all_rooms": all_rooms},
                 "extensions": ROOM_LIST_EXTENSIONS}
    first = record("initial room list", await _post(alice, room_list))
    enc = {"conn_id": "encryption", "extensions": ENCRYPTION_EXTENSIONS}
    enc_first = record("initial encryption", await _post(alice, enc))

    subscribed = {
        **room_list, "pos": first["pos"], "timeout": 0,
        "room_subscriptions": {garden: {"timeline_limit": 20,
                                        "required_state": SUBSCRIPTION_REQUIRED_STATE}},
    }
    sub = record("subscribe Garden", await _post(alice, subscribed))

    async def bob_sends() -> None:
        await w.bob.send(garden, "fresh from bob")

    live, delivery_ms = await _while_polling(
        alice, {**subscribed, "pos": sub["pos"], "timeout": POLL_TIMEOUT_MS}, bob_sends)
    record("bob's new message", live)

    async def bob_types() -> None:
        await w.bob.call("PUT", f"/rooms/{garden}/typing/{quote(w.bob.user_id)}",
                         {"typing": True, "timeout": 30000})

    typing, _ = await _while_polling(
        alice, {**subscribed, "pos": live["pos"], "timeout": POLL_TIMEOUT_MS}, bob_types)
    record("bob types", typing)

    latest = live["rooms"][garden]["timeline"][-1]["event_id"]

    async def alice_reads() -> None:
        await alice.call("POST", f"/rooms/{garden}/receipt/m.read/{quote(latest)}", {})

    read, _ = await _while_polling(
        alice, {**subscribed, "pos": typing["pos"], "timeout": POLL_TIMEOUT_MS}, alice_reads)
    record("alice reads Garden", read)

    async def bob_to_device() -> None:
        await w.bob.call("PUT", f"/sendToDevice/m.test.ping/s{next(_txns)}", {
            "messages": {alice.user_id: {alice.device_id: {"ping": 1}}}})

    to_dev, _ = await _while_polling(
        alice, {**enc, "pos": enc_first["pos"], "timeout": POLL_TIMEOUT_MS}, bob_to_device)
    record("to-device for alice", to_dev)
    since = to_dev["extensions"]["to_device"]["next_batch"]
    acked = {**enc, "pos": to_dev["pos"], "timeout": 0,
             "extensions": {**ENCRYPTION_EXTENSIONS,
                            "to_device": {"enabled": True, "since": since}}}
    done = record("to-device acknowledged", await _post(alice, acked))

    alice_keys = DeviceKeyring.of(alice)  # type: ignore[arg-type]  (any user_id/device_id holder)
    await alice.call("POST", "/keys/upload", {
        "one_time_keys": alice_keys.one_time_keys(3),
        "fallback_keys": alice_keys.one_time_keys(1, fallback=True)})
    bob_keys = DeviceKeyring.of(w.bob)  # type: ignore[arg-type]

    async def bob_uploads_keys() -> None:
        await w.bob.call("POST", "/keys/upload", {"device_keys": bob_keys.device_keys()})

    keys, _ = await _while_polling(
        alice, {**enc, "pos": done["pos"], "timeout": POLL_TIMEOUT_MS}, bob_uploads_keys)
    record("bob's device keys", keys)
    calls = await _thread_subscriptions(w, record)
    count_only_ms = await _scroll(w, record)
    return Replay(steps, delivery_ms, names, calls, conns, count_only_ms)


async def _thread_reply(user: User, room_id: str, root: str, body: str) -> str:
    resp = await user.call("PUT", f"/rooms/{room_id}/send/m.room.message/th{next(_txns)}", {
        "msgtype": "m.text", "body": body,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    return str(resp.json()["event_id"])


async def _thread_subscriptions(
    w: World, record: Callable[[str, dict[str, Any]], dict[str, Any]]
) -> list[list[Any]]:
    """Step 9 (see the module docstring); the endpoint calls made, normalised."""
    alice, bob, garden = w.alice, w.bob, w.rooms["Garden"]
    calls: list[list[Any]] = []

    async def call(name: str, method: str, path: str, body: Any = None, **params: Any
                   ) -> dict[str, Any]:
        resp = await alice.call(method, path, body, expect=None, params=params)
        got = resp.json()
        calls.append([name, resp.status_code,
                      got.get("errcode") if resp.status_code >= 400 else _subs(w, got)])
        return dict(got)

    def sub(label: str) -> str:
        root = w.threads.get(label, "$" + "A" * 43)  # an unknown event for an unknown label
        return f"{_MSC4306}/rooms/{quote(garden)}/thread/{quote(root)}/subscription"

    versions = await alice.call("GET", "/_matrix/client/versions")
    calls.append(["versions", 200, versions.json()["unstable_features"].get("org.matrix.msc4306")])
    w.threads["Seeds"] = await bob.send(garden, "thread: seeds")
    seeds_reply = await _thread_reply(bob, garden, w.threads["Seeds"], "which seeds, alice?")
    w.threads["Bulbs"] = await bob.send(garden, "thread: bulbs")
    bulbs_reply = await _thread_reply(bob, garden, w.threads["Bulbs"], "alice: bulbs now?")
    await call("not subscribed yet", "GET", sub("Seeds"))
    await call("subscribe Seeds", "PUT", sub("Seeds"), {})
    await call("read Seeds", "GET", sub("Seeds"))
    await call("automatic Bulbs", "PUT", sub("Bulbs"), {"automatic": bulbs_reply})
    await call("read Bulbs", "GET", sub("Bulbs"))
    await call("cause in another thread", "PUT", sub("Bulbs"), {"automatic": seeds_reply})
    await call("unknown root", "PUT", sub("Nowhere"), {})

    threads = {"conn_id": "threads",
               "extensions": {THREAD_SUBSCRIPTIONS: {"enabled": True, "limit": 10}}}
    first = record("thread subscriptions", await _post(alice, threads))

    async def alice_unsubscribes() -> None:
        await call("unsubscribe Seeds", "DELETE", sub("Seeds"))

    gone, _ = await _while_polling(
        alice, {**threads, "pos": first["pos"], "timeout": POLL_TIMEOUT_MS}, alice_unsubscribes)
    record("alice unsubscribes", gone)
    await call("automatic after unsubscribing", "PUT", sub("Seeds"), {"automatic": seeds_reply})
    await call("unsubscribe again", "DELETE", sub("Seeds"))
    w.threads["Pots"] = await bob.send(garden, "thread: pots")
    await call("subscribe Seeds again", "PUT", sub("Seeds"), {})
    await call("subscribe Pots", "PUT", sub("Pots"), {})
    limited = {**threads, "pos": gone["pos"], "timeout": 0,
               "extensions": {THREAD_SUBSCRIPTIONS: {"enabled": True, "limit": 1}}}
    one = record("limit 1", await _post(alice, limited))
    gap = one.get("extensions", {}).get(THREAD_SUBSCRIPTIONS, {}).get("prev_batch", "")
    await call("page the gap", "GET", f"{_MSC4308}/thread_subscriptions",
               dir="b", to=gone["pos"], **{"from": gap})
    await call("page without dir", "GET", f"{_MSC4308}/thread_subscriptions")
    return calls


async def _scroll(w: World, record: Callable[..., dict[str, Any]]) -> float:
    """Steps 10-12 on the "window" connection; the time step 12's answer took."""
    alice, kitchen = w.alice, w.rooms["Kitchen"]

    def window(*ranges: list[int], pos: str | None = None, timeout: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = {
            "conn_id": "window", "extensions": WINDOW_EXTENSIONS,
            "lists": {"window": {"ranges": list(ranges), "timeline_limit": 1,
                                 "required_state": [["m.room.name", ""]],
                                 "filters": {"not_room_types": ["m.space"]}}},
        }
        return {**body, "pos": pos, "timeout": timeout} if pos is not None else body

    async def step(name: str, body: dict[str, Any]) -> dict[str, Any]:
        return record(name, await _post(alice, body), "window")

    everything = await step("window: every room", window([0, 19]))
    top = await step("window: scrolled to the top", window([0, 0], pos=everything["pos"]))
    await alice.call("PUT", f"/user/{quote(alice.user_id)}/rooms/{quote(kitchen)}/account_data/m.tag",
                     {"tags": {"u.later": {}}})
    kitchen_last = everything["rooms"][kitchen]["timeline"][-1]["event_id"]
    await w.bob.call("POST", f"/rooms/{kitchen}/receipt/m.read/{quote(kitchen_last)}", {})
    out = await step("window: Kitchen changes out of view", window([0, 0], pos=top["pos"]))
    back = await step("window: scrolled back", window([0, 19], pos=out["pos"]))

    porch = await w.carol.create_room(preset="public_chat", name="Porch")
    w.rooms["Porch"] = porch
    await w.carol.send(porch, "an old porch")
    await w.bob.send(w.rooms["Garden"], "Garden stays ahead of the porch")
    caught_up = await step("window: caught up", window([0, 0], pos=back["pos"]))

    async def alice_joins() -> None:
        await alice.call("POST", f"/rooms/{porch}/join", {})

    joined, _ = await _while_polling(
        alice, window([0, 0], pos=caught_up["pos"], timeout=POLL_TIMEOUT_MS), alice_joins)
    record("window: alice joins Porch", joined, "window")

    async def carol_invites() -> None:
        w.rooms["Shed"] = await w.carol.create_room(
            preset="private_chat", name="Shed", invite=[alice.user_id])

    second = window([1, 1], pos=joined["pos"], timeout=COUNT_ONLY_TIMEOUT_MS)
    counted, count_only_ms = await _while_polling(alice, second, carol_invites)
    record("window: carol invites alice", counted, "window")
    return count_only_ms


# --- Normalisation ---------------------------------------------------------------------------


def _event(w: World, ev: dict[str, Any]) -> list[Any]:
    content = ev.get("content", {})
    what = content.get("body", content.get("membership", ""))
    return [ev["type"], w.who(ev.get("sender", "")), what]


# Synapse sends notification_count and highlight_count as constant zeros ("dummy values" in
# its sliding sync handler), so the unread counts cannot be compared with it: they are left out
# here and tested on our server alone.
_COMPARED_FIELDS = ("name", "initial", "is_dm")
_COUNTS = ("joined_count", "invited_count")
# The stripped state the spec recommends for invites; a server may add more (ours adds
# m.room.guest_access), which a client cannot tell from a room without it.
_INVITE_STATE = {
    "m.room.create", "m.room.join_rules", "m.room.canonical_alias", "m.room.avatar",
    "m.room.name", "m.room.encryption", "m.room.topic", "m.room.member",
}


def _room(w: World, r: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    """A room entry as the client learns from it. `seen`: what the connection's earlier
    responses told of the room. A member count or a state event sent again unchanged tells
    nothing (a server may send counts with every update, and MSC4186 lets it resend state the
    client has), so it is left out, as is an empty required_state."""
    out: dict[str, Any] = {k: r[k] for k in _COMPARED_FIELDS if k in r}
    for k in _COUNTS:
        if k in r and seen.get(k) != r[k]:
            out[k] = seen[k] = r[k]
    had = seen.setdefault("state", set())
    news = [ev for ev in r.get("required_state", ()) if ev.get("event_id") not in had]
    had.update(ev.get("event_id") for ev in news)
    if news:
        out["required_state"] = sorted(
            [ev["type"], w.who(ev.get("state_key", ""))] for ev in news)
    if "timeline" in r:
        out["timeline"] = [_event(w, ev) for ev in r["timeline"]]
    if "invite_state" in r:
        out["invite_state"] = sorted(
            ev["type"] for ev in r["invite_state"] if ev["type"] in _INVITE_STATE)
    if "heroes" in r:
        out["heroes"] = sorted(w.who(h["user_id"]) for h in r["heroes"])
    return out


def _extensions(w: World, ext: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "to_device" in ext:
        out["to_device"] = sorted(
            [e["type"], w.who(e.get("sender", "")), e.get("content")]
            for e in ext["to_device"].get("events", []))
    if "e2ee" in ext:
        e2ee = ext["e2ee"]
        out["e2ee"] = {
            "otk": e2ee.get("device_one_time_keys_count"),
            "fallback": e2ee.get("device_unused_fallback_key_types"),
            "changed": sorted(w.who(u) for u in e2ee.get("device_lists", {}).get("changed", [])),
            "left": sorted(w.who(u) for u in e2ee.get("device_lists", {}).get("left", [])),
        }
    if "account_data" in ext:
        ad = ext["account_data"]
        out["account_data"] = {
            "global": sorted(ev["type"] for ev in ad.get("global", [])),
            "rooms": {w.label(rid): sorted(ev["type"] for ev in evs)
                      for rid, evs in ad.get("rooms", {}).items() if evs},
        }
    if "receipts" in ext:
        out["receipts"] = {
            w.label(rid): sorted(
                [rtype, sorted(w.who(u) for u in users)]
                for by_type in ev["content"].values() for rtype, users in by_type.items())
            for rid, ev in ext["receipts"].get("rooms", {}).items()
        }
    if "typing" in ext:
        out["typing"] = {
            w.label(rid): sorted(w.who(u) for u in ev["content"]["user_ids"])
            for rid, ev in ext["typing"].get("rooms", {}).items()
        }
    if THREAD_SUBSCRIPTIONS in ext:
        out["thread_subscriptions"] = _subs(w, ext[THREAD_SUBSCRIPTIONS])
    return out


def _subs(w: World, body: dict[str, Any]) -> dict[str, Any]:
    """A thread subscriptions body (MSC4308's extension or /thread_subscriptions page) with
    labels, bump_stamps reduced to their order (`order`, oldest first) and tokens to whether
    there is one; any other body as it is."""
    if not {"subscribed", "unsubscribed", "prev_batch", "end"} & set(body):
        return body
    out: dict[str, Any] = {}
    stamps: list[tuple[int, str]] = []
    for section in ("subscribed", "unsubscribed"):
        for rid, threads in body.get(section, {}).items():
            for root, change in threads.items():
                label = w.thread(root)
                out.setdefault(section, {}).setdefault(w.label(rid), {})[label] = {
                    k: v for k, v in change.items() if k != "bump_stamp"}
                stamps.append((change["bump_stamp"], label))
    out["order"] = [label for _, label in sorted(stamps)]
    out["prev_batch"] = "prev_batch" in body
    out["end"] = "end" in body
    return out


def normalise(w: World, r: Replay) -> list[dict[str, Any]]:
    """One entry per step: its name, list counts, the rooms in bump_stamp order, each room's
    normalised fields, and the extensions."""
    out = []
    seen: dict[str, dict[str, dict[str, Any]]] = {}  # connection -> room -> counts sent
    for name, conn_id, step in zip(r.names, r.conns, r.steps, strict=True):
        conn = seen.setdefault(conn_id, {})
        entries = {rid: _room(w, room, conn.setdefault(rid, {}))
                   for rid, room in step.get("rooms", {}).items()}
        # A room whose only news is its unread counts has nothing compared left.
        rooms = {rid: e for rid, e in entries.items() if e}
        raw = step.get("rooms", {})
        order = sorted(rooms, key=lambda rid: (-raw[rid].get("bump_stamp", 0), w.label(rid)))
        out.append({
            "step": name,
            "lists": {k: v.get("count") for k, v in step.get("lists", {}).items()},
            "order": [w.label(rid) for rid in order],
            "rooms": {w.label(rid): rooms[rid] for rid in order},
            "extensions": _extensions(w, step.get("extensions", {})),
        })
    return out
