"""Parsing of push condition parameters, shared by rule validation and the evaluator.

- Dot-separated property paths (appendices §Dot-separated property paths): `\\.` is a literal dot,
  `\\\\` a literal backslash, any other backslash is kept as it is.
- `room_member_count.is`: a decimal integer with an optional `==`, `<`, `>`, `<=` or `>=` prefix.
- Values of `event_property_is`/`_contains`: non-compound canonical JSON values.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = [
    "KNOWN_CONDITION_KINDS",
    "split_key",
    "parse_member_count",
    "is_push_scalar",
    "same_scalar",
    "condition_problem",
]

KNOWN_CONDITION_KINDS = frozenset(
    {
        "event_match",
        "event_property_is",
        "event_property_contains",
        "contains_display_name",
        "room_member_count",
        "sender_notification_permission",
    }
)

_MAX_SAFE_INT = 2**53 - 1
_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]+)")


@lru_cache(maxsize=1024)
def split_key(key: str) -> tuple[str, ...]:
    """`content.m\\.relates_to.rel_type` -> ("content", "m.relates_to", "rel_type")."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def parse_member_count(spec: Any) -> tuple[str, int] | None:
    """("<=", 10) for "<=10"; ("==", 2) for "2"; None when malformed."""
    if not isinstance(spec, str):
        return None
    m = _MEMBER_COUNT.fullmatch(spec)
    if m is None:
        return None
    return (m.group(1) or "=="), int(m.group(2))


def is_push_scalar(value: Any) -> bool:
    """A string, a bool, null, or an integer in canonical JSON's range."""
    if value is None or isinstance(value, (str, bool)):
        return True
    return type(value) is int and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT


def same_scalar(a: Any, b: Any) -> bool:
    """Exact equality without Python's casts: True != 1, 1 != 1.0, "1" != 1."""
    return type(a) is type(b) and a == b and is_push_scalar(a)


def condition_problem(condition: Any) -> str | None:
    """Why a condition from a client is malformed, or None when it is acceptable.

    Conditions of unknown kinds are accepted (the spec says they simply never match); known kinds
    must carry their parameters with the right types, so a client hears about a typo now rather
    than wondering later why its rule never fires.
    """
    if not isinstance(condition, dict):
        return "each condition must be an object"
    kind = condition.get("kind")
    if not isinstance(kind, str):
        return "each condition needs a string 'kind'"
    if kind in ("event_match", "event_property_is", "event_property_contains",
                "sender_notification_permission") and not isinstance(condition.get("key"), str):
        return f"{kind} needs a string 'key'"
    if kind == "event_match" and not isinstance(condition.get("pattern"), str):
        return "event_match needs a string 'pattern'"
    if kind in ("event_property_is", "event_property_contains"):
        if "value" not in condition or not is_push_scalar(condition["value"]):
            return f"{kind} needs a 'value' that is a string, integer, boolean or null"
    if kind == "room_member_count" and parse_member_count(condition.get("is")) is None:
        return "room_member_count needs 'is' like '2', '<10' or '>=5'"
    return None
