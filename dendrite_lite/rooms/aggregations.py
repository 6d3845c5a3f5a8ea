"""Bundled aggregations: `unsigned.m.relations` of events served to one user (client-server-api
§Aggregations of child events, §Server-side aggregation of m.replace / m.thread, and
modules/reference_relations.md).

- m.replace: the most recent VALID replacement (event_replacements.md §Validity: same sender,
  same type, neither a state event, the original not itself a replacement, m.new_content present
  unless encrypted), by origin_server_ts then event_id; none when the original is redacted.
- m.thread: count, latest_event (the newest by stream position, itself with its m.replace and
  m.reference aggregations) and current_user_participated (the user sent the root or a reply).
- m.reference: the ids of the referencing events, oldest first.
Only children the user may see count (rooms.visibility), never those of users they ignore;
redacted children have no relation row left (storage.relations). State events get no
aggregations (the spec's warning).

Cost: one query for the relation rows of the whole batch, the viewer's memberships, and the
events shown (edits, each thread's latest event); children older than the viewer's join are
loaded for the visibility check too. Nothing more when no event of the batch has children.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import relations as relations_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.ignored_users import select_ignored_users
from dendrite_lite.storage.relations import Relation, relation_of
from dendrite_lite.sync.client_events import ClientEventSerializer, load_redactions

__all__ = ["Viewer", "bundle_aggregations", "serializer_with_bundles"]

REPLACE, THREAD, REFERENCE = "m.replace", "m.thread", "m.reference"
_AGGREGATED = (REPLACE, THREAD, REFERENCE)
ENCRYPTED = "m.room.encrypted"


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: str
    device_id: str | None
    now_ms: int


@dataclass(slots=True)
class _Children:
    """A parent's visible children, oldest first. Only the events a bundle shows are loaded:
    the edits (to pick the valid one) and the thread's latest event."""

    edits: list[str] = field(default_factory=list)
    thread: list[Relation] = field(default_factory=list)
    references: list[str] = field(default_factory=list)


def _is_valid_edit(original: StoredEvent, edit: StoredEvent) -> bool:
    o, e = original.event, edit.event
    if o.sender != e.sender or o.type != e.type or o.is_state() or e.is_state():
        return False
    own = relation_of(o.content)
    if own is not None and own[0] == REPLACE:
        return False
    return e.type == ENCRYPTED or isinstance(e.content.get("m.new_content"), Mapping)


async def _visible_rows(
    conn: aiosqlite.Connection, viewer: Viewer, rows: Sequence[Relation]
) -> list[Relation]:
    """The rows whose child the viewer may see. A child after the viewer's current join is
    visible without loading it (rooms.visibility's own fast path), so a long thread costs no
    event reads; only older children are loaded and checked. Children sent by users the viewer
    ignores are never visible."""
    rooms = sorted({r.room_id for r in rows})
    memberships = await history_table.select_current_memberships(conn, viewer.user_id, rooms)
    # The spec: aggregations never count events of users the viewer ignores (the slow path's
    # visibility check leaves them out too).
    ignored = await select_ignored_users(conn, viewer.user_id)
    rows = [r for r in rows if r.sender not in ignored]

    def after_join(r: Relation) -> bool:
        m = memberships.get(r.room_id)
        return m is not None and m[0] == "join" and r.stream_ordering >= m[2]

    older = [r.event_id for r in rows if not after_join(r)]
    loaded = await events_table.select_events(conn, older) if older else {}
    allowed = {
        s.event.event_id
        for s in await filter_events_for_user_conn(
            conn, viewer.user_id, list(loaded.values()), memberships
        )
    }
    return [r for r in rows if after_join(r) or r.event_id in allowed]


async def _children(
    conn: aiosqlite.Connection,
    viewer: Viewer,
    parents: Mapping[str, StoredEvent],
    rel_types: Sequence[str],
) -> dict[str, _Children]:
    """parent id -> its children by rel type that the viewer may see. A child in another room
    than its parent is no relation at all (the spec: "simply ignored")."""
    rows = [
        r for r in await relations_table.select_relations_to(conn, list(parents), rel_types)
        if r.room_id == parents[r.relates_to].event.room_id
    ]
    out: dict[str, _Children] = {}
    for r in await _visible_rows(conn, viewer, rows) if rows else []:
        kids = out.setdefault(r.relates_to, _Children())
        if r.rel_type == REPLACE:
            kids.edits.append(r.event_id)
        elif r.rel_type == THREAD:
            kids.thread.append(r)
        else:
            kids.references.append(r.event_id)
    return out


def _latest_edit(original: StoredEvent, edits: Sequence[StoredEvent]) -> StoredEvent | None:
    valid = [e for e in edits if _is_valid_edit(original, e)]
    if not valid:
        return None
    return max(valid, key=lambda e: (e.event.origin_server_ts, e.event.event_id))


async def _build(
    conn: aiosqlite.Connection,
    viewer: Viewer,
    events: Sequence[StoredEvent],
    rel_types: Sequence[str],
) -> tuple[dict[str, dict[str, Any]], list[StoredEvent]]:
    """Bundles for `events` in the JSON-ready form, except that m.replace and latest_event hold
    StoredEvents (formatted by the caller); plus those StoredEvents, to be formatted."""
    parents = {s.event.event_id: s for s in events if not s.event.is_state()}
    children = await _children(conn, viewer, parents, rel_types)
    if not children:
        return {}, []
    redacted = await events_table.select_redactions_of(conn, list(children))
    shown = [i for k in children.values() for i in k.edits]
    shown += [k.thread[-1].event_id for k in children.values() if k.thread]
    loaded = await events_table.select_events(conn, shown)
    bundles: dict[str, dict[str, Any]] = {}
    nested: list[StoredEvent] = []
    for parent_id, kids in children.items():
        parent = parents[parent_id]
        bundle: dict[str, Any] = {}
        edits = [loaded[i] for i in kids.edits if i in loaded]
        edit = None if parent_id in redacted else _latest_edit(parent, edits)
        if edit is not None:
            bundle[REPLACE] = edit
            nested.append(edit)
        latest = loaded.get(kids.thread[-1].event_id) if kids.thread else None
        if latest is not None:
            nested.append(latest)
            bundle[THREAD] = {
                "latest_event": latest,
                "count": len(kids.thread),
                "current_user_participated": parent.event.sender == viewer.user_id
                or any(k.sender == viewer.user_id for k in kids.thread),
            }
        if kids.references:
            bundle[REFERENCE] = {"chunk": [{"event_id": i} for i in kids.references]}
        if bundle:
            bundles[parent_id] = bundle
    return bundles, nested


async def bundle_aggregations(
    conn: aiosqlite.Connection, viewer: Viewer, events: Sequence[StoredEvent]
) -> dict[str, dict[str, Any]]:
    """event id -> unsigned.m.relations, for the events of `events` that have any."""
    bundles, nested = await _build(conn, viewer, events, _AGGREGATED)
    if not bundles:
        return {}
    # A thread's latest event carries its own edits and references (threads do not nest).
    latest = [b[THREAD]["latest_event"] for b in bundles.values() if THREAD in b]
    inner, inner_nested = await _build(conn, viewer, latest, (REPLACE, REFERENCE))
    redactions = await load_redactions(conn, [*nested, *inner_nested])
    plain = ClientEventSerializer(viewer.user_id, viewer.device_id, viewer.now_ms, redactions)
    ser = ClientEventSerializer(
        viewer.user_id, viewer.device_id, viewer.now_ms, redactions, _formatted(inner, plain)
    )
    return _formatted(bundles, ser)


def _formatted(
    bundles: Mapping[str, dict[str, Any]], ser: ClientEventSerializer
) -> dict[str, dict[str, Any]]:
    """Replace the StoredEvents of `bundles` by their client format."""
    out: dict[str, dict[str, Any]] = {}
    for parent_id, bundle in bundles.items():
        b = dict(bundle)
        if REPLACE in b:
            b[REPLACE] = ser.format(b[REPLACE], nested=True)
        if THREAD in b:
            b[THREAD] = {**b[THREAD], "latest_event": ser.format(b[THREAD]["latest_event"])}
        out[parent_id] = b
    return out


async def serializer_with_bundles(
    conn: aiosqlite.Connection, viewer: Viewer, events: Sequence[StoredEvent]
) -> ClientEventSerializer:
    """A serializer for `events` with their redactions and bundled aggregations loaded."""
    redactions = await load_redactions(conn, events)
    relations = await bundle_aggregations(conn, viewer, events)
    return ClientEventSerializer(
        viewer.user_id, viewer.device_id, viewer.now_ms, redactions, relations
    )
