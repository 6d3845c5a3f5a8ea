"""Sliding sync connection state (sync/sliding/connection.py): what a connection sent of each
room's account data and receipts moves as Synapse's HaveSentRoom does (never -> live, live ->
behind a position when changes go unsent, behind -> live), a room sent again keeps it, and it
and the lists' counts are saved with a position and read back from it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.sync.sliding.connection import (
    LIVE,
    ConnectionState,
    RoomSent,
    SentStreams,
    load_connection,
    save_connection,
)
from dendrite_lite.sync.sliding.required_state import RequiredState
from dendrite_lite.sync.tokens import SyncToken

ALICE = "@alice:example.org"


def _sent(sent_to: int = 5, **streams: object) -> RoomSent:
    return RoomSent(sent_to, 1, RequiredState(), **streams)  # type: ignore[arg-type]


def _state(**rooms: RoomSent) -> ConnectionState:
    return ConnectionState(ALICE, "DEV", "c", 1, 1, SyncToken(), dict(rooms))


def test_a_room_in_scope_becomes_live_and_one_out_of_scope_falls_behind() -> None:
    state = _state(never=_sent(), live=_sent(receipts=LIVE), behind=_sent(receipts=7))
    sent = SentStreams(state)
    assert [sent.status("receipts", r) for r in ("never", "live", "behind")] == [
        None,
        LIVE,
        7,
    ]
    assert sent.live_rooms("receipts") == ["live"]
    # Changes the response does not send: only a live room falls behind; a room never sent
    # stays so (it gets everything when it comes), one behind keeps its older position.
    sent.record_unsent("receipts", ["never", "live", "behind", "!unknown:x"], 9)
    assert {r: s.receipts for r, s in state.changed.items()} == {"live": 9}
    state.changed.clear()
    sent.record_sent("receipts", ["never", "live", "behind", "!unknown:x"])
    assert {r: s.receipts for r, s in state.changed.items()} == {
        "never": LIVE,
        "behind": LIVE,
    }
    # The other stream is its own.
    assert all(s.account_data is None for s in state.changed.values())


def test_a_room_sent_again_keeps_what_was_sent_of_its_streams() -> None:
    before = _sent(account_data=LIVE, receipts=3)
    again = _sent(sent_to=9).streams_of(before)
    assert (again.sent_to, again.account_data, again.receipts) == (9, LIVE, 3)
    assert _sent(sent_to=9).streams_of(None).receipts is None


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "homeserver.db", readers=1)
    yield s
    await s.close()


async def test_streams_and_list_counts_are_saved_with_the_position(
    storage: Storage,
) -> None:
    token = SyncToken(room=5)
    new = ConnectionState(ALICE, "DEV", "c", None, None, None)
    new.changed["!a:x"] = _sent(account_data=LIVE, receipts=4)
    new.changed["!b:x"] = _sent()
    new.lists = {"all_rooms": 2}
    p1 = await storage.db.write(lambda c: save_connection(c, new, now_ms=10))
    pos1 = f"{p1}/{token.encode()}"
    loaded = await storage.db.read(
        lambda c: load_connection(c, ALICE, "DEV", "c", pos1, now_ms=10)
    )
    assert loaded.rooms == {
        "!a:x": _sent(account_data=LIVE, receipts=4),
        "!b:x": _sent(),
    }
    assert loaded.lists_sent == {"all_rooms": 2}
    # Same rooms, same counts: the same position. A count changed alone: a new one.
    loaded.lists = {"all_rooms": 2}
    assert await storage.db.write(lambda c: save_connection(c, loaded, now_ms=11)) == p1
    assert not loaded.lists_changed
    loaded.lists = {"all_rooms": 3}
    assert loaded.lists_changed
    p2 = await storage.db.write(lambda c: save_connection(c, loaded, now_ms=12))
    assert p2 != p1
    later = await storage.db.read(
        lambda c: load_connection(c, ALICE, "DEV", "c", f"{p2}/{token.encode()}", 12)
    )
    assert later.lists_sent == {"all_rooms": 3} and set(later.rooms) == {"!a:x", "!b:x"}
    # A list the client did not have counts is news; one it no longer asks for is not.
    later.lists = {"all_rooms": 3, "invites": 0}
    assert later.lists_changed
    later.lists = {}
    assert not later.lists_changed


def test_counts_of_a_position_saved_without_them_are_unknown() -> None:
    state = _state()
    state.lists = {"all_rooms": 4}
    assert state.lists_sent is None and not state.lists_changed
