"""POST /search request parsing (search.yaml): the room_events criteria, the FTS5 query made of
the search term, and the opaque next_batch tokens.

Every field is type-checked (400 M_BAD_JSON naming it), as request_body does elsewhere.

Tokens are base64url JSON: {"o": n} (order_by rank: n results of that ordering already read) or
{"b": pos} (order_by recent: results below stream position pos), plus {"g": [key, value]} when
the token came from a group, so that paging it stays within the group (search.md §Pagination).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import optional_field, required_field
from dendrite_lite.storage.search import SEARCH_KEYS
from dendrite_lite.sync.filters import RoomEventFilter, parse_room_event_filter

__all__ = ["Criteria", "Page", "decode_token", "encode_token", "fts_query", "parse_criteria"]

GROUP_KEYS = ("room_id", "sender")
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 50
DEFAULT_LIMIT = 10  # Synapse's, for a filter without `limit`
MAX_LIMIT = 100
_PREFIX = "search_categories.room_events"
# A quoted phrase, or a run of word characters (any script).
_TOKEN = re.compile(r'"([^"]*)"|(\w+)', re.UNICODE)


@dataclass(frozen=True, slots=True)
class Criteria:
    search_term: str
    keys: tuple[str, ...]
    filter: RoomEventFilter
    by_rank: bool
    context: tuple[int, int] | None  # (before_limit, after_limit) when event_context was given
    include_profile: bool
    include_state: bool
    group_by: tuple[str, ...]

    @property
    def limit(self) -> int:
        limit = self.filter.limit if self.filter.limit is not None else DEFAULT_LIMIT
        return max(1, min(limit, MAX_LIMIT))


@dataclass(frozen=True, slots=True)
class Page:
    """Where a page starts: an offset (rank) or a stream position (recent), maybe in a group."""

    offset: int = 0
    before: int | None = None
    group: tuple[str, str] | None = None


def _context_limit(obj: Mapping[str, Any], key: str) -> int:
    value = optional_field(obj, key, "integer", name=f"{_PREFIX}.event_context.{key}")
    if value is None:
        return DEFAULT_CONTEXT
    if value < 0:
        raise MatrixError(Errcode.INVALID_PARAM, f"event_context.{key} must not be negative")
    return int(min(value, MAX_CONTEXT))


def _keys(criteria: Mapping[str, Any]) -> tuple[str, ...]:
    keys = optional_field(criteria, "keys", "array", name=f"{_PREFIX}.keys")
    if keys is None:
        return tuple(SEARCH_KEYS.values())
    known = set(SEARCH_KEYS.values())
    for k in keys:
        if not isinstance(k, str) or k not in known:
            raise MatrixError(
                Errcode.INVALID_PARAM, f"{_PREFIX}.keys: {k!r} is not one of {sorted(known)}"
            )
    return tuple(dict.fromkeys(keys))


def _group_by(criteria: Mapping[str, Any]) -> tuple[str, ...]:
    groupings = optional_field(criteria, "groupings", "object", name=f"{_PREFIX}.groupings")
    if groupings is None:
        return ()
    group_by = optional_field(groupings, "group_by", "array", name=f"{_PREFIX}.groupings.group_by")
    out: list[str] = []
    for g in group_by or ():
        if not isinstance(g, dict):
            raise MatrixError(Errcode.BAD_JSON, f"{_PREFIX}.groupings.group_by items must be objects")
        key = optional_field(g, "key", "string", name=f"{_PREFIX}.groupings.group_by.key")
        if key not in GROUP_KEYS:
            raise MatrixError(Errcode.INVALID_PARAM, f"group_by key must be one of {GROUP_KEYS}")
        out.append(key)
    return tuple(dict.fromkeys(out))


def parse_criteria(body: Any) -> Criteria | None:
    """The room_events criteria of a /search body; None when room_events is absent."""
    if not isinstance(body, dict):
        raise MatrixError(Errcode.BAD_JSON, "The request body must be a JSON object")
    categories = required_field(body, "search_categories", "object")
    criteria = optional_field(categories, "room_events", "object", name=_PREFIX)
    if criteria is None:
        return None
    term = required_field(criteria, "search_term", "string", name=f"{_PREFIX}.search_term")
    order_by = optional_field(criteria, "order_by", "string", name=f"{_PREFIX}.order_by") or "rank"
    if order_by not in ("rank", "recent"):
        raise MatrixError(Errcode.INVALID_PARAM, "order_by must be 'rank' or 'recent'")
    context = optional_field(criteria, "event_context", "object", name=f"{_PREFIX}.event_context")
    include_profile = context is not None and bool(optional_field(
        context, "include_profile", "boolean", name=f"{_PREFIX}.event_context.include_profile"
    ))
    include_state = optional_field(criteria, "include_state", "boolean", name=f"{_PREFIX}.include_state")
    return Criteria(
        search_term=term,
        keys=_keys(criteria),
        filter=parse_room_event_filter(criteria.get("filter"), f"{_PREFIX}.filter"),
        by_rank=order_by == "rank",
        context=(
            (_context_limit(context, "before_limit"), _context_limit(context, "after_limit"))
            if context is not None else None
        ),
        include_profile=include_profile,
        include_state=bool(include_state),
        group_by=_group_by(criteria),
    )


def fts_query(term: str) -> str | None:
    """The FTS5 expression for a search term: every word (as a prefix, as Synapse does on
    SQLite: "mart" finds "martians") and every "quoted phrase" must match. Each is quoted, so
    nothing the user types is FTS5 syntax. None when the term has no word at all."""
    parts: list[str] = []
    for phrase, word in _TOKEN.findall(term):
        if word:
            parts.append(f'"{word}"*')
        elif phrase.strip():
            parts.append('"' + phrase.replace('"', '""') + '"')
    return " AND ".join(parts) if parts else None


def encode_token(page: Page) -> str:
    obj: dict[str, Any] = {"b": page.before} if page.before is not None else {"o": page.offset}
    if page.group is not None:
        obj["g"] = list(page.group)
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> Page:
    try:
        obj = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        group = obj.get("g")
        page = Page(
            offset=int(obj.get("o", 0)),
            before=int(obj["b"]) if "b" in obj else None,
            group=(str(group[0]), str(group[1])) if group is not None else None,
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid next_batch token") from None
    if page.offset < 0 or (page.group is not None and page.group[0] not in GROUP_KEYS):
        raise MatrixError(Errcode.INVALID_PARAM, "Invalid next_batch token")
    return page
