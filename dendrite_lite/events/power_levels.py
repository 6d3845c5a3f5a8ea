"""Power levels: reading m.room.power_levels the way the auth rules and state resolution need.

Pure functions over Event objects, no copies: the auth checker calls these for every event of a
large room, so they read the original content dicts directly.

Value formats depend on the room version (content/rooms/fragments/v1-stringy-power-levels.md,
v1-floaty-power-levels.md, v10.md §Authorisation rules 9.1-9.3):
- v1-v5: integers, strings holding an integer, and floats (truncated);
- v6-v9: integers and integer strings (floats cannot pass strict canonical JSON);
- v10+: integers only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from dendrite_lite.events.event import Event
from dendrite_lite.events.room_versions import RoomVersion

__all__ = [
    "POWER_LEVELS",
    "CREATE",
    "TOP_LEVEL_DEFAULTS",
    "parse_power_level",
    "is_valid_user_id",
    "room_creators",
    "user_power_level",
    "event_power_level",
    "named_power_level",
    "notification_power_level",
]

POWER_LEVELS = "m.room.power_levels"
CREATE = "m.room.create"

# Defaults of the top-level integer properties, from the m.room.power_levels schema. The same
# defaults apply whether the property is missing or there is no power levels event at all.
TOP_LEVEL_DEFAULTS: Mapping[str, int] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}

# v1-stringy-power-levels.md: optional whitespace, optional sign, base-10 digits (ASCII only:
# int() alone would also accept "1_000" and non-ASCII digits).
_STRINGY_INT = re.compile(r"\s*[+-]?[0-9]+\s*")


def parse_power_level(value: Any, room_version: RoomVersion) -> int | None:
    """A power level value as an int, or None when the room version does not allow that value."""
    if type(value) is int:  # the fast path; also excludes bool, which is an int subclass
        return value
    if room_version.enforce_int_power_levels:
        return None
    if isinstance(value, str):
        if _STRINGY_INT.fullmatch(value):
            return int(value)
        return None
    if isinstance(value, float) and not room_version.strict_canonicaljson:
        # v1-floaty-power-levels.md: truncate; infinities and NaN make the event invalid.
        if not math.isfinite(value):
            return None
        return int(value)
    return None


def is_valid_user_id(user_id: Any) -> bool:
    """The user ID check auth rules apply to `users` keys and v12 `additional_creators`.

    Deliberately the lenient historical grammar (appendices §Historical User IDs): any localpart
    without ':' or NUL, a non-empty server name, at most 255 bytes. Servers must accept such
    senders over federation, so power levels may name them too.
    """
    if not isinstance(user_id, str) or not user_id.startswith("@"):
        return False
    localpart, sep, server = user_id[1:].partition(":")
    if not sep or not server or "\x00" in user_id:
        return False
    return len(user_id.encode("utf-8")) <= 255


def room_creators(create: Event) -> tuple[str, ...]:
    """The room creators (v12 definition: sender plus valid `additional_creators`).

    For earlier versions the one creator: `content.creator` (v1-v10) or the sender (v11).
    """
    rv = create.room_version
    if not rv.implicit_room_creator:
        creator = create.content.get("creator")
        return (creator,) if isinstance(creator, str) else ()
    if not rv.privileged_creators:
        return (create.sender,)
    extra = create.content.get("additional_creators")
    if isinstance(extra, list):
        return (create.sender, *(u for u in extra if isinstance(u, str)))
    return (create.sender,)


def _is_creator(user_id: str, create: Event) -> bool:
    rv = create.room_version
    if not rv.implicit_room_creator:
        return create.content.get("creator") == user_id
    if create.sender == user_id:
        return True
    if not rv.privileged_creators:
        return False
    extra = create.content.get("additional_creators")
    return isinstance(extra, list) and user_id in extra


def _level(content: Mapping[str, Any], key: str, rv: RoomVersion) -> int:
    """A top-level property of a power levels content, or its default when absent/invalid."""
    value = content.get(key)
    if value is None:
        return TOP_LEVEL_DEFAULTS[key]
    parsed = parse_power_level(value, rv)
    return TOP_LEVEL_DEFAULTS[key] if parsed is None else parsed


def _map_level(content: Mapping[str, Any], name: str, key: str, rv: RoomVersion) -> int | None:
    """content[name][key] as a level, None when absent or invalid."""
    mapping = content.get(name)
    if not isinstance(mapping, dict):
        return None
    value = mapping.get(key)
    return None if value is None else parse_power_level(value, rv)


def user_power_level(user_id: str, power_levels: Event | None, create: Event) -> int | float:
    """The power level of `user_id` given the room's power levels and create events.

    v12 creators have infinite power (math.inf), whatever the power levels say. Without a power
    levels event the creator has 100 (before v12) and everyone else 0.
    """
    rv = create.room_version
    if rv.privileged_creators:
        if _is_creator(user_id, create):
            return math.inf
    if power_levels is None:
        if not rv.privileged_creators and _is_creator(user_id, create):
            return 100
        return 0
    level = _map_level(power_levels.content, "users", user_id, power_levels.room_version)
    if level is not None:
        return level
    return _level(power_levels.content, "users_default", power_levels.room_version)


def event_power_level(event_type: str, state_key: str | None, power_levels: Event | None) -> int:
    """The *required power level* to send an event of this type (state if state_key is set)."""
    if power_levels is None:
        return TOP_LEVEL_DEFAULTS["state_default" if state_key is not None else "events_default"]
    content = power_levels.content
    rv = power_levels.room_version
    level = _map_level(content, "events", event_type, rv)
    if level is not None:
        return level
    return _level(content, "state_default" if state_key is not None else "events_default", rv)


def named_power_level(name: str, power_levels: Event | None) -> int:
    """`invite`, `kick`, `ban`, `redact`, `users_default`, `state_default` or `events_default`."""
    if power_levels is None:
        return TOP_LEVEL_DEFAULTS[name]
    return _level(power_levels.content, name, power_levels.room_version)


def notification_power_level(key: str, power_levels: Event | None) -> int:
    """The level for a notification key, e.g. "room" for @room (default 50)."""
    if power_levels is not None:
        level = _map_level(power_levels.content, "notifications", key, power_levels.room_version)
        if level is not None:
            return level
    return 50
