"""Sliding sync list windows (sync/sliding/lists.py `window`): filters first, then the ranges
index into what passed, overlapping ranges count once and a range past the end stops there."""

from __future__ import annotations

from dendrite_lite.sync.sliding.lists import ListedRoom, RoomFacts, window
from dendrite_lite.sync.sliding.request import ListConfig, ListFilters, RoomConfig
from dendrite_lite.sync.sliding.required_state import RequiredState

CONFIG = RoomConfig(1, RequiredState())


def _rooms(n: int) -> list[ListedRoom]:
    # Newest first, as select_room_list orders them.
    return [ListedRoom(f"!r{i}:x", "join", f"$m{i}", i, 100 - i) for i in range(n)]


def test_ranges_index_the_filtered_list() -> None:
    rooms = _rooms(6)
    count, picked = window(
        rooms, ListConfig(CONFIG, ((0, 1), (1, 2), (4, 99))), RoomFacts()
    )
    assert count == 6
    assert [r.room_id for r in picked] == ["!r0:x", "!r1:x", "!r2:x", "!r4:x", "!r5:x"]
    count, picked = window(rooms, ListConfig(CONFIG, ((10, 20),)), RoomFacts())
    assert (count, picked) == (6, [])
    count, picked = window(rooms, ListConfig(CONFIG, None), RoomFacts())
    assert count == 6 and picked == rooms


def test_filters_come_before_the_range() -> None:
    rooms = _rooms(5)
    facts = RoomFacts(
        dm_rooms={"!r1:x", "!r3:x", "!r4:x"}, tags={"!r3:x": {"m.favourite"}}
    )
    dms = ListConfig(CONFIG, ((0, 1),), ListFilters(is_dm=True))
    count, picked = window(rooms, dms, facts)
    assert count == 3 and [r.room_id for r in picked] == ["!r1:x", "!r3:x"]
    not_fav = ListConfig(
        CONFIG, None, ListFilters(is_dm=True, not_tags=("m.favourite",))
    )
    assert [r.room_id for r in window(rooms, not_fav, facts)[1]] == ["!r1:x", "!r4:x"]


def test_invites_and_room_types() -> None:
    rooms = _rooms(3)
    rooms[2] = ListedRoom("!r2:x", "invite", "$m2", 2, 98, None, True)
    facts = RoomFacts(room_types={"!r0:x": "m.space", "!r1:x": None, "!r2:x": None})
    invites = ListConfig(CONFIG, None, ListFilters(is_invite=True))
    assert [r.room_id for r in window(rooms, invites, facts)[1]] == ["!r2:x"]
    assert facts.is_dm(rooms[2])  # an invite marked is_direct
    no_spaces = ListConfig(CONFIG, None, ListFilters(not_room_types=("m.space",)))
    assert [r.room_id for r in window(rooms, no_spaces, facts)[1]] == ["!r1:x", "!r2:x"]
    untyped = ListConfig(CONFIG, None, ListFilters(room_types=(None,)))
    assert window(rooms, untyped, facts)[1] == window(rooms, no_spaces, facts)[1]
