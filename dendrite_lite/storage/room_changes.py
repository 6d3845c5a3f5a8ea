"""A process-wide stamp per room, moved by every write of a room's head: the rooms row, its
current state, current state group or forward extremities.

Why: the local pipeline keeps each room's head (current state ids, extremities, state group) in
memory instead of reading 50+ rows per message, but other code writes room heads too (events
from other servers, out-of-band memberships). They all go through the storage functions that
call `touch`, so the pipeline trusts its copy only while the room's stamp is the one it saw
inside its own last write job; any other write, even one that later rolls back, makes it
reload (a needless reload is only slower, never wrong).

Stamps are taken on the writer while jobs run one after another, so "the stamp right after my
writes" names exactly the state my transaction left behind.
"""

from __future__ import annotations

import itertools

__all__ = ["touch", "stamp"]

_next = itertools.count(1)
_stamps: dict[str, int] = {}


def touch(room_id: str) -> None:
    _stamps[room_id] = next(_next)


def stamp(room_id: str) -> int:
    """The room's current stamp (0: not written by this process)."""
    return _stamps.get(room_id, 0)
