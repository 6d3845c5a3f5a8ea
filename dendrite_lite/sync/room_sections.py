"""The `rooms` part of a /sync response: join, invite, leave and knock sections.

Everything is read in one database read with a fixed number of set-based queries, whatever the
number of rooms (storage.sync, storage.history): membership of every room, the recent timeline of
every room, the state groups at each timeline's start, the state entries of all those groups, the
events behind them, redactions, member counts, heroes and unread counts.

Per room (client-server-api §Syncing):
- timeline: the newest `limit` events after the token (all up to now on an initial sync),
  `limited` when older ones were left out, `prev_batch` pointing just before the first one;
- state: the state at the start of the timeline for an initial/full_state sync or a room joined
  since the token; otherwise the state keys that changed between the token and the timeline's
  start (only when the timeline is limited: an unlimited timeline carries every change itself);
- lazy-loading members: only the member events of the timeline's senders (and the user's own),
  and on an incremental sync only those the device was not sent already (sync.lazy_members),
  unless the filter sets include_redundant_members.
Rooms whose membership changed after the stream position this sync reads up to are left for the
next sync, so a response never shows a membership its timeline does not reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from dendrite_lite.rooms.aggregations import Viewer, bundle_aggregations
from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import aliases as aliases_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import notifications as notifications_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage import sync as sync_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.ignored_users import select_ignored_users
from dendrite_lite.storage.notifications import MAIN_THREAD
from dendrite_lite.sync.client_events import ClientEventSerializer, load_redactions
from dendrite_lite.sync.filters import Filter, RoomEventFilter
from dendrite_lite.sync.lazy_members import SentMembers
from dendrite_lite.sync.tokens import pagination_token

__all__ = ["RoomsRequest", "RoomsResult", "build_rooms", "fill_stripped", "STRIPPED_STATE_TYPES"]

MEMBER = "m.room.member"
# The state an invitee or knocker sees before joining (client-server-api §Stripped state).
STRIPPED_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.encryption",
    # Beyond the spec's list (it allows more): a guest's server needs it to decide whether the
    # guest may accept an invite to a room it is not in (guest_access.md §Server behaviour).
    "m.room.guest_access",
)
StateKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RoomsRequest:
    user_id: str
    device_id: str | None
    filter: Filter
    since: int | None  # room-stream position of the since token; None for an initial sync
    until: int  # room-stream position this sync reads up to
    full_state: bool
    now_ms: int
    # Unread counts and summaries for every joined room (initial sync, or receipts moved);
    # otherwise only for rooms with new events, the only ones whose counts can have changed.
    all_counts: bool = True
    # The member events this device was already sent (lazy-loading); None: no such record.
    sent_members: SentMembers | None = None


@dataclass(slots=True)
class RoomsResult:
    join: dict[str, dict[str, Any]] = field(default_factory=dict)
    invite: dict[str, dict[str, Any]] = field(default_factory=dict)
    leave: dict[str, dict[str, Any]] = field(default_factory=dict)
    knock: dict[str, dict[str, Any]] = field(default_factory=dict)
    joined_room_ids: list[str] = field(default_factory=list)  # every room joined (for ephemeral)

    def to_json(self) -> dict[str, Any]:
        return {"join": self.join, "invite": self.invite, "leave": self.leave, "knock": self.knock}


@dataclass(slots=True)
class _Room:
    room_id: str
    section: str  # join | leave
    since: int | None  # lower bound of the timeline (None: from the start)
    until: int
    full: bool  # state at timeline start in full, not as a delta
    timeline: list[StoredEvent] = field(default_factory=list)
    limited: bool = False
    prev_batch: int = 0
    state_ids: dict[StateKey, str] = field(default_factory=dict)
    # A membership changed since `since` (or no since): only then is a summary due (sync.yaml:
    # heroes and counts "may be omitted" when unchanged), which spares a woken /sync a query.
    members_changed: bool = True
    # Joined since the token of an incremental sync: sent in full, like on an initial sync.
    newly_joined: bool = False


async def build_rooms(conn: aiosqlite.Connection, req: RoomsRequest) -> RoomsResult:
    result = RoomsResult()
    if req.sent_members is not None and (req.since is None or req.full_state):
        req.sent_members.reset(req.user_id, req.device_id)
    room_filter = req.filter.room
    memberships = await history_table.select_current_memberships(conn, req.user_id)
    current = {r: m for r, m in memberships.items() if m[2] <= req.until}
    rooms: list[_Room] = []
    stripped: dict[str, tuple[str, str]] = {}  # room -> (section, member event id)
    candidates: list[str] = []  # joined or left rooms whose member event changed since the token
    forgotten = await _forgotten(conn, req.user_id, memberships)
    for room_id, (membership, event_id, pos) in sorted(memberships.items()):
        if pos > req.until:
            continue  # a change this sync does not reach yet: the next sync shows it
        if membership == "join":
            result.joined_room_ids.append(room_id)
        if not room_filter.room_allowed(room_id):
            continue
        changed = req.since is None or pos > req.since
        if membership == "join":
            if req.since is not None and changed:
                candidates.append(room_id)
            full = req.since is None or req.full_state
            rooms.append(_Room(room_id, "join", None if full else req.since, req.until, full))
        elif membership in ("invite", "knock"):
            if changed or req.full_state:
                stripped[room_id] = (membership, event_id)
        elif membership in ("leave", "ban"):
            if room_id in forgotten:
                continue  # forgotten (POST /forget): gone from every sync of this user
            initial = req.since is None or req.full_state
            if (initial and room_filter.include_leave) or (not initial and changed):
                rooms.append(_Room(room_id, "leave", None if initial else req.since, pos, initial))
                if not initial:
                    # Joined and left since the token: its state was never sent (SyTest "When
                    # user joins and leaves a room in the same batch ...").
                    candidates.append(room_id)
    if candidates:
        await _mark_newly_joined(conn, req, rooms, candidates)
    if rooms:
        await _fill_rooms(conn, req, rooms, result, current)
    if stripped:
        ignored = await select_ignored_users(conn, req.user_id)
        await fill_stripped(conn, stripped, result, ignored)
    return result


async def _forgotten(
    conn: aiosqlite.Connection, user_id: str, memberships: Mapping[str, tuple[str, str, int]]
) -> set[str]:
    """Rooms the user left and then forgot (queried only when there are left rooms at all)."""
    if not any(m[0] in ("leave", "ban") for m in memberships.values()):
        return set()
    return set(await aliases_table.select_forgotten_room_ids(conn, user_id))


async def _mark_newly_joined(
    conn: aiosqlite.Connection, req: RoomsRequest, rooms: list[_Room], candidates: list[str]
) -> None:
    """A room the user was not joined to at the token is sent in full, like on an initial sync
    (a join -> join profile change is not a new join), whether joined now or joined and left
    since."""
    assert req.since is not None
    groups = await sync_table.select_state_groups_at(conn, [(r, req.since) for r in candidates])
    key = (MEMBER, req.user_id)
    state = await history_table.select_state_for_groups(
        conn, [g for g in groups.values() if g is not None], keys=[key]
    )
    before_ids = {r: state.get(g, {}).get(key) for r, g in groups.items() if g is not None}
    loaded = await events_table.select_events(conn, [i for i in before_ids.values() if i])
    for room in rooms:
        if room.room_id not in candidates:
            continue
        before = loaded.get(before_ids.get(room.room_id) or "")
        if before is not None and before.event.membership == "join":
            continue
        # A left room only if the user was in it meanwhile: an invite rejected never shows the
        # room's state.
        if room.section == "leave" and not await sync_table.select_joined_between(
            conn, room.room_id, req.user_id, req.since, room.until
        ):
            continue
        room.since, room.full, room.newly_joined = None, True, True


async def _fill_rooms(
    conn: aiosqlite.Connection,
    req: RoomsRequest,
    rooms: list[_Room],
    result: RoomsResult,
    memberships: Mapping[str, tuple[str, str, int]],
) -> None:
    f = req.filter
    limit = f.timeline_limit
    timeline_filter = f.room.timeline
    # Exact types are read as such, so `limit` counts matching events (SyTest "A filtered
    # timeline reaches its limit"); patterns with `*` are matched after reading. `limited` then
    # says whether the limit cut matching events (sync.yaml), not whether other types were left
    # out (a room joined since an incremental sync's token is the exception, see below).
    types = timeline_filter.types
    exact = types if types is not None and not any("*" in t for t in types) else None
    recent = await sync_table.select_recent_events(
        conn, [(r.room_id, r.since, r.until) for r in rooms], limit, types=exact
    )
    senders: set[str] = {req.user_id}
    for r in rooms:
        raw = recent[r.room_id]
        r.members_changed = r.full or r.since is None or any(s.event.type == MEMBER for s in raw)
        r.limited = len(raw) > limit
        raw = raw[-limit:] if limit > 0 else []
        first = raw[0].stream_ordering if raw else (r.until + 1 if r.since is None else r.since + 1)
        r.prev_batch = first - 1
        r.timeline = [s for s in raw if timeline_filter.matches(s.event.pdu, r.room_id)]
        senders.update(s.event.sender for s in r.timeline)
    hid = await _keep_visible(conn, req, rooms, memberships)
    await _fill_hidden_gaps(conn, req, [r for r in rooms if r.room_id in hid], memberships, exact)
    for r in rooms:
        # The client knew nothing of a room joined since its token, so the timeline is limited
        # unless it reaches the room's start: the full state sent with it is a delta over a
        # gap, which sync.yaml's timeline/state note ties to `limited`. Synapse marks every
        # newly joined room limited (SyTest "Newly joined room has correct timeline in
        # incremental sync").
        if r.newly_joined and not r.limited:
            r.limited = not r.timeline or r.timeline[0].event.type != "m.room.create"
    everything = [s for r in rooms for s in r.timeline]
    senders.update(s.event.sender for s in everything)
    await _add_out_of_band_leaves(conn, rooms, memberships, timeline_filter)

    await _load_state(conn, req, rooms, sorted(senders))
    state_events = await events_table.select_events(
        conn, {i for r in rooms for i in r.state_ids.values()}
    )
    served = everything + list(state_events.values())
    redactions = await load_redactions(conn, served) if served else {}
    # Bundled aggregations on timeline events (the spec asks for them when `limited`; a client
    # reading an unlimited timeline gets them too, as from Synapse).
    timelines = [s for r in rooms for s in r.timeline]
    viewer = Viewer(req.user_id, req.device_id, req.now_ms)
    relations = await bundle_aggregations(conn, viewer, timelines) if timelines else {}
    ser = ClientEventSerializer(req.user_id, req.device_id, req.now_ms, redactions, relations)
    joined = [
        r.room_id for r in rooms
        if r.section == "join" and (req.all_counts or r.full or r.timeline or r.state_ids)
    ]
    by_id = {r.room_id: r for r in rooms}
    changed = [room_id for room_id in joined if by_id[room_id].members_changed]
    summary = await sync_table.select_member_summary(conn, changed, req.user_id) if changed else {}
    # Heroes are for naming a room that has no name (client-server-api §Calculating the display
    # name); a named or aliased room gets the counts alone, as from Synapse.
    named = await sync_table.select_named_rooms(conn, changed) if changed else set()
    counted = set(joined)
    unread = (
        await notifications_table.select_unread_counts_by_thread(conn, req.user_id, joined)
        if joined else {}
    )

    fed = f.event_format == "federation"
    for r in rooms:
        state = _state_events(r, state_events, f.room.state, req)
        _record_members(req, r, state)
        body: dict[str, Any] = {
            "timeline": {
                "events": ser.format_all(r.timeline, include_room_id=False, federation=fed),
                "limited": r.limited,
                "prev_batch": pagination_token(r.prev_batch),
            },
            "state": {"events": ser.format_all(state, include_room_id=False, federation=fed)},
            "account_data": {"events": []},
        }
        if r.section == "leave":
            result.leave[r.room_id] = body
            continue
        if r.room_id in counted:
            body["summary"] = {}
            if r.room_id in summary:
                counts, heroes = summary[r.room_id]
                body["summary"] = {
                    "m.joined_member_count": counts.get("join", 0),
                    "m.invited_member_count": counts.get("invite", 0),
                }
                if r.room_id not in named:
                    body["summary"]["m.heroes"] = heroes
            body.update(_unread_counts(unread.get(r.room_id, {}), f.unread_thread_notifications))
        body["ephemeral"] = {"events": []}
        result.join[r.room_id] = body


async def _add_out_of_band_leaves(
    conn: aiosqlite.Connection,
    rooms: list[_Room],
    memberships: Mapping[str, tuple[str, str, int]],
    timeline_filter: RoomEventFilter,
) -> None:
    """A left room we hold nothing of (an invite rejected or a knock taken back over federation,
    stored as an outlier: federation/out_of_band.py) shows its leave event as the timeline, as
    from Synapse: the client learns what became of the invite."""
    wanted: dict[str, _Room] = {}
    for r in rooms:
        held = memberships.get(r.room_id)
        if r.section != "leave" or r.timeline or held is None:
            continue
        if r.since is None or held[2] > r.since:
            wanted[held[1]] = r
    if not wanted:
        return
    for event_id, stored in (await events_table.select_events(conn, list(wanted))).items():
        r = wanted[event_id]
        if stored.outlier and timeline_filter.matches(stored.event.pdu, r.room_id):
            r.timeline = [stored]


async def _keep_visible(
    conn: aiosqlite.Connection,
    req: RoomsRequest,
    rooms: list[_Room],
    memberships: Mapping[str, tuple[str, str, int]],
) -> set[str]:
    """Drop the timeline events the user may not see; returns the rooms that lost some."""
    everything = [s for r in rooms for s in r.timeline]
    served = await filter_events_for_user_conn(conn, req.user_id, everything, memberships)
    visible = {s.event.event_id for s in served}
    visible |= await _current_state_ids(conn, rooms, visible)
    # As filtered: an erased user's events come back redacted for some viewers (visibility.py).
    as_served = {s.event.event_id: s for s in served}
    hid: set[str] = set()
    for r in rooms:
        kept = [
            as_served.get(s.event.event_id, s) for s in r.timeline if s.event.event_id in visible
        ]
        if len(kept) < len(r.timeline):
            hid.add(r.room_id)
        r.timeline = kept
    return hid


_GAP_PASSES = 3


async def _fill_hidden_gaps(
    conn: aiosqlite.Connection,
    req: RoomsRequest,
    rooms: list[_Room],
    memberships: Mapping[str, tuple[str, str, int]],
    exact: tuple[str, ...] | None,
) -> None:
    """A joined room whose timeline history visibility thinned below the limit reads further
    back, a few pages at most, as Synapse does: what the user may see there (and the room's
    current state, see _current_state_ids) fills the timeline (SyTest "Current state appears
    in timeline in private history with many messages after")."""
    limit = req.filter.timeline_limit
    page = max(2 * limit, 10)
    timeline_filter = req.filter.room.timeline
    for _ in range(_GAP_PASSES):
        short = [r for r in rooms if r.section == "join" and r.limited and len(r.timeline) < limit]
        if not short or limit <= 0:
            break
        earlier = await sync_table.select_recent_events(
            conn, [(r.room_id, r.since, r.prev_batch) for r in short], page, types=exact
        )
        later = {r.room_id: r.timeline for r in short}
        for r in short:
            raw = earlier[r.room_id]
            r.limited = len(raw) > page
            raw = raw[-page:]
            if raw:
                r.prev_batch = raw[0].stream_ordering - 1
            r.timeline = [s for s in raw if timeline_filter.matches(s.event.pdu, r.room_id)]
        await _keep_visible(conn, req, short, memberships)
        for r in short:
            r.timeline = r.timeline + later[r.room_id]
    for r in rooms:
        if len(r.timeline) > limit:
            r.timeline = r.timeline[-limit:] if limit > 0 else []
            r.limited = True
            if r.timeline:
                r.prev_batch = r.timeline[0].stream_ordering - 1


async def _current_state_ids(
    conn: aiosqlite.Connection, rooms: list[_Room], visible: set[str]
) -> set[str]:
    """Hidden timeline events of joined rooms that are the room's current state: a member sees
    the current state anyway (GET /state), and a client building the room from the timeline
    needs it (Synapse's always_include_ids; SyTest "Current state appears in timeline in
    private history")."""
    out: set[str] = set()
    for r in rooms:
        if r.section != "join":
            continue
        for s in r.timeline:
            e = s.event
            if e.event_id in visible or not e.is_state() or e.state_key is None:
                continue
            current = await state_table.select_current_state_event_id(
                conn, r.room_id, e.type, e.state_key
            )
            if current == e.event_id:
                out.add(e.event_id)
    return out


def _unread_counts(threads: Mapping[str, tuple[int, int]], per_thread: bool) -> dict[str, Any]:
    """unread_notifications, and with the filter's unread_thread_notifications the counts of
    each thread apart (sync.yaml): the room's counts then cover the main timeline only, and
    threads with nothing unread are left out (the whole object too when none has any)."""

    def counts(n: int, h: int) -> dict[str, int]:
        return {"notification_count": n, "highlight_count": h}

    if not per_thread:
        total = counts(sum(n for n, _ in threads.values()), sum(h for _, h in threads.values()))
        return {"unread_notifications": total}
    out: dict[str, Any] = {"unread_notifications": counts(*threads.get(MAIN_THREAD, (0, 0)))}
    by_root = {t: counts(n, h) for t, (n, h) in sorted(threads.items()) if t != MAIN_THREAD and n}
    if by_root:
        out["unread_thread_notifications"] = by_root
    return out


async def _load_state(
    conn: aiosqlite.Connection, req: RoomsRequest, rooms: list[_Room], senders: list[str]
) -> None:
    """Fill r.state_ids: the (full or delta) state at the start of each room's timeline."""
    at: list[tuple[str, int]] = []
    delta_keys: dict[str, list[StateKey]] = {}
    for r in rooms:
        if r.full:
            at.append((r.room_id, r.prev_batch))
        elif r.limited and r.since is not None:
            keys = await sync_table.select_changed_state_keys(
                conn, r.room_id, r.since, r.prev_batch + 1
            )
            r.members_changed = r.members_changed or any(k[0] == MEMBER for k in keys)
            if keys:
                delta_keys[r.room_id] = keys
            # Lazy loading needs the senders' member events even when nothing changed in the gap.
            if keys or (req.filter.lazy_load_members and r.timeline):
                at.append((r.room_id, r.prev_batch))
        elif req.filter.lazy_load_members and r.timeline:
            at.append((r.room_id, r.prev_batch))
    if not at:
        return
    groups = await sync_table.select_state_groups_at(conn, at)
    # A room joined over federation starts with our join: no timeline event precedes it, so the
    # state at the timeline's start is the state after its first event, minus that event.
    first_of = {r.room_id: r.timeline[0] for r in rooms if r.timeline}
    drop: dict[str, StateKey] = {}
    for room_id, group in groups.items():
        first = first_of.get(room_id)
        if group is None and first is not None and first.state_group is not None:
            groups[room_id] = first.state_group
            if first.event.is_state():
                drop[room_id] = first.event.state_tuple
    members = senders if req.filter.lazy_load_members else None
    if members is not None:
        # Members whose state changed in a gap are sent whether or not they speak (SyTest
        # "Gapped incremental syncs include all state changes"), so they are read too.
        gap_members = {k[1] for keys in delta_keys.values() for k in keys if k[0] == MEMBER}
        members = sorted(set(members) | gap_members)
    state = await history_table.select_state_for_groups(
        conn, [g for g in groups.values() if g is not None], members=members
    )
    lazy = req.filter.lazy_load_members
    for r in rooms:
        group = groups.get(r.room_id)
        if group is None:
            continue
        full = state.get(group, {})
        if r.room_id in drop:
            full = {k: v for k, v in full.items() if k != drop[r.room_id]}
        speakers = {s.event.sender for s in r.timeline}
        room_senders = speakers | {req.user_id}
        in_timeline = {s.event.state_tuple for s in r.timeline if s.event.is_state()}
        wanted: dict[StateKey, str] = {}
        if r.full:
            wanted = {
                k: v for k, v in full.items()
                if not lazy or k[0] != MEMBER or k[1] in room_senders
            }
        else:
            for k in delta_keys.get(r.room_id, []):
                if k in full:
                    wanted[k] = full[k]
            if lazy:
                # Incremental: the senders only; the user's own member event was in the full
                # state it got before (SyTest "We do send redundant membership state across
                # incremental syncs if asked" expects just the senders).
                for sender in speakers:
                    k = (MEMBER, sender)
                    if k in full and k not in in_timeline and not _redundant(req, r, sender, full[k]):
                        wanted[k] = full[k]
        r.state_ids = wanted


def _redundant(req: RoomsRequest, r: _Room, member: str, event_id: str) -> bool:
    """Was this member event already sent to the device, in a response it has seen?"""
    if req.sent_members is None or req.filter.include_redundant_members or req.since is None:
        return False
    return req.sent_members.already_sent(
        req.user_id, req.device_id, r.room_id, member, event_id, req.since
    )


def _record_members(req: RoomsRequest, r: _Room, state: list[StoredEvent]) -> None:
    """Note the member events this response carries (state and timeline) for the device."""
    if req.sent_members is None or not req.filter.lazy_load_members:
        return
    if r.full and req.since is not None:
        req.sent_members.forget_room(req.user_id, req.device_id, r.room_id)
    sent = [
        (s.event.state_key, s.event.event_id)
        for s in (*state, *r.timeline)
        if s.event.type == MEMBER and s.event.state_key is not None
    ]
    if sent:
        req.sent_members.record(req.user_id, req.device_id, r.room_id, sent, req.until)


def _state_events(
    r: _Room,
    loaded: Mapping[str, StoredEvent],
    state_filter: RoomEventFilter,
    req: RoomsRequest,
) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    for key in sorted(r.state_ids):
        s = loaded.get(r.state_ids[key])
        if s is None or not state_filter.matches(s.event.pdu, r.room_id):
            continue
        out.append(s)
    return out


async def fill_stripped(
    conn: aiosqlite.Connection,
    rooms: Mapping[str, tuple[str, str]],
    result: RoomsResult,
    ignored: frozenset[str] = frozenset(),
) -> None:
    """invite_state / knock_state: stripped state at the membership event, with the member
    event of whoever sent it (the inviter: a client shows who invited, as from Synapse), plus
    the event. Invites from `ignored` users are not sent (ignore_users.md)."""
    member_events = await events_table.select_events(conn, [e for _, e in rooms.values()])
    groups = {
        room_id: s.state_group
        for room_id, (_, e) in rooms.items()
        if (s := member_events.get(e)) is not None and s.state_group is not None
    }
    senders = sorted({(MEMBER, s.event.sender) for s in member_events.values()})
    state = await history_table.select_state_for_groups(
        conn, groups.values(), keys=senders, types=STRIPPED_STATE_TYPES
    )
    loaded = await events_table.select_events(
        conn, {i for entries in state.values() for i in entries.values()}
    )
    for room_id, (section, event_id) in rooms.items():
        member = member_events.get(event_id)
        if member is None or (section == "invite" and member.event.sender in ignored):
            continue
        # Over federation, the inviting server sends the stripped state along with the invite.
        given = member.event.unsigned.get("invite_room_state")
        events: list[dict[str, Any]]
        if isinstance(given, list):
            events = [dict(e) for e in given if isinstance(e, Mapping)]
        else:
            # The keys asked for all rooms at once: only this event's sender's member event.
            ids = {
                k: i
                for k, i in state.get(groups.get(room_id, -1), {}).items()
                if k[0] != MEMBER
                or (k[1] == member.event.sender and k != member.event.state_tuple)
            }
            events = [_stripped(loaded[i]) for _, i in sorted(ids.items()) if i in loaded]
        events.append(_stripped(member))
        if section == "invite":
            result.invite[room_id] = {"invite_state": {"events": events}}
        else:
            result.knock[room_id] = {"knock_state": {"events": events}}


def _stripped(s: StoredEvent) -> dict[str, Any]:
    e = s.event
    return {"type": e.type, "state_key": e.state_key, "sender": e.sender, "content": dict(e.content)}

