"""POST /user_directory/search (users.yaml): users the searcher shares a room with, or who are
joined to a public or world_readable room this server is still in, matched case-insensitively on
user ID and display name. The searcher finds themselves only through such a public room.

Matching: every word of the search term must start a word of the display name or of the user
ID (split at anything that is not a letter or digit), so "ali" finds "@alice:example.org" and
"Alice Smith", "smi al" finds "Alice Smith". Ranking: users sharing a room first, then those
with a display name, then by display name (else user ID). Other servers' users are found
through the rooms this server holds: the spec's "SHOULD query remote users" has no
federation API to do it with.
"""

from __future__ import annotations

import re
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import server_name_of
from dendrite_lite.storage import Storage
from dendrite_lite.storage.user_directory import DirectoryEntry, select_visible_users

__all__ = ["UserDirectory", "DEFAULT_LIMIT", "MAX_LIMIT"]

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _matches(entry: DirectoryEntry, terms: list[str]) -> bool:
    words = _words(entry.user_id) + _words(entry.display_name or "")
    return all(any(w.startswith(t) for w in words) for t in terms)


def _rank(entry: DirectoryEntry) -> tuple[bool, bool, str, str]:
    name = entry.display_name
    return (not entry.shares_room, name is None, (name or entry.user_id).casefold(), entry.user_id)


class UserDirectory:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def search(self, searcher: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /_matrix/client/v3/user_directory/search body."""
        term = body.get("search_term")
        if term is None:
            raise MatrixError(Errcode.MISSING_PARAM, "Missing 'search_term'")
        if not isinstance(term, str):
            raise MatrixError(Errcode.INVALID_PARAM, "'search_term' must be a string")
        limit = body.get("limit", DEFAULT_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise MatrixError(Errcode.INVALID_PARAM, "'limit' must be a non-negative integer")
        limit = min(limit, MAX_LIMIT)
        terms = _words(term)
        if not terms:
            return {"results": [], "limited": False}
        # The searcher is always one of ours: their server name is this server's.
        server_name = server_name_of(searcher)
        entries = await self._storage.db.read(
            lambda conn: select_visible_users(conn, searcher, server_name)
        )
        found = sorted((e for e in entries if _matches(e, terms)), key=_rank)
        return {"results": [_result(e) for e in found[:limit]], "limited": len(found) > limit}


def _result(entry: DirectoryEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"user_id": entry.user_id}
    if entry.display_name is not None:
        out["display_name"] = entry.display_name
    if entry.avatar_url is not None:
        out["avatar_url"] = entry.avatar_url
    return out
