"""event_relations and event_search (migration 0015): filled from the events held before the
migration exactly as live writes fill them, kept out for outliers and redacted events."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.events.event import Event
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as ev
from dendrite_lite.storage.migrations import MIGRATIONS_DIR, apply_migrations
from dendrite_lite.storage.relations import relation_of
from dendrite_lite.storage.search import searchable
from tests.helpers import make_event

ALICE = "@alice:example.org"
ROOM = "!room:example.org"
REL = {"rel_type": "m.thread", "event_id": "$root"}


def _events() -> list[Event]:
    def msg(content: dict[str, Any], event_type: str = "m.room.message", **kw: Any) -> Event:
        return make_event("10", event_type, ALICE, content, room_id=ROOM, **kw)

    return [
        msg({"body": "Martians and men", "msgtype": "m.text"}),
        msg({"body": "in a thread", "m.relates_to": REL}),
        msg({"body": 5, "m.relates_to": {"rel_type": "m.reference"}}),  # neither indexed
        msg({"name": "The Room"}, "m.room.name", state_key=""),
        msg({"name": "not state"}, "m.room.name"),
        msg({"topic": "cats", "m.topic": {"m.text": [
            "junk", {"mimetype": "text/html", "body": "<b>dogs</b>"}, {"body": "dogs"}]}},
            "m.room.topic", state_key=""),
        msg({"m.topic": {"m.text": [{"mimetype": "text/plain", "body": "same"}]}, "topic": "same"},
            "m.room.topic", state_key=""),
        msg({"body": "a reply", "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}}}),
    ]


def _insert_raw(conn: sqlite3.Connection, event: Event, *, outlier: bool = False) -> int:
    """An events row as written before 0015 (no relation or search rows)."""
    cur = conn.execute(ev.INSERT_EVENT, (
        None, event.event_id, event.room_id, event.room_version.identifier, event.type,
        event.state_key, event.sender, event.depth, event.origin_server_ts,
        json.dumps(event.pdu), int(outlier), None, 0, 1, None, None, None,
    ))
    assert cur.lastrowid is not None
    return cur.lastrowid


def _relations(conn: sqlite3.Connection) -> set[tuple[Any, ...]]:
    return set(conn.execute(
        "SELECT event_id, relates_to, rel_type, room_id, type, sender, stream_ordering"
        " FROM event_relations"
    ))


def _search_rows(conn: sqlite3.Connection) -> set[tuple[Any, ...]]:
    return set(conn.execute("SELECT rowid, key, value, room_id FROM event_search"))


def _expected(events: list[tuple[Event, int]]) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """What the live write path (storage.relations/search) records for these events."""
    rels, rows = set(), set()
    for e, pos in events:
        if (r := relation_of(e.content)) is not None:
            rels.add((e.event_id, r[1], r[0], e.room_id, e.type, e.sender, pos))
        if (s := searchable(e)) is not None:
            rows.add((pos, s[0], s[1], e.room_id))
    return rels, rows


async def test_migration_indexes_existing_events_like_live_writes(tmp_path: Path) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    held = tmp_path / "0015_relations_search.sql"
    for later in sorted(directory.glob("*.sql")):
        if int(later.name[:4]) >= 15:  # 0015 and whatever came after it
            later.rename(tmp_path / later.name)
    path = tmp_path / "db.sqlite"
    await apply_migrations(path, directory=directory)
    events = _events()
    conn = sqlite3.connect(path)
    indexed = [(e, _insert_raw(conn, e)) for e in events]
    # An outlier, and a redacted message (a redaction row from an accepted redaction event):
    # neither may be found.
    _insert_raw(conn, make_event("10", "m.room.message", ALICE, {"body": "outlier", "m.relates_to": REL},
                                 room_id=ROOM), outlier=True)
    secret = make_event("10", "m.room.message", ALICE, {"body": "secret", "m.relates_to": REL},
                        room_id=ROOM)
    _insert_raw(conn, secret)
    redaction = make_event("10", "m.room.redaction", ALICE, {}, room_id=ROOM, redacts=secret.event_id)
    _insert_raw(conn, redaction)
    conn.execute("INSERT INTO redactions (event_id, redacts) VALUES (?, ?)",
                 (redaction.event_id, secret.event_id))
    conn.commit()
    conn.close()
    held.rename(directory / held.name)
    assert [m.version for m in await apply_migrations(path, directory=directory)] == [15]
    conn = sqlite3.connect(path)
    try:
        rels, rows = _expected(indexed)
        assert _relations(conn) == rels and len(rels) == 1
        assert _search_rows(conn) == rows
        assert {r[2] for r in rows} == {
            "Martians and men", "in a thread", "The Room", "cats dogs", "same", "a reply"
        }
        found = conn.execute("SELECT rowid FROM event_search WHERE event_search MATCH 'martian'")
        assert [r[0] for r in found] == [indexed[0][1]]
    finally:
        conn.close()


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    yield s
    await s.close()


async def test_live_writes_index_and_redactions_unindex(storage: Storage) -> None:
    events = _events()
    positions = []
    for e in events:
        positions.append(await storage.db.write(lambda c, e=e: ev.insert_event(c, e, state_group=1)))
    # Outliers and soft-failed events are not part of the timeline: never indexed.
    await storage.db.write(lambda c: ev.insert_event(c, make_event(
        "10", "m.room.message", ALICE, {"body": "x", "m.relates_to": REL}, room_id=ROOM), outlier=True))
    await storage.db.write(lambda c: ev.insert_event(c, make_event(
        "10", "m.room.message", ALICE, {"body": "y", "m.relates_to": REL}, room_id=ROOM), soft_failed=True))

    def snapshot() -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
        conn = sqlite3.connect(storage.db.path)
        try:
            return _relations(conn), _search_rows(conn)
        finally:
            conn.close()

    assert snapshot() == _expected(list(zip(events, positions, strict=True)))
    threaded = events[1]
    await storage.db.write(lambda c: ev.insert_redaction(c, "$redaction", threaded.event_id))
    rels, rows = snapshot()
    assert rels == set() and positions[1] not in {r[0] for r in rows}
    # A redaction that arrives before its target (federation) keeps the target out too.
    late = make_event("10", "m.room.message", ALICE, {"body": "late", "m.relates_to": REL}, room_id=ROOM)
    redaction = make_event("10", "m.room.redaction", ALICE, {}, room_id=ROOM, redacts=late.event_id)
    await storage.db.write(lambda c: ev.insert_event(c, redaction, state_group=1))
    await storage.db.write(lambda c: ev.insert_redaction(c, redaction.event_id, late.event_id))
    await storage.db.write(lambda c: ev.insert_event(c, late, state_group=1))
    rels, rows = snapshot()
    assert rels == set() and "late" not in {r[2] for r in rows}
