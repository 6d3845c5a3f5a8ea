"""State resolution: the classic scenarios as small DAGs, v1 cases, and the v12 (v2.1) changes.

Scenarios follow the cases every homeserver tests (ban vs power levels, topic reset, join rule
evasion, off-topic power levels, mainline ordering), written here as our own DAGs: `run_dag`
builds the events in topological order, computes the state before each one by resolving its
prev events' states, and picks auth events from that state as a server would.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from dendrite_lite.events.auth import auth_types_for_event
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.events.state_res import MissingEventError, resolve_state
from dendrite_lite.events.state_res.v2 import _reverse_topological_power_sort
from dendrite_lite.events.state_res._common import EventLookup
from tests.helpers import make_event

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CHARLIE = "@charlie:c.example"
EVELYN = "@evelyn:e.example"
ZARA = "@zara:z.example"

PL = "m.room.power_levels"
MEMBER = "m.room.member"
TOPIC = "m.room.topic"
JR = "m.room.join_rules"
JOIN = {"membership": "join"}
BAN = {"membership": "ban"}

V2_FAMILY = ["2", "6", "10", "11", "12"]

# (id, sender, type, state_key, content)
Spec = tuple[str, str, str, str | None, Mapping[str, Any]]


def _users(version: str, users: Mapping[str, int]) -> dict[str, int]:
    """v12 creators may not appear in power levels (their power is infinite anyway)."""
    if get_room_version(version).privileged_creators:
        return {u: lvl for u, lvl in users.items() if u != ALICE}
    return dict(users)


def _initial(version: str) -> list[Spec]:
    create = {"room_version": version}
    if not get_room_version(version).implicit_room_creator:
        create["creator"] = ALICE
    return [
        ("CREATE", ALICE, "m.room.create", "", create),
        ("IMA", ALICE, MEMBER, ALICE, JOIN),
        ("IPOWER", ALICE, PL, "", {"users": _users(version, {ALICE: 100})}),
        ("IJR", ALICE, JR, "", {"join_rule": "public"}),
        ("IMB", BOB, MEMBER, BOB, JOIN),
        ("IMC", CHARLIE, MEMBER, CHARLIE, JOIN),
        ("IMZ", ZARA, MEMBER, ZARA, JOIN),
        ("START", ZARA, "m.room.message", None, {}),
        ("END", ZARA, "m.room.message", None, {}),
    ]


INITIAL_CHAIN = ["START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"]


class Dag:
    """Events built from specs and prev-event chains; states computed with resolve_state."""

    def __init__(self, version: str, specs: Sequence[Spec], chains: Sequence[Sequence[str]]):
        self.rv = get_room_version(version)
        self.events: dict[str, Event] = {}
        self.state_after: dict[str, dict[StateKey, str]] = {}
        all_specs = {s[0]: s for s in [*_initial(version), *specs]}
        prevs: dict[str, set[str]] = {name: set() for name in all_specs}
        for chain in [INITIAL_CHAIN, *chains]:
            for a, b in itertools.pairwise(chain):
                prevs[a].add(b)
        self.room_id = "!CREATE" if self.rv.room_id_is_create_event_hash else "!room:a.example"
        depth: dict[str, int] = {}
        for ts, name in enumerate(_topological(prevs)):
            _, sender, etype, state_key, content = all_specs[name]
            prev = sorted(prevs[name])
            before = self.resolve([self.state_after[p] for p in prev])
            keys = auth_types_for_event(self.rv, etype, state_key, sender, content)
            ev = make_event(
                self.rv, etype, sender, content, state_key, self.eid(name),
                room_id=self.room_id,
                auth_events=[before[k] for k in keys if k in before],
                prev_events=[self.eid(p) for p in prev],
                depth=max((depth[p] for p in prev), default=0) + 1,
                origin_server_ts=ts,
            )
            depth[name] = ev.depth
            self.events[ev.event_id] = ev
            after = dict(before)
            if ev.is_state():
                after[ev.state_tuple] = ev.event_id
            self.state_after[name] = after

    def eid(self, name: str) -> str:
        return f"${name}:a.example" if self.rv.event_id_in_event else f"${name}"

    def resolve(self, states: Sequence[Mapping[StateKey, str]]) -> dict[StateKey, str]:
        if not states:
            return {}
        if len(states) == 1:
            return dict(states[0])
        return resolve_state(self.rv, states, self.events.get)

    def changed_at_end(self) -> set[str]:
        """Names of the state events at END that differ from START's state."""
        start, end = self.state_after["START"], self.state_after["END"]
        return {v.strip("$").split(":")[0] for k, v in end.items() if start.get(k) != v}


def _topological(prevs: Mapping[str, set[str]]) -> list[str]:
    out: list[str] = []
    done: set[str] = set()
    while len(out) < len(prevs):
        ready = sorted(n for n in prevs if n not in done and prevs[n] <= done)
        out.append(ready[0])
        done.add(ready[0])
    return out


# --- the classic v2 scenarios -----------------------------------------------------------------


@pytest.mark.parametrize("version", V2_FAMILY)
def test_ban_beats_power_level_change_by_banned_user(version: str) -> None:
    # Alice makes Bob a moderator then bans him; on a fork Bob re-sends power levels. The ban
    # (from the more powerful sender, after PA) wins and Bob's PB loses.
    users = _users(version, {ALICE: 100, BOB: 50})
    dag = Dag(
        version,
        [
            ("PA", ALICE, PL, "", {"users": users}),
            ("MA", ALICE, MEMBER, ALICE, JOIN),
            ("MB", ALICE, MEMBER, BOB, BAN),
            ("PB", BOB, PL, "", {"users": users}),
        ],
        [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]],
    )
    assert dag.changed_at_end() == {"PA", "MA", "MB"}


@pytest.mark.parametrize("version", V2_FAMILY)
def test_join_rule_evasion(version: str) -> None:
    # Evelyn joins on a fork where the room is still public; the invite-only rule wins and
    # her join fails re-authorisation against it.
    dag = Dag(
        version,
        [
            ("JR", ALICE, JR, "", {"join_rule": "invite"}),
            ("ME", EVELYN, MEMBER, EVELYN, JOIN),
        ],
        [["END", "JR", "START"], ["END", "ME", "START"]],
    )
    assert dag.changed_at_end() == {"JR"}


@pytest.mark.parametrize("version", V2_FAMILY)
def test_offtopic_power_levels(version: str) -> None:
    # Charlie demotes himself after being promoted by Bob: the latest chain survives over the
    # fork that only has PA.
    dag = Dag(
        version,
        [
            ("PA", ALICE, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50})}),
            ("PB", BOB, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50, CHARLIE: 50})}),
            ("PC", CHARLIE, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50, CHARLIE: 0})}),
        ],
        [["END", "PC", "PB", "PA", "START"], ["END", "PA"]],
    )
    assert dag.changed_at_end() == {"PC"}


@pytest.mark.parametrize("version", V2_FAMILY)
def test_topic_reset_after_ban(version: str) -> None:
    # Bob sets a topic as a moderator, then is banned; the fork from before his promotion must
    # not keep his topic: it fails auth once the ban is applied, so T1 comes back.
    dag = Dag(
        version,
        [
            ("T1", ALICE, TOPIC, "", {"topic": "one"}),
            ("PA", ALICE, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50})}),
            ("T2", BOB, TOPIC, "", {"topic": "two"}),
            ("MB", ALICE, MEMBER, BOB, BAN),
        ],
        [["END", "MB", "T2", "PA", "T1", "START"], ["END", "T1"]],
    )
    assert dag.changed_at_end() == {"T1", "MB", "PA"}


def _demotion_specs(version: str) -> list[Spec]:
    """Alice promotes Bob (PA1) then demotes him (PA2); Bob re-asserts (PB) and sets T3."""
    return [
        ("T1", ALICE, TOPIC, "", {"topic": "1"}),
        ("PA1", ALICE, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50})}),
        ("T2", ALICE, TOPIC, "", {"topic": "2"}),
        ("PA2", ALICE, PL, "", {"users": _users(version, {ALICE: 100, BOB: 0})}),
        ("PB", BOB, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50})}),
        ("T3", BOB, TOPIC, "", {"topic": "3"}),
    ]


@pytest.mark.parametrize("version", V2_FAMILY)
def test_topic_basic_demotion_wins(version: str) -> None:
    # Alice demotes Bob (PA2) while Bob re-asserts his level and sets T3 on a fork.
    dag = Dag(
        version,
        _demotion_specs(version),
        [["END", "PA2", "T2", "PA1", "T1", "START"], ["END", "T3", "PB", "PA1"]],
    )
    assert dag.changed_at_end() == {"PA2", "T2"}


@pytest.mark.parametrize("version", V2_FAMILY)
def test_topic_after_merge_keeps_latest(version: str) -> None:
    # The forks merge at a message (MZ1); Alice's T4 after the merge is the topic.
    dag = Dag(
        version,
        [
            *_demotion_specs(version),
            ("MZ1", ZARA, "m.room.message", None, {}),
            ("T4", ALICE, TOPIC, "", {"topic": "4"}),
        ],
        [
            ["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"],
            ["END", "MZ1", "T3", "PB", "PA1"],
        ],
    )
    assert dag.changed_at_end() == {"T4", "PA2"}


@pytest.mark.parametrize("version", V2_FAMILY)
def test_mainline_ordering_beats_timestamps(version: str) -> None:
    # T4 is sent after T3 but cites an older power levels event (PA1 via PB): mainline order
    # puts it first, so T3 (citing PA2, the resolved power levels) is applied last and wins.
    dag = Dag(
        version,
        [
            ("T1", ALICE, TOPIC, "", {"topic": "1"}),
            ("PA1", ALICE, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50})}),
            ("T2", ALICE, TOPIC, "", {"topic": "2"}),
            (
                "PA2", ALICE, PL, "",
                {"users": _users(version, {ALICE: 100, BOB: 50}), "events": {PL: 100}},
            ),
            ("PB", BOB, PL, "", {"users": _users(version, {ALICE: 100, BOB: 50})}),
            ("T3", BOB, TOPIC, "", {"topic": "3"}),
            ("T4", ALICE, TOPIC, "", {"topic": "4"}),
        ],
        [["END", "T3", "PA2", "T2", "PA1", "T1", "START"], ["END", "T4", "PB", "PA1"]],
    )
    assert dag.changed_at_end() == {"T3", "PA2"}
    # Without mainline ordering, the later timestamp would win: T4 really is later.
    assert dag.events[dag.eid("T4")].origin_server_ts > dag.events[dag.eid("T3")].origin_server_ts


# --- reverse topological power ordering --------------------------------------------------------


def _flat_room(version: str, levels: Mapping[str, int]) -> tuple[dict[str, Event], Event, Event]:
    rv = get_room_version(version)
    room_id = "!c" if rv.room_id_is_create_event_hash else "!r:a.example"
    create = make_event(rv, "m.room.create", ALICE, {"creator": ALICE}, "", "$c", room_id=room_id)
    pl = make_event(
        rv, PL, ALICE, {"users": dict(levels)}, "", "$pl", room_id=room_id, auth_events=[create]
    )
    return {e.event_id: e for e in (create, pl)}, create, pl


def test_power_ordering_tie_breaks_level_then_ts_then_id() -> None:
    events, create, pl = _flat_room("10", {ALICE: 100, BOB: 50, CHARLIE: 50})

    def ev(eid: str, sender: str, ts: int) -> Event:
        e = make_event(
            "10", JR, sender, {"join_rule": "public"}, "", eid,
            room_id="!r:a.example", auth_events=[create, pl], origin_server_ts=ts,
        )
        events[eid] = e
        return e

    ev("$low_early", CHARLIE, 1)
    ev("$b_tie", BOB, 5)
    ev("$a_tie", CHARLIE, 5)
    ev("$high_late", ALICE, 9)
    full = set(events) - {"$c", "$pl"}
    order = _reverse_topological_power_sort(sorted(full), full, EventLookup(events.get))
    # Highest power first; equal power: earlier ts; equal ts: smaller event id.
    assert order == ["$high_late", "$low_early", "$a_tie", "$b_tie"]


def test_power_ordering_respects_auth_edges_over_power() -> None:
    events, create, pl = _flat_room("10", {ALICE: 100, BOB: 50})
    # Bob's event is an auth event of Alice's, so it must come first despite lower power.
    bob = make_event("10", MEMBER, BOB, JOIN, BOB, "$bob", room_id="!r:a.example",
                     auth_events=[create, pl], origin_server_ts=9)
    alice = make_event("10", PL, ALICE, {"users": {ALICE: 100}}, "", "$alice",
                       room_id="!r:a.example", auth_events=[create, pl, bob], origin_server_ts=1)
    events.update({"$bob": bob, "$alice": alice})
    order = _reverse_topological_power_sort(["$alice"], {"$alice", "$bob"}, EventLookup(events.get))
    assert order == ["$bob", "$alice"]


def test_v12_creator_sorts_above_any_power_level() -> None:
    rv = get_room_version("12")
    create = make_event(rv, "m.room.create", ALICE, {"room_version": "12"}, "", "$c")
    room = create.room_id
    pl = make_event(rv, PL, ALICE, {"users": {BOB: 2**53 - 1}}, "", "$pl", room_id=room)
    events = {"$c": create, "$pl": pl}
    for eid, sender in (("$from_bob", BOB), ("$from_alice", ALICE)):
        events[eid] = make_event(rv, JR, sender, {"join_rule": "public"}, "", eid, room_id=room,
                                 auth_events=[pl], origin_server_ts=1 if sender == BOB else 2)
    full = {"$from_bob", "$from_alice"}
    order = _reverse_topological_power_sort(sorted(full), full, EventLookup(events.get))
    assert order == ["$from_alice", "$from_bob"]  # creator: infinite power beats 2**53-1


# --- v12: empty starting state and the conflicted state subgraph ------------------------------


def _chain_room(version: str) -> tuple[Any, dict[str, Event]]:
    """A hand-built room where every event cites its auth events explicitly."""
    rv = get_room_version(version)
    events: dict[str, Event] = {}
    room_id = "!create" if rv.room_id_is_create_event_hash else "!r:a.example"
    create_content: dict[str, Any] = {"room_version": version}
    if not rv.implicit_room_creator:
        create_content["creator"] = ALICE

    def add(name: str, sender: str, etype: str, sk: str, content: Any, auth: list[str], ts: int) -> str:
        eid = f"${name}:a.example" if rv.event_id_in_event else f"${name}"
        if etype != "m.room.create" and not rv.room_id_is_create_event_hash:
            auth = ["create", *auth]
        events[eid] = make_event(
            rv, etype, sender, content, sk, eid, room_id=room_id, origin_server_ts=ts, depth=ts,
            auth_events=[f"${a}:a.example" if rv.event_id_in_event else f"${a}" for a in auth],
        )
        return eid

    return add, events


@pytest.mark.parametrize("version,expected_jr", [("11", None), ("12", "jr2")])
def test_join_rules_reset_unless_starting_from_empty_state(version: str, expected_jr: str | None) -> None:
    # Alice (the only one able to set join rules) has left in both forks; the forks disagree on
    # the join rules. v2 re-checks both against Alice's leave and keeps neither (a reset);
    # v2.1 starts from nothing, so the rules are checked as of their own auth events.
    add, events = _chain_room(version)
    c = add("create", ALICE, "m.room.create", "", {"room_version": version, "creator": ALICE}, [], 1)
    ma1 = add("ma1", ALICE, MEMBER, ALICE, JOIN, [], 2)
    power = add("power", ALICE, PL, "", {"users": {BOB: 100}} if version == "12"
                else {"users": {ALICE: 100, BOB: 100}}, ["ma1"], 3)
    jr1 = add("jr1", ALICE, JR, "", {"join_rule": "public"}, ["ma1", "power"], 4)
    mb = add("mb", BOB, MEMBER, BOB, JOIN, ["power", "jr1"], 5)
    jr2 = add("jr2", ALICE, JR, "", {"join_rule": "invite"}, ["ma1", "power"], 6)
    ma2 = add("ma2", ALICE, MEMBER, ALICE, {"membership": "leave"}, ["power", "ma1"], 7)
    common = {("m.room.create", ""): c, (MEMBER, ALICE): ma2, (MEMBER, BOB): mb, (PL, ""): power}
    good = {**common, (JR, ""): jr2}
    stale = {**common, (JR, ""): jr1}
    result = resolve_state(get_room_version(version), [good, stale], events.get)
    assert {k: v for k, v in result.items() if k != (JR, "")} == common
    if expected_jr is None:
        assert (JR, "") not in result
    else:
        assert result[(JR, "")] == jr2


def test_v12_replays_conflicted_subgraph() -> None:
    # Evelyn's second member event cites an old power levels event directly but her first join
    # (which cites the newest) indirectly. The events between the conflicted ones (me1, power3,
    # power2) are replayed; mainline order applies me2 (old epoch) before me1, so me1 wins.
    add, events = _chain_room("12")
    c = add("create", ALICE, "m.room.create", "", {"room_version": "12"}, [], 1)
    ma = add("ma", ALICE, MEMBER, ALICE, JOIN, [], 2)
    p1 = add("p1", ALICE, PL, "", {"users": {}}, ["ma"], 3)
    jr = add("jr", ALICE, JR, "", {"join_rule": "public"}, ["ma", "p1"], 4)
    mb = add("mb", BOB, MEMBER, BOB, JOIN, ["p1", "jr"], 5)
    mc = add("mc", CHARLIE, MEMBER, CHARLIE, JOIN, ["p1", "jr"], 6)
    add("p2", ALICE, PL, "", {"users": {BOB: 50}}, ["ma", "p1"], 7)
    p3 = add("p3", BOB, PL, "", {"users": {BOB: 50, CHARLIE: 50}}, ["mb", "p2"], 8)
    me1 = add("me1", EVELYN, MEMBER, EVELYN, JOIN, ["p3", "jr"], 9)
    me2 = add("me2", EVELYN, MEMBER, EVELYN, {"membership": "join", "displayname": "e"},
              ["p1", "jr", "me1"], 10)
    mz = add("mz", ZARA, MEMBER, ZARA, JOIN, ["p3", "jr"], 11)
    base = {("m.room.create", ""): c, (MEMBER, ALICE): ma, (MEMBER, BOB): mb,
            (MEMBER, CHARLIE): mc, (JR, ""): jr}
    dodgy = {**base, (MEMBER, EVELYN): me2, (PL, ""): p1}
    honest = {**base, (MEMBER, ZARA): mz, (PL, ""): p3}
    result = resolve_state(get_room_version("12"), [dodgy, honest], events.get)
    assert result == {**base, (MEMBER, EVELYN): me1, (MEMBER, ZARA): mz, (PL, ""): p3}


def test_v12_iterative_checks_use_create_event_from_room_id() -> None:
    # Nothing in the state or the auth events carries the create event in v12; it must still
    # be found (from the room id) or resolution cannot authorise anything.
    add, events = _chain_room("12")
    c = add("create", ALICE, "m.room.create", "", {"room_version": "12"}, [], 1)
    ma = add("ma", ALICE, MEMBER, ALICE, JOIN, [], 2)
    t1 = add("t1", ALICE, TOPIC, "", {"topic": "1"}, ["ma"], 3)
    t2 = add("t2", ALICE, TOPIC, "", {"topic": "2"}, ["ma"], 4)
    base = {("m.room.create", ""): c, (MEMBER, ALICE): ma}
    result = resolve_state(get_room_version("12"), [{**base, (TOPIC, ""): t1},
                                                    {**base, (TOPIC, ""): t2}], events.get)
    assert result == {**base, (TOPIC, ""): t2}  # same mainline position: later ts wins
    del events["$create"]
    with pytest.raises(MissingEventError) as err:
        resolve_state(get_room_version("12"), [{**base, (TOPIC, ""): t1},
                                               {**base, (TOPIC, ""): t2}], events.get)
    assert err.value.event_id == "$create"


# --- rejected events, missing events, trivial inputs -----------------------------------------


def test_rejected_event_never_enters_state_and_is_not_used_as_auth() -> None:
    add, events = _chain_room("10")
    c = add("create", ALICE, "m.room.create", "", {}, [], 1)
    ma = add("ma", ALICE, MEMBER, ALICE, JOIN, [], 2)
    p = add("p", ALICE, PL, "", {"users": {ALICE: 100}}, ["ma"], 3)
    t1 = add("t1", ALICE, TOPIC, "", {"topic": "1"}, ["ma", "p"], 4)
    t2 = add("t2", ALICE, TOPIC, "", {"topic": "2"}, ["ma", "p"], 5)
    base = {("m.room.create", ""): c, (MEMBER, ALICE): ma, (PL, ""): p}
    states = [{**base, (TOPIC, ""): t1}, {**base, (TOPIC, ""): t2}]
    rv = get_room_version("10")
    assert resolve_state(rv, states, events.get)[(TOPIC, "")] == t2
    events[t2].rejected_reason = "auth"
    assert resolve_state(rv, states, events.get)[(TOPIC, "")] == t1


def test_missing_conflicted_event_raises() -> None:
    add, events = _chain_room("10")
    c = add("create", ALICE, "m.room.create", "", {}, [], 1)
    ma = add("ma", ALICE, MEMBER, ALICE, JOIN, [], 2)
    with pytest.raises(MissingEventError) as err:
        resolve_state(get_room_version("10"),
                      [{("m.room.create", ""): c, (TOPIC, ""): "$nope"},
                       {("m.room.create", ""): c, (TOPIC, ""): ma}], events.get)
    assert err.value.event_id == "$nope"


@pytest.mark.parametrize("version", ["1", "2", "12"])
def test_no_conflict_returns_union(version: str) -> None:
    rv = get_room_version(version)
    a = {("m.room.create", ""): "$c", (TOPIC, ""): "$t"}
    assert resolve_state(rv, [], lambda _: None) == {}
    assert resolve_state(rv, [a], lambda _: None) == a
    assert resolve_state(rv, [a, dict(a)], lambda _: None) == a


def test_v2_key_missing_from_one_set_is_conflicted_and_reauthorised() -> None:
    add, events = _chain_room("10")
    c = add("create", ALICE, "m.room.create", "", {}, [], 1)
    ma = add("ma", ALICE, MEMBER, ALICE, JOIN, [], 2)
    # Bob's topic: Bob never joined, so it cannot pass re-authorisation.
    tb = add("tb", BOB, TOPIC, "", {"topic": "x"}, [], 3)
    base = {("m.room.create", ""): c, (MEMBER, ALICE): ma}
    result = resolve_state(get_room_version("10"), [base, {**base, (TOPIC, ""): tb}], events.get)
    assert result == base
    # v1: a key only one side has is simply taken.
    add1, events1 = _chain_room("1")
    c1 = add1("create", ALICE, "m.room.create", "", {}, [], 1)
    tb1 = add1("tb", BOB, TOPIC, "", {"topic": "x"}, [], 3)
    result1 = resolve_state(get_room_version("1"), [{("m.room.create", ""): c1},
                                                    {("m.room.create", ""): c1, (TOPIC, ""): tb1}],
                            lambda _: None)
    assert result1[(TOPIC, "")] == tb1


def test_auth_chain_index_gives_same_result_as_walking() -> None:
    dag = Dag("12", [
        ("PA", ALICE, PL, "", {"users": {BOB: 50}}),
        ("MB", ALICE, MEMBER, BOB, BAN),
        ("PB", BOB, PL, "", {"users": {BOB: 50}}),
        ("T", BOB, TOPIC, "", {"topic": "t"}),
    ], [["END", "MB", "PA", "START"], ["END", "T", "PB", "PA"]])
    states = [dag.state_after["MB"], dag.state_after["T"]]
    chains: dict[str, frozenset[str]] = {}

    def chain(eid: str) -> frozenset[str]:
        if eid not in chains:
            out: set[str] = set()
            for a in dag.events[eid].auth_event_ids:
                out.add(a)
                out |= chain(a)
            chains[eid] = frozenset(out)
        return chains[eid]

    walked = resolve_state(dag.rv, states, dag.events.get)
    indexed = resolve_state(dag.rv, states, dag.events.get, auth_chain=chain)
    assert walked == indexed
    assert walked[(MEMBER, BOB)] == dag.eid("MB")
    assert (TOPIC, "") not in walked


# --- v1 ---------------------------------------------------------------------------------------


def _v1_room() -> tuple[Any, dict[str, Event], dict[StateKey, str]]:
    add, events = _chain_room("1")
    c = add("create", ALICE, "m.room.create", "", {"creator": ALICE}, [], 1)
    ma = add("ma", ALICE, MEMBER, ALICE, JOIN, [], 2)
    p1 = add("p1", ALICE, PL, "", {"users": {ALICE: 100, BOB: 50}}, ["ma"], 3)
    jr = add("jr", ALICE, JR, "", {"join_rule": "public"}, ["ma", "p1"], 4)
    mb = add("mb", BOB, MEMBER, BOB, JOIN, ["p1", "jr"], 5)
    base = {("m.room.create", ""): c, (MEMBER, ALICE): ma, (PL, ""): p1, (JR, ""): jr,
            (MEMBER, BOB): mb}
    return add, events, base


def test_v1_power_levels_lowest_depth_first_then_while_allowed() -> None:
    add, events, base = _v1_room()
    # Alice demotes Bob at depth 6; Bob's own power change at depth 7 is checked after it and
    # refused, so Alice's stays.
    pa = add("pa", ALICE, PL, "", {"users": {ALICE: 100, BOB: 0}}, ["ma", "p1"], 6)
    pb = add("pb", BOB, PL, "", {"users": {ALICE: 100, BOB: 50}, "ban": 40}, ["mb", "p1"], 7)
    states = [{**base, (PL, ""): pa}, {**base, (PL, ""): pb}]
    assert resolve_state(get_room_version("1"), states, events.get)[(PL, "")] == pa


def test_v1_power_levels_later_allowed_event_wins() -> None:
    add, events, base = _v1_room()
    # Now Bob's change is the older one: it goes in first, Alice's is allowed on top of it.
    pb = add("pb", BOB, PL, "", {"users": {ALICE: 100, BOB: 50}, "ban": 40}, ["mb", "p1"], 6)
    pa = add("pa", ALICE, PL, "", {"users": {ALICE: 100, BOB: 0}}, ["ma", "p1"], 7)
    states = [{**base, (PL, ""): pb}, {**base, (PL, ""): pa}]
    assert resolve_state(get_room_version("1"), states, events.get)[(PL, "")] == pa


def test_v1_other_events_highest_depth_that_passes() -> None:
    add, events, base = _v1_room()
    t_alice = add("ta", ALICE, TOPIC, "", {"topic": "a"}, ["ma", "p1"], 6)
    t_eve = add("te", EVELYN, TOPIC, "", {"topic": "e"}, ["p1"], 8)  # Evelyn never joined
    t_bob = add("tb", BOB, TOPIC, "", {"topic": "b"}, ["mb", "p1"], 7)
    rv = get_room_version("1")
    three = [{**base, (TOPIC, ""): t} for t in (t_alice, t_eve, t_bob)]
    assert resolve_state(rv, three, events.get)[(TOPIC, "")] == t_bob
    two = [{**base, (TOPIC, ""): t} for t in (t_alice, t_eve)]
    assert resolve_state(rv, two, events.get)[(TOPIC, "")] == t_alice


def test_v1_members_checked_against_resolved_power_levels() -> None:
    add, events, base = _v1_room()
    # Fork 1: Alice demotes Bob. Fork 2: Bob (still a moderator there) bans Charlie, who had
    # joined before the fork. Power levels resolve to Alice's demotion, so Bob's ban fails and
    # Charlie's join (the other side's value) is kept.
    mc = add("mc", CHARLIE, MEMBER, CHARLIE, JOIN, ["p1", "jr"], 6)
    pa = add("pa", ALICE, PL, "", {"users": {ALICE: 100, BOB: 0}}, ["ma", "p1"], 7)
    ban = add("ban", BOB, MEMBER, CHARLIE, BAN, ["mb", "p1", "mc"], 8)
    states = [{**base, (PL, ""): pa, (MEMBER, CHARLIE): mc},
              {**base, (PL, ""): "$p1:a.example", (MEMBER, CHARLIE): ban}]
    result = resolve_state(get_room_version("1"), states, events.get)
    assert result[(PL, "")] == pa
    assert result[(MEMBER, CHARLIE)] == mc
