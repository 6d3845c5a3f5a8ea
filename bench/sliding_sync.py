"""Benchmark: simplified sliding sync (MSC4186) for a user in many rooms, dendrite-lite and
Synapse side by side (issue 18).

    .venv/bin/python bench/sliding_sync.py [--repeat 3] [--servers dendrite-lite,synapse]
                                           [--json sliding-sync-results.json] [--keep DIR]

Per server and repeat, on a fresh server (subprocess, SQLite, plain HTTP on 127.0.0.1, rate
limits off; the same setup as bench/chat.py, see bench/_servers.py):
  setup (timed, no goal): register 50 users; user 0 (the viewer) creates 200 rooms; the other
     49 join every room (50 members each); one message from a seeded random member per room;
  1. first response: the viewer logs in a fresh device and POSTs the request Element X starts
     with (list all_rooms, ranges [[0,19]], timeline_limit 1, its required_state with $LAZY
     members, account_data/receipts/typing extensions); time from request to the whole body,
     and the body's size. Done for `first_responses` fresh devices one after another; medians;
  2. wake-up: the viewer long-polls the same connection (timeout 30 s); another member sends
     a message into a room of the window, one at a time, each 100 ms after the listener
     re-parked; latency = the long-poll's answer arriving - the send's start.
*first response* has the issue's goal: at most 0.5x Synapse's time.
Servers alternate order between repeats; medians (min-max) over repeats, ours/Synapse, goal.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _client import Homeserver, User
from _compare import compare
from _servers import ProcessWatch, ServerProcess
from chat import PASSWORD, Row, bounded, pct

SLIDING_SYNC = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
# What matrix-rust-sdk's room list asks for (tests/interop/sliding_sync_script.py has the same).
REQUIRED_STATE = [
    ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"], ["m.room.topic", ""], ["m.room.canonical_alias", ""],
    ["m.room.power_levels", ""], ["org.matrix.msc3401.call.member", "*"],
    ["m.room.join_rules", ""], ["m.room.tombstone", ""], ["m.room.create", ""],
    ["m.room.history_visibility", ""], ["io.element.functional_members", ""],
]


@dataclass(frozen=True)
class Workload:
    users: int = 50
    rooms: int = 200
    window: int = 20
    first_responses: int = 5
    wakeups: int = 30
    concurrency: int = 16
    seed: int = 18


def _request(w: Workload) -> dict[str, Any]:
    return {
        "conn_id": "room-list",
        "lists": {"all_rooms": {
            "ranges": [[0, w.window - 1]], "timeline_limit": 1, "required_state": REQUIRED_STATE,
        }},
        "extensions": {"account_data": {"enabled": True}, "receipts": {"enabled": True},
                       "typing": {"enabled": True}},
    }


async def _sliding_sync(
    user: User, body: dict[str, Any], params: dict[str, str] | None = None, http: Any = None
) -> tuple[dict[str, Any], int]:
    """One request; the parsed answer and its size in bytes (as sent, uncompressed)."""
    async with (http or user.hs.http).post(
        SLIDING_SYNC, json=body, params=params or {},
        headers={"Authorization": f"Bearer {user.token}"},
    ) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"sliding sync -> {resp.status}: {raw[:300]!r}")
        return json.loads(raw), len(raw)


async def _setup(hs: Homeserver, w: Workload) -> tuple[list[User], list[str], dict[str, float]]:
    m: dict[str, float] = {}
    t = time.perf_counter()
    users = await bounded(
        (functools.partial(hs.register, f"user{i:03d}", PASSWORD) for i in range(w.users)),
        w.concurrency,
    )
    m["register_s"] = time.perf_counter() - t
    t = time.perf_counter()
    room_ids = await bounded(
        # The nonce in the create event: v12 room IDs are its hash, so two rooms created in the
        # same millisecond would otherwise be one.
        (functools.partial(users[0].create_room, {"preset": "public_chat", "name": f"room {r}",
                                                  "creation_content": {"bench.nonce": r}})
         for r in range(w.rooms)),
        4,
    )
    await bounded((functools.partial(u.join, r) for r in room_ids for u in users[1:]),
                  w.concurrency)
    m["rooms_and_joins_s"] = time.perf_counter() - t
    rng = random.Random(w.seed)
    for r, room_id in enumerate(room_ids):  # one at a time: a defined order by recency
        await users[rng.randrange(1, w.users)].send_text(room_id, f"hello room {r}")
    return users, room_ids, m


async def _first_responses(hs: Homeserver, w: Workload) -> dict[str, Any]:
    times, sizes, counts = [], [], []
    for _ in range(w.first_responses):
        viewer = await hs.login("user000", PASSWORD)  # a fresh device: nothing cached for it
        t = time.perf_counter()
        body, size = await _sliding_sync(viewer, _request(w))
        times.append(time.perf_counter() - t)
        sizes.append(size)
        counts.append(len(body.get("rooms", {})))
        if body["lists"]["all_rooms"]["count"] != w.rooms or counts[-1] != w.window:
            raise RuntimeError(f"first response: count {body['lists']['all_rooms']['count']}, "
                               f"{counts[-1]} rooms")
    return {
        "first_response_ms": statistics.median(times) * 1000,
        "first_response_all_ms": [x * 1000 for x in times],
        "first_response_kib": statistics.median(sizes) / 1024,
        "first_response_rooms": statistics.median(counts),
    }


async def _wakeups(hs: Homeserver, users: list[User], room_ids: list[str], w: Workload
                   ) -> dict[str, Any]:
    viewer = await hs.login("user000", PASSWORD)
    poll_http = hs.new_pool(2)  # the parked long-poll must not hold a connection sends need
    body, _ = await _sliding_sync(viewer, _request(w), http=poll_http)
    pos = body["pos"]
    # The window: the rooms with the latest messages, so each send stays inside it.
    window = list(body["rooms"])
    sender = users[1]
    latencies: list[float] = []
    try:
        for k in range(w.wakeups):
            poll = asyncio.create_task(_sliding_sync(
                viewer, _request(w), {"pos": pos, "timeout": "30000"}, http=poll_http))
            await asyncio.sleep(0.1)  # parked on the server before the send
            if poll.done():
                raise RuntimeError(f"long-poll answered before the send: {poll.result()[0]}")
            room_id = window[k % len(window)]
            start = time.perf_counter()
            await sender.send_text(room_id, f"wake {k}")
            answer, _ = await asyncio.wait_for(poll, 30)
            arrived = time.perf_counter()
            pos = answer["pos"]
            if room_id not in answer.get("rooms", {}):
                raise RuntimeError(f"wake-up {k}: the answer lacks {room_id}: {answer}")
            latencies.append(arrived - start)
    finally:
        await poll_http.close()
    return {"wakeup_p50_ms": pct(latencies, 50) * 1000, "wakeup_p95_ms": pct(latencies, 95) * 1000}


async def run_workload(
    server: ServerProcess, w: Workload, watch: ProcessWatch, profile: Path | None = None
) -> dict[str, Any]:
    hs = Homeserver(server.base_url, max_connections=w.concurrency + 4)
    try:
        users, room_ids, m = await _setup(hs, w)
        t = time.monotonic()
        m.update(await _first_responses(hs, w))
        m.update(await _wakeups(hs, users, room_ids, w))
        m["peak_rss_mib"] = max(watch.rss_between(t, time.monotonic()), default=0) / 1024
    finally:
        await hs.aclose()
    return m


def rows(w: Workload) -> list[Row]:
    return [
        ("first_response_ms", f"first response, {w.window}-room window of {w.rooms} (ms)", 1,
         ("<=", 0.5)),
        ("first_response_kib", "first response size (KiB)", 1, None),
        ("wakeup_p50_ms", "incremental wake-up p50 from send start (ms)", 1, None),
        ("wakeup_p95_ms", "incremental wake-up p95 from send start (ms)", 1, None),
        ("peak_rss_mib", "peak RSS during the syncs (MiB)", 1, None),
        ("rooms_and_joins_s", f"setup: {w.rooms} rooms, {(w.users - 1) * w.rooms} joins (s)", 1,
         None),
    ]


def _check(w: Workload) -> str | None:
    if w.window > w.rooms or w.users < 2 or w.window < 1:
        return "needs window <= rooms, window >= 1 and users >= 2"
    return None


if __name__ == "__main__":
    compare(__doc__ or "", Workload, run_workload, rows, "sliding-sync-results.json", check=_check)
