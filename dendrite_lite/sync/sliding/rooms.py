"""Each room of a sliding sync response (MSC4186 §Room results), read in one database read.

A room the lists or subscriptions pick is sent when the connection never sent it, when it has
events since it was last sent, or when its config grew to ask for more (a larger timeline_limit:
the older events with `unstable_expanded_timeline`; more required_state: the state newly
matched). Sent in full (`initial`) the first time, and again when the user joins a room they
were not joined to when it was last sent (a rejoin after a leave, an invite accepted). Otherwise
it is a delta: the new timeline events, and in required_state the matching state that changed.

Lazy members: the member events of the timeline's senders and of its membership targets, minus
those this connection already sent (remembered per room with the connection); a member sent
that way is then kept up to date like any requested state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from dendrite_lite.rooms.aggregations import Viewer, bundle_aggregations
from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import notifications as notifications_table
from dendrite_lite.storage import receipts as receipts_table
from dendrite_lite.storage import room_list as room_list_table
from dendrite_lite.storage import sync as sync_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.ignored_users import select_ignored_users
from dendrite_lite.sync.client_events import ClientEventSerializer, load_redactions
from dendrite_lite.sync.room_sections import RoomsResult, fill_stripped
from dendrite_lite.sync.sliding.connection import ConnectionState, RoomSent
from dendrite_lite.sync.sliding.lists import ListedRoom, RoomFacts
from dendrite_lite.sync.sliding.request import RoomConfig
from dendrite_lite.sync.sliding.required_state import MEMBER
from dendrite_lite.sync.tokens import pagination_token

__all__ = ["RoomsContext", "WantedRoom", "build_room_results"]

StateKey = tuple[str, str]
_NAME = ("m.room.name", "")
_AVATAR = ("m.room.avatar", "")
_HEROES = 5
_STRIPPED = ("invite", "knock")  # memberships whose rooms show stripped state only


@dataclass(frozen=True, slots=True)
class WantedRoom:
    room: ListedRoom
    config: RoomConfig
    # The lists whose window holds it (empty: a subscription only)
    lists: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoomsContext:
    user_id: str
    device_id: str
    until: int  # the room-stream position this response reads up to
    # Events after this position are new to the client (num_live)
    live_after: int | None
    now_ms: int
    facts: RoomFacts


@dataclass(slots=True, eq=False)  # compared by identity: one plan per room
class _Plan:
    wanted: WantedRoom
    sent: RoomSent | None
    initial: bool
    since: int | None  # timeline lower bound (None: from the start)
    # Where the room is read: now if joined, else at the user's membership.
    state_pos: int
    expand: bool = False
    # Events since it was last sent (or older ones now due: expanded).
    news: bool = False
    timeline: list[StoredEvent] = field(default_factory=list)
    limited: bool = False
    expanded: bool = False
    prev_batch: int = 0
    group: int | None = None
    state_ids: dict[StateKey, str] = field(default_factory=dict)
    changed_keys: set[StateKey] = field(default_factory=set)
    # Requested state that was removed
    stubs: list[StateKey] = field(default_factory=list)
    lazy_sent: set[str] = field(default_factory=set)
    name_event: str | None = None
    avatar_event: str | None = None
    counts_only: bool = False  # sent for new unread counts alone (the user's receipt)

    @property
    def room_id(self) -> str:
        return self.wanted.room.room_id


async def build_room_results(
    conn: aiosqlite.Connection,
    ctx: RoomsContext,
    wanted: Sequence[WantedRoom],
    state: ConnectionState,
) -> dict[str, dict[str, Any]]:
    """room_id -> its response, for the rooms with something to send; records in `state` what
    the client will hold once it has the response."""
    out: dict[str, dict[str, Any]] = {}
    stripped = [w for w in wanted if w.room.membership in _STRIPPED]
    if stripped:
        out.update(await _stripped_rooms(conn, ctx, stripped, state))
    others = [w for w in wanted if w.room.membership not in _STRIPPED]
    plans = await _plan(conn, ctx, others, state)
    await _read_timelines(conn, ctx, plans)
    # State is read only where some can be due: a room with nothing new whose required_state
    # did not grow has none to send (most of a long-poll's rooms).
    await _read_state(
        conn, ctx, [p for p in plans if p.initial or p.news or _more_state(p)]
    )
    read = await _rooms_read(conn, ctx, state)
    for p in plans:
        p.counts_only = p.room_id in read and not _due(ctx, p)
    sent = [p for p in plans if p.counts_only or _due(ctx, p)]
    for p in plans:
        if p in sent or _config_changed(p):
            state.changed[p.room_id] = _record(ctx, p)
    if sent:
        out.update(await _render(conn, ctx, sent))
    return out


def _due(ctx: RoomsContext, p: _Plan) -> bool:
    return bool(p.initial or p.news or p.state_ids or p.stubs or _dm_changed(ctx, p))


async def _rooms_read(
    conn: aiosqlite.Connection, ctx: RoomsContext, state: ConnectionState
) -> set[str]:
    """Rooms to send for their new unread counts alone: a read receipt of the user's (from
    another device too) moves them, and Element X shows a badge until it gets them (Synapse
    sends the room when the user's receipt changed)."""
    if state.since is None:
        return set()
    return await receipts_table.select_rooms_read_since(
        conn, ctx.user_id, state.since.receipts
    )


def _more_state(p: _Plan) -> bool:
    return (
        p.sent is not None and p.sent.required_state != p.wanted.config.required_state
    )


def _config_changed(p: _Plan) -> bool:
    return p.sent is not None and (
        p.sent.timeline_limit != p.wanted.config.timeline_limit
        or p.sent.required_state != p.wanted.config.required_state
    )


def _dm_changed(ctx: RoomsContext, p: _Plan) -> bool:
    """m.direct gained or lost the room since it was sent: MSC4186 says is_dm then comes in
    a delta."""
    return p.sent is not None and p.sent.is_dm != ctx.facts.is_dm(p.wanted.room)


def _record(ctx: RoomsContext, p: _Plan) -> RoomSent:
    config = p.wanted.config
    lazy: set[str] = set()
    if config.required_state.lazy_members:
        lazy = set(p.lazy_sent)
        if p.sent is not None and not p.initial:
            lazy |= p.sent.lazy_members
    return RoomSent(
        ctx.until,
        config.timeline_limit,
        config.required_state,
        frozenset(lazy),
        ctx.facts.is_dm(p.wanted.room),
    ).streams_of(p.sent)


async def _stripped_rooms(
    conn: aiosqlite.Connection,
    ctx: RoomsContext,
    wanted: Sequence[WantedRoom],
    state: ConnectionState,
) -> dict[str, dict[str, Any]]:
    """Invites and knocks: stripped state, sent again only when the membership changes."""
    due = [
        w
        for w in wanted
        if (sent := state.room(w.room.room_id)) is None
        or sent.sent_to < w.room.member_pos
    ]
    due_ids = {w.room.room_id for w in due}
    for w in wanted:
        sent = state.room(w.room.room_id)
        if w.room.room_id in due_ids or (
            sent is not None and sent.timeline_limit != w.config.timeline_limit
        ):
            state.changed[w.room.room_id] = RoomSent(
                ctx.until,
                w.config.timeline_limit,
                w.config.required_state,
                is_dm=ctx.facts.is_dm(w.room),
            ).streams_of(sent)
    if not due:
        return {}
    result = RoomsResult()
    ignored = await select_ignored_users(conn, ctx.user_id)
    await fill_stripped(
        conn,
        {w.room.room_id: (w.room.membership, w.room.member_event_id) for w in due},
        result,
        ignored,
    )
    out: dict[str, dict[str, Any]] = {}
    for w in due:
        room_id = w.room.room_id
        body = _common(ctx, w)
        body["initial"] = True
        if room_id in result.invite:
            events = result.invite[room_id]["invite_state"]["events"]
            body["invite_state"] = events
        elif room_id in result.knock:
            events = result.knock[room_id]["knock_state"]["events"]
            body["knock_state"] = events
        else:
            events = []
        # As Synapse does: the name and avatar the stripped state gives.
        body.update(_stripped_name_and_avatar(events))
        out[room_id] = body
    return out


def _stripped_name_and_avatar(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in events:
        content = e.get("content")
        if e.get("state_key") != "" or not isinstance(content, Mapping):
            continue
        for event_type, content_key, field_name in (
            ("m.room.name", "name", "name"),
            ("m.room.avatar", "url", "avatar"),
        ):
            value = content.get(content_key)
            if e.get("type") == event_type and isinstance(value, str) and value:
                out[field_name] = value
    return out


def _common(ctx: RoomsContext, w: WantedRoom) -> dict[str, Any]:
    body: dict[str, Any] = {
        "membership": w.room.membership,
        "bump_stamp": ctx.facts.bump_stamp(w.room),
    }
    if w.lists:
        body["lists"] = list(w.lists)
    if ctx.facts.is_dm(w.room):
        body["is_dm"] = True
    return body


async def _plan(
    conn: aiosqlite.Connection,
    ctx: RoomsContext,
    wanted: Sequence[WantedRoom],
    state: ConnectionState,
) -> list[_Plan]:
    plans: list[_Plan] = []
    for w in wanted:
        sent = state.room(w.room.room_id)
        state_pos = (
            ctx.until
            if w.room.membership == "join"
            else min(ctx.until, w.room.member_pos)
        )
        initial = sent is None or await _rejoined(conn, ctx.user_id, w.room, sent)
        since = None if initial or sent is None else sent.sent_to
        p = _Plan(w, sent, initial, since, state_pos)
        p.expand = (
            not initial
            and sent is not None
            and w.config.timeline_limit > sent.timeline_limit
        )
        plans.append(p)
    return plans


async def _rejoined(
    conn: aiosqlite.Connection, user_id: str, room: ListedRoom, sent: RoomSent
) -> bool:
    """Joined now, but not when the room was last sent (it was an invite, or they left)."""
    if room.membership != "join" or room.member_pos <= sent.sent_to:
        return False
    changes = await history_table.select_membership_changes(conn, room.room_id, user_id)
    before = [m for pos, m in changes if pos <= sent.sent_to]
    return not before or before[-1] != "join"


async def _read_timelines(
    conn: aiosqlite.Connection, ctx: RoomsContext, plans: list[_Plan]
) -> None:
    # Rooms with no event since they were sent are passed over on the room list's activity
    # (their newest event, or the user's membership if they are not in the room: nothing after
    # it is theirs to see), which is what a long-poll woken in a large account mostly meets.
    due = [p for p in plans if p.since is None or p.expand]
    due += [
        p for p in plans if p not in due and p.wanted.room.activity > (p.since or 0)
    ]
    by_limit: dict[int, list[_Plan]] = {}
    for p in due:
        by_limit.setdefault(p.wanted.config.timeline_limit, []).append(p)
    for limit, group in by_limit.items():
        ranges = [
            (p.room_id, None if p.expand else p.since, p.state_pos) for p in group
        ]
        recent = await sync_table.select_recent_events(conn, ranges, limit)
        for p in group:
            raw = recent[p.room_id]
            if not p.expand and p.since is not None and p.since >= p.state_pos:
                raw = []  # nothing happened that the user may see (e.g. after they left)
            if p.expand and p.sent is not None:
                old = [s for s in raw if s.stream_ordering <= p.sent.sent_to]
                if len(old) > p.sent.timeline_limit:
                    p.expanded = True
                else:
                    # The client holds those already: only the new ones are sent.
                    new = [s for s in raw if s.stream_ordering > p.sent.sent_to]
                    raw = new
            p.news = bool(raw)
            p.limited = len(raw) > limit
            raw = raw[-limit:] if limit > 0 else []
            p.prev_batch = raw[0].stream_ordering - 1 if raw else p.state_pos
            p.timeline = raw
    everything = [s for p in plans for s in p.timeline]
    if everything:
        visible = {
            s.event.event_id
            for s in await filter_events_for_user_conn(conn, ctx.user_id, everything)
        }
        for p in plans:
            p.timeline = [s for s in p.timeline if s.event.event_id in visible]


def _lazy_candidates(p: _Plan) -> set[str]:
    if not p.wanted.config.required_state.lazy_members:
        return set()
    out = {s.event.sender for s in p.timeline}
    out.update(
        s.event.state_key
        for s in p.timeline
        if s.event.type == MEMBER and s.event.state_key
    )
    if p.sent is not None and not p.initial:
        out -= p.sent.lazy_members
    return out


async def _read_state(
    conn: aiosqlite.Connection, ctx: RoomsContext, plans: list[_Plan]
) -> None:
    """The state each room sends in required_state, and its name and avatar."""
    if not plans:
        return
    groups = await sync_table.select_state_groups_at(
        conn, [(p.room_id, p.state_pos) for p in plans]
    )
    members: set[str] = set()
    every_member = False
    for p in plans:
        p.group = groups.get(p.room_id)
        rs = p.wanted.config.required_state
        every_member = every_member or rs.all_members()
        members |= rs.named_members() | _lazy_candidates(p)
        if p.sent is not None:
            members |= p.sent.lazy_members | p.sent.required_state.named_members()
    state = await history_table.select_state_for_groups(
        conn,
        [p.group for p in plans if p.group is not None],
        members=None if every_member else sorted(members),
    )
    for p in plans:
        current = state.get(p.group, {}) if p.group is not None else {}
        if p.since is not None and p.since < p.state_pos:
            keys = await sync_table.select_changed_state_keys(
                conn, p.room_id, p.since, p.state_pos + 1
            )
            p.changed_keys = set(keys)
        _pick_state(p, current)
        p.name_event, p.avatar_event = current.get(_NAME), current.get(_AVATAR)


def _pick_state(p: _Plan, current: Mapping[StateKey, str]) -> None:
    rs = p.wanted.config.required_state
    lazy = _lazy_candidates(p)
    wanted: dict[StateKey, str] = {}
    if p.initial:
        wanted = {k: v for k, v in current.items() if rs.matches(*k)}
    else:
        assert p.sent is not None
        held = p.sent.lazy_members

        def had(k: StateKey) -> bool:
            return rs.matches(*k) or (k[0] == MEMBER and k[1] in held)

        for k in p.changed_keys:
            if not had(k):
                continue
            if k in current:
                wanted[k] = current[k]
            else:
                p.stubs.append(k)
        old = p.sent.required_state
        if old != rs:  # asked for more than before: what only the new config matches
            for k, v in current.items():
                if rs.matches(*k) and not old.matches(*k):
                    wanted[k] = v
    for user in lazy:
        k = (MEMBER, user)
        if k in current:
            wanted[k] = current[k]
            p.lazy_sent.add(user)
    if not p.wanted.room.was_joined:
        # Never a member (an invite rejected or withdrawn): their own membership alone.
        wanted = {k: v for k, v in wanted.items() if v == p.wanted.room.member_event_id}
    p.state_ids = wanted


async def _render(
    conn: aiosqlite.Connection, ctx: RoomsContext, plans: Sequence[_Plan]
) -> dict[str, dict[str, Any]]:
    ids = {i for p in plans for i in p.state_ids.values()}
    ids |= {i for p in plans for i in (p.name_event, p.avatar_event) if i}
    state_events = await events_table.select_events(conn, ids)
    timelines = [s for p in plans for s in p.timeline]
    served = timelines + list(state_events.values())
    redactions = await load_redactions(conn, served) if served else {}
    viewer = Viewer(ctx.user_id, ctx.device_id, ctx.now_ms)
    relations = await bundle_aggregations(conn, viewer, timelines) if timelines else {}
    ser = ClientEventSerializer(
        ctx.user_id, ctx.device_id, ctx.now_ms, redactions, relations
    )
    room_ids = [p.room_id for p in plans]
    joined = [p.room_id for p in plans if p.wanted.room.membership == "join"]
    summary = await sync_table.select_member_summary(conn, joined, ctx.user_id, _HEROES)
    unread = await notifications_table.select_unread_counts(conn, ctx.user_id, room_ids)
    hero_ids = await _hero_ids(conn, ctx.user_id, summary)
    heroes = await _hero_profiles(conn, plans, hero_ids)
    out: dict[str, dict[str, Any]] = {}
    for p in plans:
        body = _common(ctx, p.wanted)
        if p.initial:
            body["initial"] = True
        elif _dm_changed(ctx, p):
            body["is_dm"] = ctx.facts.is_dm(p.wanted.room)  # false too: no longer a DM
        named = _add_name_and_avatar(body, p, state_events)
        # Who is in the room now is for its members: a room left shows its leave alone.
        counts = summary.get(p.room_id, ({}, []))[0]
        members_changed = p.initial or any(k[0] == MEMBER for k in p.changed_keys)
        if not named and members_changed and hero_ids.get(p.room_id):
            body["heroes"] = [heroes[(p.room_id, h)] for h in hero_ids[p.room_id]]
        if p.room_id in summary:
            body["joined_count"] = counts.get("join", 0)
            body["invited_count"] = counts.get("invite", 0)
        notes, highlights = unread.get(p.room_id, (0, 0))
        body["notification_count"] = notes
        body["highlight_count"] = highlights
        state = [
            state_events[i] for _, i in sorted(p.state_ids.items()) if i in state_events
        ]
        body["required_state"] = ser.format_all(state, include_room_id=False) + [
            {"type": t, "state_key": k} for t, k in sorted(p.stubs)
        ]
        if not p.counts_only:  # as Synapse: no timeline key when counts are all it brings
            body["timeline"] = ser.format_all(p.timeline, include_room_id=False)
        body["prev_batch"] = pagination_token(p.prev_batch)
        body["limited"] = p.limited
        body["num_live"] = (
            0
            if ctx.live_after is None
            else sum(1 for s in p.timeline if s.stream_ordering > ctx.live_after)
        )
        if p.expanded:
            body["unstable_expanded_timeline"] = True
        out[p.room_id] = body
    return out


def _add_name_and_avatar(
    body: dict[str, Any], p: _Plan, loaded: Mapping[str, StoredEvent]
) -> bool:
    """On an initial room the name and avatar if set; on a delta only when they changed (null
    when removed). Returns whether the room has a name."""
    named = False
    for key, event_id, field_name, content_key in (
        (_NAME, p.name_event, "name", "name"),
        (_AVATAR, p.avatar_event, "avatar", "url"),
    ):
        stored = loaded.get(event_id) if event_id else None
        value = stored.event.content.get(content_key) if stored is not None else None
        value = value if isinstance(value, str) and value else None
        if field_name == "name":
            named = value is not None
        if p.initial:
            if value is not None:
                body[field_name] = value
        elif key in p.changed_keys:
            body[field_name] = value
    return named


async def _hero_ids(
    conn: aiosqlite.Connection,
    user_id: str,
    summary: Mapping[str, tuple[dict[str, int], list[str]]],
) -> dict[str, list[str]]:
    """room -> its heroes: joined, then invited members; a room no one else is in any more
    has those who left (MSC4186 `heroes`: "then finally left users")."""
    out = {room_id: heroes for room_id, (_, heroes) in summary.items()}
    alone = [room_id for room_id, heroes in out.items() if not heroes]
    if alone:
        former = await room_list_table.select_former_members(
            conn, alone, user_id, _HEROES
        )
        out.update(former)
    return out


async def _hero_profiles(
    conn: aiosqlite.Connection,
    plans: Sequence[_Plan],
    hero_ids: Mapping[str, list[str]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """(room, user) -> {user_id, displayname, avatar_url} from the hero's member event."""
    keys = sorted({(MEMBER, h) for heroes in hero_ids.values() for h in heroes})
    groups = {p.room_id: p.group for p in plans if p.group is not None}
    state = (
        await history_table.select_state_for_groups(conn, groups.values(), keys=keys)
        if keys
        else {}
    )
    ids = {i for entries in state.values() for i in entries.values()}
    loaded = await events_table.select_events(conn, ids) if ids else {}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for p in plans:
        entries = state.get(groups.get(p.room_id, -1), {})
        for hero in hero_ids.get(p.room_id, []):
            profile: dict[str, Any] = {"user_id": hero}
            stored = loaded.get(entries.get((MEMBER, hero), ""))
            if stored is not None:
                for k in ("displayname", "avatar_url"):
                    v = stored.event.content.get(k)
                    if isinstance(v, str):
                        profile[k] = v
            out[(p.room_id, hero)] = profile
    return out
