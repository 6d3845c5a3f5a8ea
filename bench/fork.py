"""Benchmark: one forking state event received over federation in a large room.

    .venv/bin/python bench/fork.py [--members 10000] [--forks 5] [--version 10] [--profile FILE]
                                   [--compare]

Our server joins a remote room of `--members` members (through persist_join_state, on a temp
SQLite file; the remote room is an in-memory DAG of signed events, tests/unit/federation/
ingest_env.py). Then, `--forks` times: our user changes display name locally while a remote
member's display name change arrives over /send citing the event before ours, so the room forks
and the ingest resolves the states of both branches (soft-fail check and new current state).
Only that /send is timed; prints each time and the median. Setup (signing 10k events) takes a
while and is not timed.

--compare: twice as many forks, alternating with and without the auth chain index (without it,
federation.state_at loads every state event and walks the auth chains, as before the index), so
both are measured on the same room under the same machine load; prints both medians.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dendrite_lite.federation import state_at  # noqa: E402
from dendrite_lite.rooms.pipeline import EventSpec  # noqa: E402
from tests.unit.federation.ingest_env import B, BOB, ME, current, open_env  # noqa: E402

MEMBER = "m.room.member"


async def _no_index(*args: object) -> None:
    return None


async def run(
    members: int, forks: int, version: str, profile: str | None, compare: bool
) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        env = await open_env(Path(tmp), version, members=members)
        print(f"setup: {members} members joined in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        prof = cProfile.Profile() if profile else None
        times: dict[str, list[float]] = {"index": [], "no index": []}
        with_index = state_at.indexed_auth_difference
        try:
            for i in range(forks * 2 if compare else forks):
                mode = "no index" if compare and i % 2 else "index"
                state_at.indexed_auth_difference = with_index if mode == "index" else _no_index  # type: ignore[assignment]
                base = list(env.dag.head)
                spec = EventSpec(ME, MEMBER, {"membership": "join", "displayname": f"me {i}"}, ME)
                env.dag.adopt((await env.pipeline.send(env.room_id, spec)).event, advance=False)
                fork = env.dag.add(BOB, MEMBER, {"membership": "join", "displayname": f"bob {i}"},
                                   BOB, prevs=base, advance=False)
                if prof is not None:
                    prof.enable()
                t0 = time.perf_counter()
                answer = await env.send(B, fork)
                times[mode].append(time.perf_counter() - t0)
                if prof is not None:
                    prof.disable()
                assert answer == {fork.event_id: {}}, answer
                state = await current(env)
                assert state[(MEMBER, BOB)] == fork.event_id or state[(MEMBER, ME)] != base
                print(f"fork {i} ({mode}): {times[mode][-1] * 1000:.1f} ms", file=sys.stderr)
        finally:
            state_at.indexed_auth_difference = with_index  # type: ignore[assignment]
            await env.storage.close()
        if prof is not None and profile:
            prof.dump_stats(profile)
        return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--forks", type=int, default=5)
    ap.add_argument("--version", default="10")
    ap.add_argument("--profile", help="write cProfile stats of the timed sends to this file")
    ap.add_argument("--compare", action="store_true", help="alternate with and without the index")
    args = ap.parse_args()
    results = asyncio.run(run(args.members, args.forks, args.version, args.profile, args.compare))
    for mode, times in results.items():
        if times:
            print(f"room v{args.version}, {args.members} members, {mode}: forking state event "
                  f"median {statistics.median(times) * 1000:.1f} ms over {len(times)} "
                  f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")


if __name__ == "__main__":
    main()
