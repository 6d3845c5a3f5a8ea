"""Who a user ignores: the `m.ignored_user_list` global account data (modules/ignore_users.md).

Read where events are served (rooms.visibility, sync invites) and where push rules run
(rooms.notifications), in the reader's own snapshot: an edit of the list applies to the very
next read, which is what "the sync API for all clients should immediately start ignoring (or
un-ignoring) the user" asks, with no cache to invalidate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

__all__ = ["IGNORED_USER_LIST", "ignored_in", "select_ignored_users", "select_ignored_by"]

IGNORED_USER_LIST = "m.ignored_user_list"
_SELECT = "SELECT content FROM account_data WHERE user_id = ? AND room_id = '' AND type = ?"
_CHUNK = 400


def ignored_in(content: Any) -> frozenset[str]:
    """The user IDs of `ignored_users`; anything malformed ignores nobody."""
    users = content.get("ignored_users") if isinstance(content, dict) else None
    if not isinstance(users, dict):
        return frozenset()
    return frozenset(u for u in users if isinstance(u, str) and u.startswith("@"))


async def select_ignored_users(conn: aiosqlite.Connection, user_id: str) -> frozenset[str]:
    async with conn.execute(_SELECT, (user_id, IGNORED_USER_LIST)) as cur:
        row = await cur.fetchone()
    return ignored_in(json.loads(row[0])) if row is not None else frozenset()


async def select_ignored_by(
    conn: aiosqlite.Connection, user_ids: Sequence[str]
) -> dict[str, frozenset[str]]:
    """user_id -> whom they ignore, for those of `user_ids` who ignore anyone."""
    out: dict[str, frozenset[str]] = {}
    for start in range(0, len(user_ids), _CHUNK):
        chunk = list(user_ids[start : start + _CHUNK])
        sql = (
            "SELECT user_id, content FROM account_data WHERE room_id = '' AND type = ?"
            f" AND user_id IN ({','.join('?' * len(chunk))})"
        )
        async with conn.execute(sql, [IGNORED_USER_LIST, *chunk]) as cur:
            for user_id, content in await cur.fetchall():
                if ignored := ignored_in(json.loads(content)):
                    out[user_id] = ignored
    return out
