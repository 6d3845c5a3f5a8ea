"""Sync and event filters: client-server API §Filtering and §Lazy-loading room members.

Pure logic, no I/O. A filter arrives as JSON (POST /user/{userId}/filter, the /sync `filter` query
parameter, the /messages and /context `filter` parameter) and is validated into frozen dataclasses
(schemas: data/api/client-server/definitions/{sync,event,room_event}_filter.yaml). Services then
ask the dataclasses which events, rooms and fields to return.

Errors: a filter that is JSON but not a valid filter is M_BAD_JSON ("valid JSON, but malformed in
some way, e.g. ... invalid values for keys"), naming the offending field by its dotted path; an
inline filter that is not JSON is M_NOT_JSON; a filter id that names no stored filter is 400
M_INVALID_PARAM (as Synapse answers on /sync; GET /user/{userId}/filter/{filterId} itself answers
404 M_NOT_FOUND, which is the endpoint's business, not this module's).

Unknown keys are ignored, not rejected: the filter schemas are open, and clients send unstable
keys (e.g. "org.matrix.msc3773.unread_thread_notifications") that other servers accept.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.push.conditions import split_key

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "EventFilter",
    "RoomEventFilter",
    "RoomFilter",
    "Filter",
    "parse_filter",
    "parse_room_event_filter",
    "parse_filter_param",
    "inline_filter_or_id",
    "filter_from_stored",
    "parse_room_event_filter_param",
    "apply_event_fields",
    "event_contains_url",
]

# The spec says "Servers should apply a default value" without naming one; 10 is what Synapse and
# Dendrite use for a room timeline, so clients that send no limit see the usual amount.
DEFAULT_LIMIT = 10
# "... and impose a maximum value to avoid resource exhaustion": a client asking for 10^9 timeline
# events per room on an initial sync would make us read every room's whole history. 100 is
# Synapse's default `filter_timeline_limit`; larger limits are lowered to it (not rejected), so a
# client that asks for a lot still works and simply gets a `limited` timeline.
MAX_LIMIT = 100


# --- The filter types --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilter:
    """EventFilter (definitions/event_filter.yaml): which events of one kind to return.

    `None` means the list was absent ("all types/senders are included"); an empty tuple means it
    was given empty, which includes nothing. `not_*` lists win over the matching include list.
    `limit` is None when the client gave none: only the timeline has a default (DEFAULT_LIMIT, see
    Filter.timeline_limit); applying 10 to account data or presence would silently drop data.
    """

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True if the event (a client-format dict with `type` and maybe `sender`) passes."""
        return _type_allowed(self, event.get("type")) and _sender_allowed(self, event.get("sender"))

    def blocks_all(self) -> bool:
        """True if no event can pass, so a sync can skip reading this stream at all.

        Clients say "no presence" as `{"types": []}` or `{"not_types": ["*"]}`.
        """
        return self.types == () or self.senders == () or "*" in self.not_types


@dataclass(frozen=True, slots=True)
class RoomEventFilter(EventFilter):
    """RoomEventFilter (definitions/room_event_filter.yaml): EventFilter plus rooms and flags."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    # True: only events whose content has a `url` key; False: only events without; None: either.
    contains_url: bool | None = None
    lazy_load_members: bool = False
    # Only meaningful together with lazy_load_members (the spec: "Does not apply unless ...").
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    def matches(self, event: Mapping[str, Any], room_id: str | None = None) -> bool:
        """True if the event passes; `room_id` is for events that carry none (ephemeral, account
        data), otherwise the event's own `room_id` is used."""
        if not EventFilter.matches(self, event):
            return False
        if not self.room_allowed(room_id if room_id is not None else event.get("room_id")):
            return False
        return self.contains_url is None or self.contains_url == event_contains_url(event)

    def room_allowed(self, room_id: str | None) -> bool:
        return _room_allowed(self.rooms, self.not_rooms, room_id)

    def blocks_all(self) -> bool:
        return EventFilter.blocks_all(self) or self.rooms == ()


@dataclass(frozen=True, slots=True)
class RoomFilter:
    """RoomFilter (the `room` key of a Filter). `rooms`/`not_rooms` here apply before the
    per-section filters below."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    ephemeral: RoomEventFilter = field(default_factory=RoomEventFilter)
    state: RoomEventFilter = field(default_factory=RoomEventFilter)
    timeline: RoomEventFilter = field(default_factory=RoomEventFilter)
    account_data: RoomEventFilter = field(default_factory=RoomEventFilter)

    def room_allowed(self, room_id: str | None) -> bool:
        return _room_allowed(self.rooms, self.not_rooms, room_id)


@dataclass(frozen=True, slots=True)
class Filter:
    """Filter (definitions/sync_filter.yaml): the whole /sync filter.

    `source` is the canonical JSON text the filter was parsed from (None for a filter built in
    code). It is kept so GET /user/{userId}/filter/{filterId} returns exactly what was uploaded:
    matrix-js-sdk compares the downloaded filter with the one it wants and uploads a new filter on
    every start if they differ. It takes no part in equality: two filters are equal when they
    filter the same way.
    """

    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"  # client | federation
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    room: RoomFilter = field(default_factory=RoomFilter)
    source: str | None = field(default=None, compare=False, repr=False)

    @property
    def timeline_limit(self) -> int:
        limit = self.room.timeline.limit
        return DEFAULT_LIMIT if limit is None else limit

    # Lazy-loading lives on the state filter, where clients (matrix-js-sdk's lazy-loading filter,
    # Element, mautrix) put it and where Synapse and Dendrite read it for /sync.
    @property
    def lazy_load_members(self) -> bool:
        return self.room.state.lazy_load_members

    @property
    def include_redundant_members(self) -> bool:
        return self.room.state.lazy_load_members and self.room.state.include_redundant_members

    # The spec: "Only applies to the /sync endpoint" -- read from the timeline filter, as Synapse.
    @property
    def unread_thread_notifications(self) -> bool:
        return self.room.timeline.unread_thread_notifications

    def to_json(self) -> dict[str, Any]:
        """The JSON to store and to return from GET /user/{userId}/filter/{filterId}."""
        if self.source is not None:
            return json.loads(self.source)  # type: ignore[no-any-return]
        return _dataclass_json(self)


# --- Matching ----------------------------------------------------------------------------------


def _type_allowed(f: EventFilter, event_type: Any) -> bool:
    if not isinstance(event_type, str):
        # Every event has a string type; something without one matches no explicit type list.
        return f.types is None
    if any(_type_matches(p, event_type) for p in f.not_types):
        return False
    return f.types is None or any(_type_matches(p, event_type) for p in f.types)


def _sender_allowed(f: EventFilter, sender: Any) -> bool:
    # Global account data has no sender: it passes unless the filter names senders.
    if sender in f.not_senders:
        return False
    return f.senders is None or sender in f.senders


def _room_allowed(
    rooms: tuple[str, ...] | None, not_rooms: tuple[str, ...], room_id: str | None
) -> bool:
    if room_id in not_rooms:
        return False
    return rooms is None or room_id in rooms


def _type_matches(pattern: str, event_type: str) -> bool:
    if "*" not in pattern:
        return pattern == event_type
    return _glob(pattern).fullmatch(event_type) is not None


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    # `*` matches any sequence of characters, anywhere in the pattern ("m.room.*", "*.call.*").
    # Every other character is literal: fnmatch would also give `?` and `[...]` meanings.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def event_contains_url(event: Mapping[str, Any]) -> bool:
    """The `contains_url` test: does the event's content have a `url` key?

    Storage should use this same function when it records a contains_url column for /messages.
    """
    content = event.get("content")
    return isinstance(content, Mapping) and "url" in content


# --- event_fields projection -------------------------------------------------------------------


_WHOLE: Any = object()  # trie marker: take the whole value at this node


def apply_event_fields(
    event: Mapping[str, Any], fields: tuple[str, ...] | list[str] | None
) -> Mapping[str, Any]:
    """Keep only the listed `event_fields` of a client-format event.

    Without fields (None or empty) the event is returned as is, not copied. Otherwise a new dict
    is built; values are shared with `event`, never mutated. Paths that do not exist (or run into
    a non-object) are skipped. An empty list is treated like an absent one: a filter that asks for
    events with no fields at all is a client bug, not a wish for `{}`s.
    """
    if not fields:
        return event
    return _project(event, _field_trie(tuple(fields)))


@functools.lru_cache(maxsize=256)
def _field_trie(fields: tuple[str, ...]) -> dict[str, Any]:
    # Cached: a sync applies the same filter's fields to every event. Callers only read it.
    trie: dict[str, Any] = {}
    for path in fields:
        node = trie
        # Dot-separated property paths (appendices), the same grammar as push rule keys.
        parts = split_key(path)
        for i, part in enumerate(parts):
            child = node.get(part)
            if child is _WHOLE:
                break  # a shorter path already takes everything below
            if i == len(parts) - 1:
                node[part] = _WHOLE
            else:
                node = node.setdefault(part, {})
    return trie


def _project(value: Mapping[str, Any], trie: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in trie.items():
        if key not in value:
            continue
        if sub is _WHOLE:
            out[key] = value[key]
        elif isinstance(value[key], Mapping):
            inner = _project(value[key], sub)
            if inner:
                out[key] = inner
    return out


# --- Parsing and validation --------------------------------------------------------------------


def _bad(path: str, problem: str) -> MatrixError:
    return MatrixError(Errcode.BAD_JSON, f"Invalid filter: {path} {problem}")


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(path, "must be a JSON object")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _get(obj: Mapping[str, Any], key: str) -> Any:
    # null counts as absent: Go clients serialise unset slices as null, and Dendrite (Go's
    # encoding/json) accepts that, so rejecting it would break clients that work there.
    return obj.get(key)


def _string_list(
    obj: Mapping[str, Any], key: str, path: str, sigil: str = ""
) -> tuple[str, ...] | None:
    value = _get(obj, key)
    if value is None:
        return None
    what = {"@": "user IDs", "!": "room IDs"}.get(sigil, "strings")
    if not isinstance(value, list):
        raise _bad(_join(path, key), f"must be a list of {what}")
    for i, item in enumerate(value):
        # The schemas' `pattern: "^@"` / `"^!"` (v12 room IDs have no ":server" part).
        if not isinstance(item, str) or not item.startswith(sigil):
            got = json.dumps(item)
            raise _bad(f"{_join(path, key)}[{i}]", f"must be one of the {what}, got {got}")
    return tuple(value)


def _bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = _get(obj, key)
    if value is not None and not isinstance(value, bool):
        raise _bad(_join(path, key), "must be true or false")
    return value


def _limit(obj: Mapping[str, Any], path: str) -> int | None:
    value = _get(obj, "limit")
    if value is None:
        return None
    # bool is an int in Python but not in JSON.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(_join(path, "limit"), f"must be a non-negative integer, got {json.dumps(value)}")
    # NOTSPEC: the spec says "greater than 0", but Synapse, Dendrite and Conduit accept 0 (an
    # empty timeline, for clients that only want state or ephemeral events); we do too.
    return min(value, MAX_LIMIT)


def _event_filter_fields(obj: Mapping[str, Any], path: str) -> dict[str, Any]:
    return {
        "limit": _limit(obj, path),
        "types": _string_list(obj, "types", path),
        "not_types": _string_list(obj, "not_types", path),
        "senders": _string_list(obj, "senders", path, "@"),
        "not_senders": _string_list(obj, "not_senders", path, "@"),
    }


def _without_absent(fields: dict[str, Any]) -> dict[str, Any]:
    # Absent keys fall back to the dataclass defaults (e.g. not_types=() rather than None).
    return {k: v for k, v in fields.items() if v is not None}


def _parse_event_filter(value: Any, path: str) -> EventFilter:
    if value is None:
        return EventFilter()
    return EventFilter(**_without_absent(_event_filter_fields(_object(value, path), path)))


def parse_room_event_filter(value: Any, path: str = "filter") -> RoomEventFilter:
    """Validate a RoomEventFilter (e.g. the /messages `filter`); `path` prefixes error messages."""
    if value is None:
        return RoomEventFilter()
    obj = _object(value, path)
    fields = _event_filter_fields(obj, path)
    fields["rooms"] = _string_list(obj, "rooms", path, "!")
    fields["not_rooms"] = _string_list(obj, "not_rooms", path, "!")
    fields["contains_url"] = _bool(obj, "contains_url", path)
    for flag in ("lazy_load_members", "include_redundant_members", "unread_thread_notifications"):
        fields[flag] = _bool(obj, flag, path)
    return RoomEventFilter(**_without_absent(fields))


def _parse_room_filter(value: Any) -> RoomFilter:
    if value is None:
        return RoomFilter()
    obj = _object(value, "room")
    fields: dict[str, Any] = {
        "rooms": _string_list(obj, "rooms", "room", "!"),
        "not_rooms": _string_list(obj, "not_rooms", "room", "!"),
        "include_leave": _bool(obj, "include_leave", "room"),
    }
    for section in ("ephemeral", "state", "timeline", "account_data"):
        fields[section] = parse_room_event_filter(_get(obj, section), f"room.{section}")
    return RoomFilter(**_without_absent(fields))


def parse_filter(value: Any) -> Filter:
    """Validate a whole Filter, e.g. the body of POST /user/{userId}/filter.

    Raises MatrixError(M_BAD_JSON) naming the first invalid field.
    """
    obj = _object(value, "filter")
    fields: dict[str, Any] = {"event_fields": _string_list(obj, "event_fields", "")}
    event_format = _get(obj, "event_format")
    if event_format is not None and event_format not in ("client", "federation"):
        got = json.dumps(event_format)
        raise _bad("event_format", f'must be "client" or "federation", got {got}')
    fields["event_format"] = event_format
    fields["presence"] = _parse_event_filter(_get(obj, "presence"), "presence")
    fields["account_data"] = _parse_event_filter(_get(obj, "account_data"), "account_data")
    fields["room"] = _parse_room_filter(_get(obj, "room"))
    return Filter(**_without_absent(fields), source=_canonical(obj))


def _canonical(obj: Mapping[str, Any]) -> str:
    # Matrix canonical JSON (sorted keys, compact, UTF-8 kept); the stored form of a filter.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- The `filter` query parameter --------------------------------------------------------------


def _load_inline(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError never happens on str
        raise MatrixError(Errcode.NOT_JSON, "The filter parameter is not valid JSON") from None


def inline_filter_or_id(value: str | None) -> Filter | str:
    """Resolve what it can of the /sync `filter` parameter without storage.

    Returns a Filter for no parameter or inline JSON (the spec: JSON when the first character is
    `{`), or the filter id (a str) for the caller to look up and pass to filter_from_stored.
    This split lets an async service do the lookup between the two calls.
    """
    # "" is neither an id nor JSON; some clients send `filter=` meaning "none". Treat it so.
    if not value:
        return Filter()
    if value.startswith("{"):
        return parse_filter(_load_inline(value))
    return value


def filter_from_stored(filter_id: str, stored: Mapping[str, Any] | None) -> Filter:
    """The Filter for a stored filter id; `stored` is the JSON loaded for it, None if unknown."""
    if stored is None:
        # Synapse answers /sync with an unknown filter id this way; the spec does not say.
        raise MatrixError(Errcode.INVALID_PARAM, f"No such filter: {filter_id}")
    return parse_filter(stored)


def parse_filter_param(
    value: str | None, load_by_id: Callable[[str], Mapping[str, Any] | None]
) -> Filter:
    """The Filter for the /sync `filter` query parameter (a filter id or inline JSON).

    `load_by_id` returns the stored filter JSON of the requesting user, or None if unknown.
    """
    resolved = inline_filter_or_id(value)
    if isinstance(resolved, Filter):
        return resolved
    return filter_from_stored(resolved, load_by_id(resolved))


def parse_room_event_filter_param(value: str | None) -> RoomEventFilter:
    """The RoomEventFilter for the /messages and /context `filter` query parameter (JSON only)."""
    if not value:
        return RoomEventFilter()
    return parse_room_event_filter(_load_inline(value), "filter")


# --- Serialising a filter built in code --------------------------------------------------------


def _dataclass_json(obj: Any) -> dict[str, Any]:
    """Fields that differ from their defaults, as JSON (defaults are what absence means)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name == "source":
            continue
        value = getattr(obj, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if value == default:
            continue
        if dataclasses.is_dataclass(value):
            out[f.name] = _dataclass_json(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out
