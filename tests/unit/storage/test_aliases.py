"""room_aliases and forgotten_rooms tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.storage import Storage
from dendrite_lite.storage import aliases as al
from dendrite_lite.storage import state as st

ALICE = "@alice:example.org"
ROOM = "!room:example.org"


@pytest.fixture
async def storage(tmp_path: Path):
    s = await Storage.open(tmp_path / "homeserver.db", readers=2)
    yield s
    await s.close()


async def test_alias_insert_conflict_select_delete(storage: Storage) -> None:
    first = await storage.db.write(lambda c: al.insert_alias(c, "#a:x", ROOM, ALICE, 7))
    again = await storage.db.write(lambda c: al.insert_alias(c, "#a:x", "!other:x", ALICE, 8))
    await storage.db.write(lambda c: al.insert_alias(c, "#b:x", ROOM, ALICE, 9))
    assert (first, again) == (True, False)
    assert await storage.db.read(lambda c: al.select_alias(c, "#a:x")) == al.RoomAlias(
        "#a:x", ROOM, ALICE, 7
    )
    assert await storage.db.read(lambda c: al.select_aliases_for_room(c, ROOM)) == ["#a:x", "#b:x"]
    assert await storage.db.write(lambda c: al.delete_alias(c, "#a:x")) is True
    assert await storage.db.write(lambda c: al.delete_alias(c, "#a:x")) is False
    assert await storage.db.read(lambda c: al.select_alias(c, "#a:x")) is None


async def test_forgotten_until_membership_changes(storage: Storage) -> None:
    key = ("m.room.member", ALICE)
    await storage.db.write(lambda c: st.update_current_state(c, ROOM, {key: ("$leave", "leave")}))
    await storage.db.write(lambda c: al.insert_forgotten(c, ALICE, ROOM, "$leave"))
    assert await storage.db.read(lambda c: al.select_forgotten_room_ids(c, ALICE)) == [ROOM]
    assert await storage.db.read(lambda c: al.select_is_forgotten(c, ALICE, ROOM)) is True
    # A new membership event (a re-invite) un-forgets without touching forgotten_rooms.
    await storage.db.write(lambda c: st.update_current_state(c, ROOM, {key: ("$inv", "invite")}))
    assert await storage.db.read(lambda c: al.select_forgotten_room_ids(c, ALICE)) == []
    assert await storage.db.read(lambda c: al.select_is_forgotten(c, ALICE, ROOM)) is False
