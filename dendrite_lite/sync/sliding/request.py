"""A sliding sync request (MSC4186, the unstable API matrix-rust-sdk speaks) parsed and checked
into dataclasses. Every error names the field: 400 M_BAD_JSON for a wrong JSON type, 400
M_INVALID_PARAM for a value out of range."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.request_body import is_json_type, optional_field
from dendrite_lite.sync.sliding.required_state import RequiredState

__all__ = [
    "MAX_TIMELINE_LIMIT",
    "ListConfig",
    "ListFilters",
    "RoomConfig",
    "SlidingSyncRequest",
    "parse_request",
]

MAX_LISTS = 100
MAX_LIST_KEY = 64
MAX_CONN_ID = 128
# The MSC lets the server cap timeline_limit; Synapse caps at 1000 too.
MAX_TIMELINE_LIMIT = 1000
_PRESENCE = ("offline", "online", "unavailable")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    timeline_limit: int
    required_state: RequiredState

    def combine(self, other: RoomConfig) -> RoomConfig:
        """The superset of two configs matching the same room (MSC4186 §Combining room configs)."""
        return RoomConfig(
            max(self.timeline_limit, other.timeline_limit),
            self.required_state.union(other.required_state),
        )


@dataclass(frozen=True, slots=True)
class ListFilters:
    """Each set field narrows the list; None means "not filtered on this"."""

    is_dm: bool | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    spaces: tuple[str, ...] | None = None
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] | None = None
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ListConfig:
    config: RoomConfig
    ranges: tuple[tuple[int, int], ...] | None  # None: the whole list
    filters: ListFilters = field(default_factory=ListFilters)


@dataclass(frozen=True, slots=True)
class SlidingSyncRequest:
    user_id: str
    device_id: str
    conn_id: str = ""
    pos: str | None = None
    timeout_ms: int = 0
    set_presence: str | None = None
    lists: Mapping[str, ListConfig] = field(default_factory=dict)
    room_subscriptions: Mapping[str, RoomConfig] = field(default_factory=dict)
    # Kept as sent: each extension parses its own part.
    extensions: Mapping[str, Any] = field(default_factory=dict)
    txn_id: str | None = None  # echoed in the response (matrix-rust-sdk sends one)


def _bad(name: str, what: str) -> MatrixError:
    return MatrixError(Errcode.BAD_JSON, f"{name} must be {what}")


def _invalid(name: str, what: str) -> MatrixError:
    return MatrixError(Errcode.INVALID_PARAM, f"{name} {what}")


def parse_request(
    user_id: str, device_id: str, body: Mapping[str, Any], query: Mapping[str, str]
) -> SlidingSyncRequest:
    """`pos`, `timeout` and `set_presence` come in the query string (as matrix-rust-sdk sends
    them) or, as in the latest MSC text, in the body; the query string wins."""
    conn_id = optional_field(body, "conn_id", "string") or ""
    if len(conn_id) > MAX_CONN_ID:
        raise _invalid("conn_id", f"is longer than {MAX_CONN_ID} characters")
    pos = query.get("pos")
    if pos is None:
        pos = optional_field(body, "pos", "string")
    set_presence = query.get("set_presence")
    if set_presence is None:
        set_presence = optional_field(body, "set_presence", "string")
    if set_presence is not None and set_presence not in _PRESENCE:
        raise _invalid("set_presence", f"must be one of {', '.join(_PRESENCE)}")
    lists = optional_field(body, "lists", "object") or {}
    if len(lists) > MAX_LISTS:
        raise _invalid("lists", f"has more than {MAX_LISTS} lists")
    subscriptions = optional_field(body, "room_subscriptions", "object") or {}
    for room_id in subscriptions:
        if not room_id.startswith("!"):
            raise _invalid(f"room_subscriptions.{room_id}", "is not a room ID")
    return SlidingSyncRequest(
        user_id=user_id,
        device_id=device_id,
        conn_id=conn_id,
        pos=pos,
        timeout_ms=_timeout(query, body),
        set_presence=set_presence,
        lists={
            key: _list_config(f"lists.{key}", value, user_id)
            for key, value in lists.items()
        },
        room_subscriptions={
            room_id: _room_config(f"room_subscriptions.{room_id}", value, user_id)
            for room_id, value in subscriptions.items()
        },
        extensions=optional_field(body, "extensions", "object") or {},
        txn_id=optional_field(body, "txn_id", "string"),
    )


def _timeout(query: Mapping[str, str], body: Mapping[str, Any]) -> int:
    raw: Any = query.get("timeout")
    if raw is None:
        raw = optional_field(body, "timeout", "integer")
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise _invalid("timeout", "must be an integer (milliseconds)") from None
    if value < 0:
        raise _invalid("timeout", "must not be negative")
    return value


def _list_config(name: str, value: Any, user_id: str) -> ListConfig:
    if len(name) - len("lists.") > MAX_LIST_KEY:
        raise _invalid(name, f"has a key longer than {MAX_LIST_KEY} characters")
    if not isinstance(value, dict):
        raise _bad(name, "an object")
    config = _room_config(name, value, user_id)
    ranges = _ranges(name, value)
    if optional_field(
        value, "slow_get_all_rooms", "boolean", name=f"{name}.slow_get_all_rooms"
    ):
        ranges = None
    filters = optional_field(value, "filters", "object", name=f"{name}.filters") or {}
    return ListConfig(config, ranges, _filters(f"{name}.filters", filters))


def _ranges(name: str, value: Mapping[str, Any]) -> tuple[tuple[int, int], ...] | None:
    raw = optional_field(value, "ranges", "array", name=f"{name}.ranges")
    if raw is None:
        # The MSC's latest text has a single `range`.
        single = optional_field(value, "range", "array", name=f"{name}.range")
        if single is None:
            return None
        raw = [single]
    out: list[tuple[int, int]] = []
    for i, pair in enumerate(raw):
        where = f"{name}.ranges[{i}]"
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(is_json_type(n, "integer") for n in pair)
        ):
            raise _bad(where, "a pair of integers")
        start, end = pair
        if start < 0 or end < start:
            raise _invalid(where, "must be [start, end] with 0 <= start <= end")
        out.append((start, end))
    return tuple(out)


def _room_config(name: str, value: Any, user_id: str) -> RoomConfig:
    if not isinstance(value, dict):
        raise _bad(name, "an object")
    limit = value.get("timeline_limit")
    if not is_json_type(limit, "integer"):
        raise _bad(f"{name}.timeline_limit", "an integer")
    if limit < 0:
        raise _invalid(f"{name}.timeline_limit", "must not be negative")
    pairs = value.get("required_state")
    if not isinstance(pairs, list):
        raise _bad(f"{name}.required_state", "a list of [type, state_key] pairs")
    for i, pair in enumerate(pairs):
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(s, str) for s in pair)
        ):
            raise _bad(
                f"{name}.required_state[{i}]", "a [type, state_key] pair of strings"
            )
    return RoomConfig(
        min(limit, MAX_TIMELINE_LIMIT),
        RequiredState.parse(((t, k) for t, k in pairs), user_id),
    )


def _filters(name: str, value: Mapping[str, Any]) -> ListFilters:
    def flag(key: str) -> bool | None:
        return optional_field(value, key, "boolean", name=f"{name}.{key}")  # type: ignore[no-any-return]

    def strings(key: str, *, nullable: bool = False) -> tuple[Any, ...] | None:
        raw = optional_field(value, key, "array", name=f"{name}.{key}")
        if raw is None:
            return None
        for item in raw:
            if not isinstance(item, str) and not (nullable and item is None):
                what = "a list of strings or nulls" if nullable else "a list of strings"
                raise _bad(f"{name}.{key}", what)
        return tuple(raw)

    return ListFilters(
        is_dm=flag("is_dm"),
        is_encrypted=flag("is_encrypted"),
        is_invite=flag("is_invite") if "is_invite" in value else flag("is_invited"),
        spaces=strings("spaces"),
        room_types=strings("room_types", nullable=True),
        not_room_types=strings("not_room_types", nullable=True),
        tags=strings("tags"),
        not_tags=strings("not_tags"),
    )
