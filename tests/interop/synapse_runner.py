"""Answers auth and state resolution questions with Synapse's own code (run under
.venv-synapse/bin/python, never imported by our tests).

Protocol: one JSON object per line on stdin, one answer per line on stdout.
  {"op": "load", "room_version": "10", "events": [{"pdu": {...}, "event_id": "$..",
   "rejected": false}, ...]}           -> {"ok": true, "id_mismatches": {our_id: synapse_id}}
  {"op": "auth", "event_ids": [...]}  -> {"verdicts": {event_id: null | "reason"}}
  {"op": "resolve", "state_sets": [[[type, state_key, event_id], ...], ...], "repeat": 1}
                                       -> {"state": [[type, state_key, event_id], ...],
                                           "seconds": [time of each resolve call]}
Events are passed to Synapse as stored ("persisted") events through an in-memory store, whose
auth chain walks are done here with plain sets, written independently of dendrite_lite.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Collection, Iterable
from typing import Any

from synapse.api.errors import AuthError
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS, StateResolutionVersions
from synapse.event_auth import (
    check_state_dependent_auth_rules,
    check_state_independent_auth_rules,
)
from synapse.events import EventBase, make_event_from_dict
from synapse.state import v1 as state_v1
from synapse.state import v2 as state_v2
from synapse.storage.databases.main.event_federation import StateDifference


def run_sync(coro: Any) -> Any:
    """Drive a coroutine that never really suspends (all our awaitables are ready)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("Synapse code suspended on something we did not provide")


class Clock:
    async def sleep(self, duration: Any) -> None:
        return None


class Store:
    """Synapse's StateResolutionStore over a dict of events."""

    def __init__(self, events: dict[str, EventBase]) -> None:
        self.events = events
        self._chains: dict[str, frozenset[str]] = {}

    async def get_events(
        self, event_ids: Collection[str], allow_rejected: bool = False
    ) -> dict[str, EventBase]:
        return {e: self.events[e] for e in event_ids if e in self.events}

    def chain_with_self(self, roots: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            eid = stack.pop()
            if eid in seen:
                continue
            seen.add(eid)
            stack.extend(self.events[eid].auth_event_ids())
        return seen

    def _reaches(self, targets: set[str]) -> dict[str, bool]:
        """For every event: does its auth chain (itself excluded) contain a target?"""
        memo: dict[str, bool] = {}
        for start in self.events:
            stack = [start]
            while stack:
                eid = stack[-1]
                if eid in memo:
                    stack.pop()
                    continue
                pending = [a for a in self.events[eid].auth_event_ids() if a not in memo]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                memo[eid] = any(
                    a in targets or memo[a] for a in self.events[eid].auth_event_ids()
                )
        return memo

    async def get_auth_chain_difference(
        self,
        room_id: str,
        state_sets: list[set[str]],
        conflicted_state: set[str] | None,
        additional_backwards_reachable_conflicted_events: set[str] | None,
    ) -> StateDifference:
        chains = [self.chain_with_self(s) for s in state_sets]
        diff = set().union(*chains) - set.intersection(*chains)
        subgraph = None
        if conflicted_state is not None:
            backwards = self.chain_with_self(conflicted_state)
            reaches = self._reaches(conflicted_state)
            subgraph = {e for e in backwards if e in conflicted_state or reaches[e]}
        return StateDifference(auth_difference=diff, conflicted_subgraph=subgraph)


class Runner:
    def __init__(self) -> None:
        self.rv: Any = None
        self.events: dict[str, EventBase] = {}
        self.room_id = ""

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        self.rv = KNOWN_ROOM_VERSIONS[req["room_version"]]
        self.events = {}
        mismatches = {}
        for item in req["events"]:
            ev = make_event_from_dict(
                item["pdu"], self.rv, {}, rejected_reason="auth" if item["rejected"] else None
            )
            if ev.event_id != item["event_id"]:
                mismatches[item["event_id"]] = ev.event_id
            self.events[ev.event_id] = ev
            if ev.type != "m.room.create":
                self.room_id = ev.room_id
        return {"ok": True, "id_mismatches": mismatches}

    def auth(self, req: dict[str, Any]) -> dict[str, Any]:
        store = Store(self.events)
        verdicts: dict[str, str | None] = {}
        for eid in req["event_ids"]:
            ev = self.events[eid]
            try:
                run_sync(check_state_independent_auth_rules(store, ev, self.events))
                auth = [self.events[a] for a in ev.auth_event_ids() if a in self.events]
                check_state_dependent_auth_rules(ev, auth)
                verdicts[eid] = None
            except AuthError as e:
                verdicts[eid] = str(e)
        return {"verdicts": verdicts}

    def resolve(self, req: dict[str, Any]) -> dict[str, Any]:
        state_sets = [{(t, sk): eid for t, sk, eid in s} for s in req["state_sets"]]
        store = Store(self.events)
        seconds = []
        result: Any = None
        for _ in range(req.get("repeat", 1)):
            t0 = time.perf_counter()
            if self.rv.state_res == StateResolutionVersions.V1:
                result = run_sync(
                    state_v1.resolve_events_with_store(
                        self.room_id, self.rv, state_sets, None, store.get_events
                    )
                )
            else:
                result = run_sync(
                    state_v2.resolve_events_with_store(
                        Clock(), self.room_id, self.rv, state_sets, None, store
                    )
                )
            seconds.append(time.perf_counter() - t0)
        return {"state": sorted([t, sk, eid] for (t, sk), eid in result.items()), "seconds": seconds}


def main() -> None:
    runner = Runner()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            answer = getattr(runner, req["op"])(req)
        except Exception as e:  # report, keep serving: one bad question must not end the session
            answer = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
