"""Stored filters: POST/GET /user/{userId}/filter and the /sync `filter` parameter."""

from __future__ import annotations

import json
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import filters as table
from dendrite_lite.sync.filters import Filter, filter_from_stored, inline_filter_or_id, parse_filter

__all__ = ["FilterService"]


def _require_self(requester: str, user_id: str) -> None:
    if requester != user_id:
        raise MatrixError(Errcode.FORBIDDEN, "Cannot use filters of other users.")


def _parse_id(filter_id: str) -> int | None:
    # Our ids are decimal; anything else names no filter (and never starts with '{').
    return int(filter_id) if filter_id.isascii() and filter_id.isdigit() and len(filter_id) < 19 else None


class FilterService:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def create(self, requester: str, user_id: str, body: Any) -> str:
        """POST /_matrix/client/v3/user/{userId}/filter -> the new filter id."""
        _require_self(requester, user_id)
        parsed = parse_filter(body)
        source = parsed.source or "{}"
        filter_id = await self._storage.db.write(
            lambda conn: table.insert_filter(conn, user_id, source)
        )
        return str(filter_id)

    async def get(self, requester: str, user_id: str, filter_id: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/user/{userId}/filter/{filterId} -> the filter as uploaded."""
        _require_self(requester, user_id)
        stored = await self._load(user_id, filter_id)
        if stored is None:
            raise MatrixError(Errcode.NOT_FOUND, "No such filter.")
        return stored

    async def resolve(self, user_id: str, param: str | None) -> Filter:
        """The Filter for the /sync `filter` parameter (inline JSON or one of the user's ids)."""
        resolved = inline_filter_or_id(param)
        if isinstance(resolved, Filter):
            return resolved
        return filter_from_stored(resolved, await self._load(user_id, resolved))

    async def _load(self, user_id: str, filter_id: str) -> dict[str, Any] | None:
        number = _parse_id(filter_id)
        if number is None:
            return None
        text = await self._storage.db.read(lambda conn: table.select_filter(conn, user_id, number))
        return json.loads(text) if text is not None else None
