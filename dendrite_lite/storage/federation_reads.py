"""Reads behind the federation read endpoints (api/federation/events.py) that no other table
module offers."""

from __future__ import annotations

import aiosqlite

__all__ = ["select_state_group_parent"]

SELECT_PARENT = "SELECT prev_group FROM state_groups WHERE id = ?"


async def select_state_group_parent(conn: aiosqlite.Connection, group: int) -> int | None:
    """The group `group` is a delta on (None for a full snapshot or an unknown group)."""
    async with conn.execute(SELECT_PARENT, (group,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else None
