"""MSC3202 device lists of one AS transaction: the stream changes after the AS's cursor that
concern it, and the `left` rows the persist hook wrote (appservice/device_lists.py)."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from dendrite_lite.appservice.device_lists import entry, fold, summary
from dendrite_lite.storage import Storage
from dendrite_lite.storage import device_lists as stream


def test_no_rows_no_device_lists() -> None:
    assert fold([]) is None


def test_the_later_row_of_a_user_wins_and_duplicates_go() -> None:
    rows = [
        entry("@a:x", left=False), entry("@b:x", left=False), entry("@a:x", left=False),
        entry("@b:x", left=True),  # changed, then left: left only
        entry("@c:x", left=True), entry("@c:x", left=False),  # left, then back: changed only
    ]
    assert fold(rows) == {"changed": ["@a:x", "@c:x"], "left": ["@b:x"]}


def _ours(user_id: str) -> bool:
    return user_id.startswith("@bot_") or user_id == "@botsender:hs"


async def test_summary_of_stream_changes_and_left_rows(tmp_path: Path) -> None:
    storage = await Storage.open(tmp_path / "db.sqlite")
    members = [
        ("!r1", "@bot_1:hs"), ("!r1", "@alice:hs"), ("!r1", "@rem:remote"),
        ("!r2", "@stranger:hs"), ("!r2", "@other:hs"), ("!r3", "@botsender:hs"), ("!r3", "@back:hs"),
    ]

    async def scenario(conn: aiosqlite.Connection) -> None:
        await conn.executemany(
            "INSERT INTO current_state (room_id, type, state_key, event_id, membership)"
            " VALUES (?, 'm.room.member', ?, '$e' || ?, 'join')",
            [(room, user, i) for i, (room, user) in enumerate(members)],
        )
        for user, seen_by in [
            ("@alice:hs", None),  # shares a room with the AS's user: changed
            ("@stranger:hs", None),  # shares none: not the AS's business
            ("@rem:remote", None),  # a remote room-mate: changed
            ("@bot_1:hs", None),  # the AS's own user: changed
            ("@stranger:hs", "@bot_1:hs"),  # signed by the AS's user, seen by it only: changed
            ("@other:hs", "@alice:hs"),  # seen by someone else only: not
        ]:
            await stream.insert_device_list_change(conn, user, "D", seen_by=seen_by)
        rows = [
            entry("@gone:hs", left=True),  # shares no room now: left
            entry("@back:hs", left=True),  # shares a room again: not left
            entry("@legacy:hs", left=False),  # a row of the old kind: still a change
        ]
        up_to, lists = await summary(conn, "hs", _ours, since=0, until=None, entries=rows)
        assert up_to == 6
        assert lists == {
            "changed": ["@alice:hs", "@bot_1:hs", "@legacy:hs", "@rem:remote", "@stranger:hs"],
            "left": ["@gone:hs"],
        }
        # Resending a transaction: the same stretch of the stream, whatever came since.
        up_to, lists = await summary(conn, "hs", _ours, since=0, until=2, entries=[])
        assert (up_to, lists) == (2, {"changed": ["@alice:hs"], "left": []})
        # Changes of nobody the AS hears of: read (the cursor may move) but nothing to send.
        up_to, lists = await summary(conn, "hs", _ours, since=5, until=None, entries=[])
        assert (up_to, lists) == (6, None)
        # Nothing after the cursor, or no cursor yet.
        assert await summary(conn, "hs", _ours, since=6, until=None, entries=[]) == (0, None)
        assert await summary(conn, "hs", _ours, since=None, until=None, entries=[]) == (0, None)

    try:
        await storage.db.write(scenario)
    finally:
        await storage.close()
