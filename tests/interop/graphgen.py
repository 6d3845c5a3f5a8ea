"""Random room DAGs with forks and merges, for cross-checking auth and state resolution.

`build_graph(room_version, actions)` plays a list of small integer triples as room activity on
one or more forks: joins, leaves, kicks, bans, invites, power level changes by various users,
join rule and topic changes, forks and merges. Every event gets real ids (reference hashes from
v3), auth events picked from its fork's state, and our auth verdict against those auth events;
a rejected event stays in the graph but changes no state. At each merge the forks' states are
resolved with our resolve_state, and every (state sets, result) pair is kept so another
implementation can be asked the same questions.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.events.auth import (
    AuthError,
    auth_types_for_event,
    check_auth,
    check_auth_events_selection,
)
from dendrite_lite.events.event import Event, StateKey
from dendrite_lite.events.hashes import content_hash_base64
from dendrite_lite.events.ids import compute_event_id
from dendrite_lite.events.room_versions import RoomVersion
from dendrite_lite.events.state_res import resolve_state

USERS = ["@u0:s0", "@u1:s1", "@u2:s0", "@u3:s2", "@u4:s1", "@u5:s3"]
CREATOR = USERS[0]
CREATE_KEY: StateKey = ("m.room.create", "")
PL_KEY: StateKey = ("m.room.power_levels", "")
MAX_BRANCHES = 4

Action = tuple[int, int, int]


@dataclass
class Branch:
    heads: list[str]
    state: dict[StateKey, str]
    # earlier states of this fork, for stale forks and events citing old auth events
    history: list[dict[StateKey, str]] = field(default_factory=list)


@dataclass
class Graph:
    rv: RoomVersion
    events: dict[str, Event] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    verdicts: dict[str, str | None] = field(default_factory=dict)
    resolutions: list[tuple[list[dict[StateKey, str]], dict[StateKey, str]]] = field(
        default_factory=list
    )
    room_id: str = "!room:s0"
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(0))

    # --- building events ---------------------------------------------------------------------
    def add(
        self,
        branch: Branch,
        etype: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        ts_jitter: int = 0,
        stale: int = 0,
    ) -> Event:
        """`stale` > 0 picks auth events from that many states back (a buggy or malicious
        server's event: it passes auth against what it cites, not against the fork's state)."""
        rv = self.rv
        keys = auth_types_for_event(rv, etype, state_key, sender, content)
        cited = branch.history[-stale] if 0 < stale <= len(branch.history) else branch.state
        auth_ids = [cited[k] for k in keys if k in cited]
        prev = sorted(branch.heads)
        ev = new_event(
            rv, self.room_id, etype, sender, content, state_key, auth_ids, prev,
            depth=max((self.events[p].depth for p in prev), default=0) + 1,
            ts=1_000_000 + next(self._ts) * 10 - ts_jitter,
            v1_id=f"${len(self.order)}:{sender.partition(':')[2]}",
        )
        if ev.type == "m.room.create":
            self.room_id = ev.room_id
        event_id = ev.event_id
        verdict = self._auth(ev)
        self.verdicts[event_id] = verdict
        self.events[event_id] = ev
        self.order.append(event_id)
        if verdict is None:
            branch.heads = [event_id]
            branch.history.append(dict(branch.state))
            if ev.is_state():
                branch.state[ev.state_tuple] = event_id
        else:
            ev.rejected_reason = "auth"
        return ev

    def _auth(self, ev: Event) -> str | None:
        """Our verdict on the event against its own auth events (None: accepted)."""
        auth = [self.events[a] for a in ev.auth_event_ids]
        mapping = {a.state_tuple: a for a in auth}
        if self.rv.room_id_is_create_event_hash and ev.type != "m.room.create":
            mapping[CREATE_KEY] = self.events["$" + self.room_id[1:]]
        try:
            check_auth_events_selection(ev, auth)
            check_auth(ev, mapping)
        except AuthError as e:
            return str(e)
        return None

    def merge(self, branches: Sequence[Branch], sender_hint: int) -> Branch:
        states = [dict(b.state) for b in branches]
        resolved = resolve_state(self.rv, states, self.events.get)
        self.resolutions.append((states, dict(resolved)))
        merged = Branch(
            sorted({h for b in branches for h in b.heads}), dict(resolved), list(branches[0].history)
        )
        joined = sorted(
            u for u in USERS if _membership(self, merged.state, u) == "join"
        )
        sender = joined[sender_hint % len(joined)] if joined else CREATOR
        self.add(merged, "m.room.message", sender, {"body": "merge"})
        return merged


def new_event(
    rv: RoomVersion,
    room_id: str,
    etype: str,
    sender: str,
    content: Mapping[str, Any],
    state_key: str | None,
    auth_ids: Sequence[str],
    prev_ids: Sequence[str],
    *,
    depth: int,
    ts: int,
    v1_id: str,
) -> Event:
    """An event as a remote server would send it: real content hash and event id (v3+), the
    room id derived from it for a v12 create event, v1/v2 references as [id, hashes] pairs."""

    def refs(ids: Sequence[str]) -> list[Any]:
        return [[i, {"sha256": "x"}] for i in ids] if rv.event_id_in_event else list(ids)

    pdu: dict[str, Any] = {
        "type": etype,
        "sender": sender,
        "content": dict(content),
        "room_id": room_id,
        "auth_events": refs(auth_ids),
        "prev_events": refs(prev_ids),
        "depth": depth,
        "origin_server_ts": ts,
        "signatures": {},
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    v12_create = etype == "m.room.create" and rv.room_id_is_create_event_hash
    if v12_create:
        del pdu["room_id"]
    if rv.event_id_in_event:
        pdu["event_id"] = v1_id
    pdu["hashes"] = {"sha256": content_hash_base64(pdu)}
    event_id = compute_event_id(pdu, rv)
    return Event(pdu, rv, event_id, room_id="!" + event_id[1:] if v12_create else None)


def _membership(g: Graph, state: Mapping[StateKey, str], user: str) -> str | None:
    eid = state.get(("m.room.member", user))
    return g.events[eid].membership if eid else None


def _initial_power_levels(rv: RoomVersion) -> dict[str, Any]:
    users = {USERS[1]: 100, USERS[2]: 50}
    if not rv.privileged_creators:
        users[CREATOR] = 100
    return {"users": users, "events": {"m.room.power_levels": 100}, "state_default": 50}


def build_graph(rv: RoomVersion, actions: Sequence[Action]) -> Graph:
    g = Graph(rv)
    main = Branch([], {})
    create: dict[str, Any] = {"room_version": rv.identifier}
    if not rv.implicit_room_creator:
        create["creator"] = CREATOR
    g.add(main, "m.room.create", CREATOR, create, "")
    g.add(main, "m.room.member", CREATOR, {"membership": "join"}, CREATOR)
    g.add(main, "m.room.power_levels", CREATOR, _initial_power_levels(rv), "")
    g.add(main, "m.room.join_rules", CREATOR, {"join_rule": "public"}, "")
    for u in USERS[1:4]:
        g.add(main, "m.room.member", u, {"membership": "join"}, u)
    branches = [main]
    for kind, a, b in actions:
        _play(g, branches, kind % 10, a, b)
    if len(branches) > 1:
        g.merge(branches, 0)
    return g


def _play(g: Graph, branches: list[Branch], kind: int, a: int, b: int) -> None:
    n = len(branches)
    if kind == 0:
        if n < MAX_BRANCHES:
            src = branches[a % n]
            branches.append(Branch(list(src.heads), dict(src.state), list(src.history)))
        return
    if kind == 1:
        if n < 2:
            return
        i, j = a % n, b % n
        if i == j:
            j = (i + 1) % n
        picked = list(branches) if a % 5 == 0 else [branches[i], branches[j]]
        merged = g.merge(picked, a + b)
        for p in picked:
            branches.remove(p)
        branches.append(merged)
        return
    branch = branches[(a + b) % n]
    sender, target = USERS[a % len(USERS)], USERS[b % len(USERS)]
    jitter = (a * 7 + b) % 15 * 15  # timestamps out of DAG order, sometimes equal
    stale = (a + 2 * b) % 4 if b % 6 == 0 else 0
    member = "m.room.member"
    if kind == 2:
        g.add(branch, member, target, {"membership": "join"}, target, ts_jitter=jitter, stale=stale)
    elif kind == 3:
        g.add(branch, member, target, {"membership": "leave"}, target, ts_jitter=jitter, stale=stale)
    elif kind == 4:
        g.add(branch, member, sender, {"membership": "leave"}, target, ts_jitter=jitter, stale=stale)
    elif kind == 5:
        g.add(branch, member, sender, {"membership": "ban"}, target, ts_jitter=jitter, stale=stale)
    elif kind == 6:
        current = g.events[branch.state[PL_KEY]].content if PL_KEY in branch.state else {}
        content = {k: (dict(v) if isinstance(v, dict) else v) for k, v in current.items()}
        users = content.setdefault("users", {})
        level = (0, 50, 100, 75)[(a + b) % 4]
        if target == CREATOR and g.rv.privileged_creators:
            content["ban"] = (50, 75, 100)[b % 3]  # creators may not be listed in v12
        elif level == 0:
            users.pop(target, None)
        else:
            users[target] = level
        if b % 5 == 0:
            content["kick"] = (50, 75)[a % 2]
        g.add(branch, "m.room.power_levels", sender, content, "", ts_jitter=jitter, stale=stale)
    elif kind == 7:
        rule = ("public", "invite")[b % 2]
        g.add(branch, "m.room.join_rules", sender, {"join_rule": rule}, "", ts_jitter=jitter, stale=stale)
    elif kind == 8:
        g.add(branch, "m.room.topic", sender, {"topic": f"t{a}-{b}"}, "", ts_jitter=jitter, stale=stale)
    else:
        g.add(branch, member, sender, {"membership": "invite"}, target, ts_jitter=jitter, stale=stale)
