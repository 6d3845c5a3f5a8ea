"""Cross-check auth verdicts and state resolution against Synapse's own code.

Random room DAGs (tests/interop/graphgen.py) are built with our code; Synapse, running in its own
venv through tests/interop/synapse_runner.py (one process for the whole session), is then asked
(a) whether each event passes auth against its auth events and (b) how each merge's state sets
resolve. Both must agree with us exactly, for room versions 1, 2, 6, 10, 11 and 12.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dendrite_lite.events.event import StateKey
from dendrite_lite.events.room_versions import get_room_version
from tests.interop.graphgen import Action, build_graph

ROOT = Path(__file__).resolve().parents[2]
SYNAPSE_PY = ROOT / ".venv-synapse" / "bin" / "python"
RUNNER = Path(__file__).with_name("synapse_runner.py")

pytestmark = pytest.mark.skipif(not SYNAPSE_PY.exists(), reason="no .venv-synapse (CI installs it)")


class SynapseRunner:
    """One long-lived Synapse process answering JSON-line questions."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [str(SYNAPSE_PY), str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=RUNNER.parent,  # so `synapse` comes from its venv, never from our tree
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"synapse runner exited with {self.proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"synapse runner failed: {answer['error']}")
        return answer

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def synapse() -> Iterator[SynapseRunner]:
    runner = SynapseRunner()
    yield runner
    runner.close()


def state_to_json(state: dict[StateKey, str]) -> list[list[str]]:
    return [[t, sk, eid] for (t, sk), eid in state.items()]


def crosscheck(synapse: SynapseRunner, version: str, actions: Sequence[Action]) -> None:
    g = build_graph(get_room_version(version), actions)
    loaded = synapse.ask(
        {
            "op": "load",
            "room_version": version,
            "events": [
                {"pdu": g.events[e].pdu, "event_id": e, "rejected": g.verdicts[e] is not None}
                for e in g.order
            ],
        }
    )
    assert loaded["id_mismatches"] == {}, "event ids (reference hashes) differ"

    theirs = synapse.ask({"op": "auth", "event_ids": g.order})["verdicts"]
    for eid in g.order:
        ours = g.verdicts[eid]
        assert (ours is None) == (theirs[eid] is None), (
            f"auth verdicts differ for {g.events[eid].pdu}: ours {ours!r}, Synapse {theirs[eid]!r}"
        )

    for states, ours_resolved in g.resolutions:
        answer = synapse.ask(
            {"op": "resolve", "state_sets": [state_to_json(s) for s in states]}
        )
        theirs_resolved = {(t, sk): eid for t, sk, eid in answer["state"]}
        assert ours_resolved == theirs_resolved, _diff(g, ours_resolved, theirs_resolved)


def _diff(g: Any, ours: dict[StateKey, str], theirs: dict[StateKey, str]) -> str:
    lines = []
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            lines.append(f"{key}: ours {ours.get(key)} Synapse {theirs.get(key)}")
    return "state resolution differs:\n" + "\n".join(lines)


actions_strategy = st.lists(
    st.tuples(st.integers(0, 9), st.integers(0, 99), st.integers(0, 99)),
    min_size=5,
    max_size=60,
)


@pytest.mark.parametrize("version", ["1", "2", "6", "10", "11", "12"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=actions_strategy)
def test_random_graphs_match_synapse(synapse: SynapseRunner, version: str, actions: list[Action]) -> None:
    crosscheck(synapse, version, actions)


@pytest.mark.parametrize("version", ["2", "12"])
def test_runner_answers_resolution_of_a_fixed_conflict(synapse: SynapseRunner, version: str) -> None:
    # A fixed graph where the forks really conflict (power levels, bans, topics): guards against
    # a generator that only ever produces trivial resolutions.
    actions = [(0, 0, 0), (6, 1, 3), (5, 2, 1), (8, 1, 1), (6, 0, 1), (8, 3, 0), (1, 0, 1)]
    g = build_graph(get_room_version(version), actions)
    assert len(g.resolutions) == 1
    states, resolved = g.resolutions[0]
    assert states[0] != states[1]
    crosscheck(synapse, version, actions)
