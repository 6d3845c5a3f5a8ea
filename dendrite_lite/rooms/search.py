"""Server-side search of room events (modules/search.md, search.yaml) on SQLite FTS5.

Only what the user may see is searched or returned: the rooms they are or were joined to (a
left room up to their leave; banned likewise), then each hit passes the request's filter and
history visibility (rooms.visibility), as /messages does. The index (storage.search) holds only
the spec's searchable keys and loses redacted events.

Paging reads hits in batches, drops what the user may not see, and stops once `limit` results
are found; the token says where the next page starts in the raw hit order (an offset for
order_by rank, a stream position for recent), so nothing is skipped or repeated (by rank, a
message indexed between two requests can shift bm25's order, as with any offset paging). `count` is the
number of hits in the searched rooms before visibility, which the spec allows ("approximate").
Highlights are the words FTS5 itself matched in the returned results (its highlight(), so
stemmed and prefix matches are reported as they are written).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiosqlite

from dendrite_lite.rooms.aggregations import Viewer, serializer_with_bundles
from dendrite_lite.rooms.search_context import context_of, room_states
from dendrite_lite.rooms.search_request import (
    Criteria,
    Page,
    decode_token,
    encode_token,
    fts_query,
    parse_criteria,
)
from dendrite_lite.rooms.visibility import filter_events_for_user_conn
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import search as search_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.storage.search import (
    HIGHLIGHT_CLOSE,
    HIGHLIGHT_OPEN,
    SearchHit,
    SearchQuery,
)

__all__ = ["SearchService"]

# Hits read per batch beyond the page size, since some may be hidden from the user.
_BATCH_EXTRA = 20
_READABLE = ("join", "leave", "ban")


@dataclass(frozen=True, slots=True)
class _Found:
    hit: SearchHit
    stored: StoredEvent


@dataclass(frozen=True, slots=True)
class _Results:
    found: list[_Found]
    next_page: Page | None


class SearchService:
    def __init__(self, storage: Storage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._clock = clock

    async def search(
        self, user_id: str, device_id: str | None, body: Any, next_batch: str | None
    ) -> dict[str, Any]:
        """POST /_matrix/client/v3/search -> the response body."""
        criteria = parse_criteria(body)
        page = decode_token(next_batch) if next_batch else Page()
        if criteria is None:
            return {"search_categories": {}}
        viewer = Viewer(user_id, device_id, int(self._clock() * 1000))

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            found = await _room_events(conn, viewer, criteria, page)
            return {"search_categories": {"room_events": found}}

        return await self._storage.db.read(read)


async def _searchable_rooms(
    conn: aiosqlite.Connection, user_id: str, criteria: Criteria, page: Page
) -> dict[str, tuple[str, str, int]]:
    """room -> the user's membership, for the rooms this search may look in."""
    memberships = await history_table.select_current_memberships(conn, user_id)
    rooms = {
        r: m for r, m in memberships.items()
        if m[0] in _READABLE and criteria.filter.room_allowed(r)
    }
    if page.group is not None and page.group[0] == "room_id":
        rooms = {r: m for r, m in rooms.items() if r == page.group[1]}
    return rooms


async def _room_events(
    conn: aiosqlite.Connection, viewer: Viewer, criteria: Criteria, page: Page
) -> dict[str, Any]:
    rooms = await _searchable_rooms(conn, viewer.user_id, criteria, page)
    match = fts_query(criteria.search_term)
    if match is None or not rooms:
        return {"count": 0, "highlights": [], "results": []}
    query = SearchQuery(
        match=match, room_ids=sorted(rooms), keys=criteria.keys, by_rank=criteria.by_rank,
        offset=page.offset, before=page.before,
    )
    results = await _collect(conn, viewer.user_id, criteria, page, query, rooms)
    events = [f.stored for f in results.found]
    ser = await serializer_with_bundles(conn, viewer, events)
    out: dict[str, Any] = {
        "count": await search_table.count_matches(conn, query),
        "highlights": _highlights(f.hit.highlighted for f in results.found),
        "results": [],
    }
    for f in results.found:
        result: dict[str, Any] = {"rank": f.hit.rank, "result": ser.format(f.stored)}
        if criteria.context is not None:
            result["context"] = await context_of(
                conn, viewer, f.stored, criteria.context, criteria.include_profile, rooms
            )
        out["results"].append(result)
    if results.next_page is not None:
        out["next_batch"] = encode_token(results.next_page)
    if criteria.group_by:
        out["groups"] = _groups(criteria.group_by, events, results.next_page)
    if criteria.include_state:
        out["state"] = await room_states(conn, viewer, {e.event.room_id for e in events}, rooms)
    return out


async def _collect(
    conn: aiosqlite.Connection,
    user_id: str,
    criteria: Criteria,
    page: Page,
    query: SearchQuery,
    rooms: Mapping[str, tuple[str, str, int]],
) -> _Results:
    """Read hits batch by batch until `limit` visible results or the hits run out."""
    limit = criteria.limit
    batch = limit + _BATCH_EXTRA
    found: list[_Found] = []
    while True:
        hits = await search_table.select_matches(conn, query, batch)
        loaded = await events_table.select_events_at(conn, [h.stream_ordering for h in hits])
        candidates = [
            s for h in hits
            if (s := loaded.get(h.stream_ordering)) is not None and _wanted(s, criteria, page, rooms)
        ]
        visible = {
            s.event.event_id for s in await filter_events_for_user_conn(conn, user_id, candidates, rooms)
        }
        for i, h in enumerate(hits):
            s = loaded.get(h.stream_ordering)
            if s is None or s.event.event_id not in visible:
                continue
            found.append(_Found(h, s))
            if len(found) == limit:
                return _Results(found, _after(query, page, hits, i))
        if len(hits) < batch:
            return _Results(found, None)
        query = _advance(query, hits, len(hits) - 1)


def _advance(query: SearchQuery, hits: Sequence[SearchHit], index: int) -> SearchQuery:
    """The query continuing after hits[index]."""
    if query.by_rank:
        return replace(query, offset=query.offset + index + 1)
    return replace(query, before=hits[index].stream_ordering)


def _after(query: SearchQuery, page: Page, hits: Sequence[SearchHit], index: int) -> Page:
    nxt = _advance(query, hits, index)
    return Page(offset=nxt.offset, before=nxt.before, group=page.group)


def _wanted(
    s: StoredEvent, criteria: Criteria, page: Page, rooms: Mapping[str, tuple[str, str, int]]
) -> bool:
    """The request's filter and the group the token pages in; a left room up to the leave."""
    membership = rooms.get(s.event.room_id)
    if membership is None:
        return False
    if membership[0] != "join" and s.stream_ordering > membership[2]:
        return False
    if page.group is not None and page.group[0] == "sender" and s.event.sender != page.group[1]:
        return False
    return criteria.filter.matches(s.event.pdu)


def _highlights(texts: Any) -> list[str]:
    words: set[str] = set()
    for text in texts:
        for part in text.split(HIGHLIGHT_OPEN)[1:]:
            word = part.split(HIGHLIGHT_CLOSE, 1)[0].strip()
            if word:
                words.add(word)
    return sorted(words)


def _groups(
    group_by: Sequence[str], events: Sequence[StoredEvent], next_page: Page | None
) -> dict[str, dict[str, Any]]:
    """search.md §Groups: per key, per value, the result ids in result order; `order` is the
    rank of the group's first result; next_batch pages within the group."""
    out: dict[str, dict[str, Any]] = {}
    for key in group_by:
        groups: dict[str, dict[str, Any]] = {}
        for s in events:
            value = s.event.room_id if key == "room_id" else s.event.sender
            group = groups.setdefault(value, {"order": len(groups) + 1, "results": []})
            group["results"].append(s.event.event_id)
        if next_page is not None:
            for value, group in groups.items():
                group["next_batch"] = encode_token(replace(next_page, group=(key, value)))
        out[key] = groups
    return out
