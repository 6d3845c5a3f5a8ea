"""Benchmark: resolve two conflicting forks of a 10,000-member room, ours vs Synapse's.

    .venv/bin/python bench/stateres.py [--members 10000] [--fork-events 200] [--runs 5]
                                       [--version 10]

Builds the room deterministically (seeded), then on each of two forks a few hundred power level,
ban, kick, leave, join and topic events by several moderators. Our resolve_state runs in this
process; Synapse's resolve_events_with_store runs in .venv-synapse through
tests/interop/synapse_runner.py, timing only the resolve call there (its in-memory store walks
auth chains per state set, as Synapse's own test store does). Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dendrite_lite.events.auth import auth_types_for_event  # noqa: E402
from dendrite_lite.events.event import Event, StateKey  # noqa: E402
from dendrite_lite.events.room_versions import RoomVersion, get_room_version  # noqa: E402
from dendrite_lite.events.state_res import resolve_state  # noqa: E402
from tests.interop.graphgen import new_event  # noqa: E402

PL_KEY: StateKey = ("m.room.power_levels", "")


class RoomSim:
    """Builds events on forks of one room without auth checks (the input is what matters)."""

    def __init__(self, rv: RoomVersion) -> None:
        self.rv = rv
        self.events: dict[str, Event] = {}
        self.order: list[str] = []
        self.room_id = "!bench:s0"
        self.ts = 1_000_000

    def add(
        self, state: dict[StateKey, str], head: list[str], etype: str, sender: str,
        content: dict[str, Any], state_key: str | None,
    ) -> str:
        rv = self.rv
        keys = auth_types_for_event(rv, etype, state_key, sender, content)
        auth = [state[k] for k in keys if k in state]
        self.ts += 1
        ev = new_event(rv, self.room_id, etype, sender, content, state_key, auth, head,
                       depth=len(self.order) + 1, ts=self.ts, v1_id=f"${len(self.order)}:s0")
        if etype == "m.room.create":
            self.room_id = ev.room_id
        eid = ev.event_id
        self.events[eid] = ev
        self.order.append(eid)
        if state_key is not None:
            state[(etype, state_key)] = eid
        head[:] = [eid]
        return eid


def build(rv: RoomVersion, members: int, fork_events: int, seed: int = 1) -> tuple[RoomSim, list[dict[StateKey, str]]]:
    rnd = random.Random(seed)
    sim = RoomSim(rv)
    creator = "@admin:s0"
    mods = [f"@mod{i}:s{i % 3}" for i in range(6)]
    users = [f"@user{i}:s{i % 50}" for i in range(members)]
    state: dict[StateKey, str] = {}
    head: list[str] = []
    create: dict[str, Any] = {"room_version": rv.identifier}
    if not rv.implicit_room_creator:
        create["creator"] = creator
    sim.add(state, head, "m.room.create", creator, create, "")
    sim.add(state, head, "m.room.member", creator, {"membership": "join"}, creator)
    levels = {m: 50 + 10 * i for i, m in enumerate(mods)}
    if not rv.privileged_creators:
        levels[creator] = 100
    pl_content = {"users": dict(levels), "ban": 50, "kick": 50, "state_default": 50}
    sim.add(state, head, "m.room.power_levels", creator, pl_content, "")
    sim.add(state, head, "m.room.join_rules", creator, {"join_rule": "public"}, "")
    for u in [*mods, *users]:
        sim.add(state, head, "m.room.member", u, {"membership": "join"}, u)

    forks = []
    for fork in range(2):
        fstate, fhead = dict(state), list(head)
        pl_users = dict(levels)
        for _ in range(fork_events):
            roll = rnd.random()
            sender = rnd.choice(mods if roll < 0.8 else [creator])
            target = rnd.choice(users)
            if roll < 0.3:
                pl_users[rnd.choice(mods)] = rnd.choice((50, 60, 70, 80, 90))
                content = {**pl_content, "users": dict(pl_users)}
                sim.add(fstate, fhead, "m.room.power_levels", sender, content, "")
            elif roll < 0.55:
                sim.add(fstate, fhead, "m.room.member", sender, {"membership": "ban"}, target)
            elif roll < 0.7:
                sim.add(fstate, fhead, "m.room.member", sender, {"membership": "leave"}, target)
            elif roll < 0.85:
                sim.add(fstate, fhead, "m.room.member", target, {"membership": "leave"}, target)
            else:
                sim.add(fstate, fhead, "m.room.topic", sender, {"topic": f"fork {fork}"}, "")
        forks.append(fstate)
    return sim, forks


def time_ours(sim: RoomSim, forks: list[dict[StateKey, str]], runs: int) -> tuple[float, dict[StateKey, str]]:
    times, result = [], {}
    for _ in range(runs):
        t0 = time.perf_counter()
        result = resolve_state(sim.rv, forks, sim.events.get)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def time_synapse(sim: RoomSim, forks: list[dict[StateKey, str]], runs: int) -> tuple[float, dict[StateKey, str]]:
    py = ROOT / ".venv-synapse" / "bin" / "python"
    runner = ROOT / "tests" / "interop" / "synapse_runner.py"
    proc = subprocess.Popen([str(py), str(runner)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=runner.parent)
    assert proc.stdin is not None and proc.stdout is not None

    def ask(req: dict[str, Any]) -> dict[str, Any]:
        proc.stdin.write(json.dumps(req) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        answer: dict[str, Any] = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    try:
        loaded = ask({"op": "load", "room_version": sim.rv.identifier, "events": [
            {"pdu": sim.events[e].pdu, "event_id": e, "rejected": False} for e in sim.order]})
        assert not loaded["id_mismatches"]
        answer = ask({"op": "resolve", "repeat": runs, "state_sets": [
            [[t, sk, e] for (t, sk), e in f.items()] for f in forks]})
    finally:
        proc.stdin.close()
        proc.wait()
    return statistics.median(answer["seconds"]), {(t, sk): e for t, sk, e in answer["state"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=10_000)
    ap.add_argument("--fork-events", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--version", default="10")
    args = ap.parse_args()
    rv = get_room_version(args.version)
    sim, forks = build(rv, args.members, args.fork_events)
    conflicted = sum(1 for k in set(forks[0]) | set(forks[1]) if forks[0].get(k) != forks[1].get(k))
    print(f"room v{rv.identifier}: {len(sim.events)} events, {len(forks[0])}/{len(forks[1])} "
          f"state entries, {conflicted} conflicted keys")
    ours, our_state = time_ours(sim, forks, args.runs)
    theirs, their_state = time_synapse(sim, forks, args.runs)
    print(f"ours    median {ours * 1000:8.1f} ms ({args.runs} runs)")
    print(f"synapse median {theirs * 1000:8.1f} ms ({args.runs} runs)")
    print(f"ratio ours/synapse {ours / theirs:.2f}  same result: {our_state == their_state}")


if __name__ == "__main__":
    main()
