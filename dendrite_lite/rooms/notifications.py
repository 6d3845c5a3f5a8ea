"""Unread notification counts from push rules (modules/push.md §Receiving notifications).

Every event a room receives is evaluated against the push rules of every local member (and of
the local target of an invite, for .m.rule.invite_for_me); each "notify" becomes a row in
event_push_actions, written in the SAME transaction as the event, so the /sync woken by that
commit already counts it, with the event's thread (rooms.receipts.thread_of) so that counts and
receipts can be per thread. /sync's unread_notifications counts the rows after the user's read
receipts (storage.notifications.select_unread_counts_by_thread).

The pipeline calls `prepare(room_id, events)` before persisting a batch: it reads the room's
members, their push rule documents and the power levels in one query, evaluates outside the
writer, and returns the function the pipeline runs inside its write transaction once the events
have their stream positions.

The members, their display names and the create/power levels events are a function of the room's
state, which rooms.current_state_group names: they are kept by state group (a state group never
changes, so nothing to invalidate) and a message in an unchanged room reads only the group id and
the members' push rule documents (which their owners may edit at any time).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.events.event import Event
from dendrite_lite.events.pdu import client_format
from dendrite_lite.events.power_levels import user_power_level
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.push.evaluator import Actions, compiled_for_user, evaluate, prepare_event
from dendrite_lite.rooms.receipts import thread_of
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import notifications as table
from dendrite_lite.storage import pushers as pushers_table
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage.ignored_users import select_ignored_by

try:  # same optional speed-up as storage.events
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the install
    from json import loads as _loads

__all__ = ["NotificationCounter", "PersistHook"]

# (conn, [(event, stream_ordering)]) -> writes inside the event's transaction
InTxn = Callable[[aiosqlite.Connection, Sequence[tuple[Event, int]]], Awaitable[None]]
PersistHook = Callable[[str, Sequence[Event]], Awaitable[InTxn | None]]
# ([(joined user, display name)], {"m.room.create"/"m.room.power_levels": (json, version)})
_Context = tuple[list[tuple[str, str | None]], dict[str, tuple[str, str]]]
# Rooms in active use at once; a 10,000-member room's entry is about a megabyte.
CONTEXT_CACHE_SIZE = 64


class NotificationCounter:
    """`on_queued` is called after a write queued notifications for users with a pusher
    (storage.pushers.push_queue): it wakes the push gateway delivery."""

    def __init__(
        self, storage: Storage, server_name: str, *, on_queued: Callable[[], None] | None = None
    ) -> None:
        self._storage = storage
        self._suffix = ":" + server_name
        self._contexts: OrderedDict[int, _Context] = OrderedDict()  # by state group
        self._on_queued = on_queued

    async def _context(self, conn: aiosqlite.Connection, room_id: str) -> _Context:
        """The room's push context, from the cache when its current state group is known (read
        in the same snapshot as the context itself, so the two always match)."""
        room = await rooms_table.select_room(conn, room_id)
        group = room.current_state_group if room is not None else None
        if group is not None and (hit := self._contexts.get(group)) is not None:
            self._contexts.move_to_end(group)
            return hit
        context = await table.select_push_context(conn, room_id)
        if group is not None:
            self._contexts[group] = context
            if len(self._contexts) > CONTEXT_CACHE_SIZE:
                self._contexts.popitem(last=False)
        return context

    async def prepare(self, room_id: str, events: Sequence[Event]) -> InTxn | None:
        """Evaluate push rules for `events` (about to be persisted in `room_id`)."""
        invitees = [
            e.state_key for e in events
            if e.type == "m.room.member" and e.membership == "invite"
            and e.state_key and e.state_key.endswith(self._suffix)
        ]

        async def load(conn: aiosqlite.Connection) -> tuple[Any, Any, dict[str, Any], Any]:
            members, others = await self._context(conn, room_id)
            local = [u for u, _ in members if u.endswith(self._suffix)] + invitees
            docs = await table.select_push_rule_documents(conn, local) if local else {}
            ignoring = await select_ignored_by(conn, local) if local else {}
            return members, others, docs, ignoring

        members, others, docs, ignoring = await self._storage.db.read(load)
        names = dict(members)
        targets = [(u, n) for u, n in members if u.endswith(self._suffix)]
        targets += [(u, None) for u in invitees if u not in names]
        if not targets:
            return None
        create = _event(others.get("m.room.create"))
        levels = _event(others.get("m.room.power_levels"))
        levels_content = dict(levels.content) if levels is not None else None
        member_count = len(members)
        # (index in batch, user, highlight, actions as JSON, what event_push_actions keeps)
        hits: list[tuple[int, str, bool, str, str | None]] = []
        codec = _ActionsCodec()
        for i, event in enumerate(events):
            prepared = prepare_event(client_format(event))
            sender_level = user_power_level(event.sender, levels, create) if create else 0
            for user_id, name in targets:
                # Nothing from an ignored user notifies (ignore_users.md), invites included.
                if user_id == event.sender or event.sender in ignoring.get(user_id, ()):
                    continue
                actions = evaluate(
                    compiled_for_user(user_id, docs.get(user_id, {})),
                    prepared,
                    user_id=user_id,
                    display_name=name,
                    room_member_count=member_count,
                    sender_power_level=sender_level,
                    power_levels_content=levels_content,
                )
                if actions.notify:
                    hits.append((i, user_id, actions.highlight, *codec.encode(actions)))
        if not hits:
            return None
        threads = await self._threads(events, {hit[0] for hit in hits})

        async def write(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
            await table.insert_push_actions(conn, [
                (u, room_id, persisted[i][1], h, threads[i], kept) for i, u, h, _, kept in hits
            ])
            queued = await pushers_table.insert_push_queue(
                conn, [(u, room_id, persisted[i][1], a) for i, u, _, a, _ in hits]
            )
            if queued and self._on_queued is not None:
                self._on_queued()

        return write


    async def _threads(self, events: Sequence[Event], indices: set[int]) -> dict[int, str]:
        """The thread of each notifying event (by index in the batch): unread counts are kept
        per thread. Parents are looked up in the batch first (not stored yet), then stored."""
        batch = {e.event_id: e for e in events}

        async def load(event_id: str) -> Event | None:
            if event_id in batch:
                return batch[event_id]
            stored = await self._storage.db.read(lambda c: events_table.select_event(c, event_id))
            return stored.event if stored is not None else None

        return {i: await thread_of(events[i], load) for i in indices}


class _ActionsCodec:
    """The matching rule's actions (push.md §Actions) as JSON for the push queue, and what
    event_push_actions keeps (None when the highlight flag implies them:
    storage.notifications.implied_actions). A room's members mostly match the same rule, so
    each distinct set of tweaks is encoded once per batch, not once per member."""

    def __init__(self) -> None:
        self._memo: dict[object, tuple[str, str | None]] = {}

    def encode(self, actions: Actions) -> tuple[str, str | None]:
        try:
            key: object = (actions.highlight, tuple(sorted(actions.tweaks.items())))
            hash(key)
        except TypeError:  # a tweak value that is a list or an object
            key = None
        found = self._memo.get(key) if key is not None else None
        if found is None:
            tweaks = sorted(actions.tweaks.items())
            listed = ["notify"] + [{"set_tweak": k, "value": v} for k, v in tweaks]
            text = json.dumps(listed, separators=(",", ":"))
            found = (text, None if listed == table.implied_actions(actions.highlight) else text)
            if key is not None:
                self._memo[key] = found
        return found


def _event(row: tuple[str, str] | None) -> Event | None:
    if row is None:
        return None
    pdu = _loads(row[0])
    return Event(pdu, get_room_version(row[1]), "", room_id=pdu.get("room_id"))
