"""Room versions 1-12 as records of feature flags.

Code branches on these flags, never on version strings (see ../shared/STYLE.md §4), so a future
version is one new record here. The flags follow content/rooms/v1.md ... v12.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "EventFormat",
    "StateResAlgorithm",
    "RoomVersion",
    "KNOWN_ROOM_VERSIONS",
    "DEFAULT_ROOM_VERSION",
    "get_room_version",
    "UnsupportedRoomVersion",
]


class EventFormat(IntEnum):
    V1 = 1  # event_id inside the event; prev/auth events as [event_id, {hashes}] pairs (v1, v2)
    V2 = 2  # event id = "$" + standard unpadded base64 of the reference hash (v3)
    V3 = 3  # event id = "$" + URL-safe unpadded base64 of the reference hash (v4-v12)


class StateResAlgorithm(IntEnum):
    V1 = 1
    V2 = 2
    V2_1 = 3  # v12: iterative auth checks start from empty state + conflicted state subgraph


@dataclass(frozen=True, slots=True)
class RoomVersion:
    identifier: str
    event_format: EventFormat
    state_res: StateResAlgorithm
    # v5+: a signing key must be valid (valid_until_ts) at the event's origin_server_ts
    enforce_key_validity: bool
    # v1-v5: m.room.aliases has its own auth rule and is kept by redaction
    special_case_aliases_auth: bool
    # v6+: canonical JSON must be strict (integers within +-(2**53)-1, no floats)
    strict_canonicaljson: bool
    # v6+: power_levels.notifications.room is kept by redaction and checked in auth
    limit_notifications_power_levels: bool
    # v7+: knock membership and join rule
    knock_join_rule: bool
    # v8+: restricted join rule, join_authorised_via_users_server
    restricted_join_rule: bool
    # v9+: redaction keeps content.join_authorised_via_users_server on member events
    restricted_join_rule_fix: bool
    # v10+: knock_restricted join rule
    knock_restricted_join_rule: bool
    # v10+: power level values must be integers (no strings)
    enforce_int_power_levels: bool
    # v11+: m.room.create has no `creator`; the sender is the creator
    implicit_room_creator: bool
    # v11+: the redaction algorithm of v11 (create content kept, redacts moved into content, ...)
    updated_redaction_rules: bool
    # v12: room id = "!" + reference hash of the create event; create event not in auth_events
    room_id_is_create_event_hash: bool
    # v12: creators (sender + additional_creators) have infinite power level
    privileged_creators: bool

    @property
    def event_id_in_event(self) -> bool:
        return self.event_format is EventFormat.V1


def _v(
    identifier: str,
    *,
    fmt: EventFormat,
    sr: StateResAlgorithm,
    n: int,
) -> RoomVersion:
    """Build version `identifier` whose behaviour is that of spec room version number `n`."""
    return RoomVersion(
        identifier=identifier,
        event_format=fmt,
        state_res=sr,
        enforce_key_validity=n >= 5,
        special_case_aliases_auth=n <= 5,
        strict_canonicaljson=n >= 6,
        limit_notifications_power_levels=n >= 6,
        knock_join_rule=n >= 7,
        restricted_join_rule=n >= 8,
        restricted_join_rule_fix=n >= 9,
        knock_restricted_join_rule=n >= 10,
        enforce_int_power_levels=n >= 10,
        implicit_room_creator=n >= 11,
        updated_redaction_rules=n >= 11,
        room_id_is_create_event_hash=n >= 12,
        privileged_creators=n >= 12,
    )


KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    "1": _v("1", fmt=EventFormat.V1, sr=StateResAlgorithm.V1, n=1),
    "2": _v("2", fmt=EventFormat.V1, sr=StateResAlgorithm.V2, n=2),
    "3": _v("3", fmt=EventFormat.V2, sr=StateResAlgorithm.V2, n=3),
    **{
        str(n): _v(str(n), fmt=EventFormat.V3, sr=StateResAlgorithm.V2, n=n)
        for n in range(4, 12)
    },
    "12": _v("12", fmt=EventFormat.V3, sr=StateResAlgorithm.V2_1, n=12),
}

# content/rooms/_index.md: "Servers SHOULD use room version 12 as the default"
DEFAULT_ROOM_VERSION = KNOWN_ROOM_VERSIONS["12"]


class UnsupportedRoomVersion(Exception):
    def __init__(self, identifier: str) -> None:
        super().__init__(f"unsupported room version {identifier!r}")
        self.identifier = identifier


def get_room_version(identifier: str) -> RoomVersion:
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except (KeyError, TypeError):
        raise UnsupportedRoomVersion(str(identifier)) from None
