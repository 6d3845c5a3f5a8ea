"""What the user directory searches (users.yaml POST /user_directory/search): the joined
members of every room a user can see members of, read from current state (so profile and
membership changes show at the next search, with nothing to keep in step)."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

__all__ = ["DirectoryEntry", "select_visible_users"]

# Rooms whose members the searcher may find (users.yaml): rooms they are joined to (whose other
# members share a room with them: the searcher alone in a private room does not find
# themselves), rooms with the public join rule, rooms with world_readable history. Only rooms
# this server is still in (one of its users joined: ?2 is ':' + our server name) count: a room
# it left is no longer followed, as Synapse drops it. Each joined member's current member event
# gives the profile; a redacted one gives none.
SELECT_VISIBLE_USERS = """
WITH mine AS (
  SELECT room_id FROM current_state
  WHERE type = 'm.room.member' AND state_key = ?1 AND membership = 'join'
), open_rooms AS (
  SELECT cs.room_id FROM current_state cs JOIN events e ON e.event_id = cs.event_id
  WHERE cs.state_key = '' AND (
    (cs.type = 'm.room.join_rules' AND json_extract(e.json, '$.content.join_rule') = 'public')
    OR (cs.type = 'm.room.history_visibility'
        AND json_extract(e.json, '$.content.history_visibility') = 'world_readable'))
  AND EXISTS (SELECT 1 FROM current_state l
              WHERE l.room_id = cs.room_id AND l.type = 'm.room.member'
              AND l.membership = 'join' AND substr(l.state_key, -length(?2)) = ?2)
)
SELECT m.state_key, m.state_key != ?1 AND m.room_id IN (SELECT room_id FROM mine),
  e.stream_ordering,
  json_extract(e.json, '$.content.displayname'), json_extract(e.json, '$.content.avatar_url'),
  EXISTS (SELECT 1 FROM redactions r JOIN events re ON re.event_id = r.event_id
          WHERE r.redacts = m.event_id AND re.rejected_reason IS NULL)
FROM current_state m JOIN events e ON e.event_id = m.event_id
WHERE m.type = 'm.room.member' AND m.membership = 'join'
AND ((m.state_key != ?1 AND m.room_id IN (SELECT room_id FROM mine))
     OR m.room_id IN (SELECT room_id FROM open_rooms))
"""


@dataclass(slots=True)
class DirectoryEntry:
    user_id: str
    display_name: str | None
    avatar_url: str | None
    shares_room: bool  # joined to a room the searcher is joined to
    position: int  # stream position of the member event the profile comes from


async def select_visible_users(
    conn: aiosqlite.Connection, searcher: str, server_name: str
) -> list[DirectoryEntry]:
    """One entry per visible user, with the profile of their newest member event."""
    found: dict[str, DirectoryEntry] = {}
    async with conn.execute(SELECT_VISIBLE_USERS, (searcher, ":" + server_name)) as cur:
        rows = await cur.fetchall()
    for user_id, shared, position, name, avatar, redacted in rows:
        entry = found.get(user_id)
        if entry is None or position > entry.position:
            kept = entry.shares_room if entry is not None else False
            entry = found[user_id] = DirectoryEntry(
                user_id,
                name if isinstance(name, str) and not redacted else None,
                avatar if isinstance(avatar, str) and not redacted else None,
                kept, int(position),
            )
        entry.shares_room = entry.shares_room or bool(shared)
    return list(found.values())
