"""Which state a sliding sync room config asks for (MSC4186 `required_state`).

A request lists [type, state_key] pairs. `*` in either place matches anything, `$ME` as the
state key is the requesting user (resolved when parsed), and ["m.room.member", "$LAZY"] turns on
lazy-loaded members: the member events of whoever the timeline shows, instead of every member.
With lazy members on, a wildcard type does not reach m.room.member: ["*", "*"] plus $LAZY is
"all the state, members lazily" (Synapse's reading of the unstable API).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["LAZY", "ME", "MEMBER", "WILDCARD", "RequiredState"]

WILDCARD = "*"
LAZY = "$LAZY"
ME = "$ME"
MEMBER = "m.room.member"


@dataclass(frozen=True, slots=True)
class RequiredState:
    keys: frozenset[tuple[str, str]] = frozenset()
    lazy_members: bool = False

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]], user_id: str) -> RequiredState:
        keys: set[tuple[str, str]] = set()
        lazy = False
        for event_type, state_key in pairs:
            if event_type == MEMBER and state_key == LAZY:
                lazy = True
                continue
            keys.add((event_type, user_id if state_key == ME else state_key))
        return cls(frozenset(keys), lazy)

    def matches(self, event_type: str, state_key: str) -> bool:
        for want_type, want_key in self.keys:
            if want_type == WILDCARD:
                if self.lazy_members and event_type == MEMBER:
                    continue
            elif want_type != event_type:
                continue
            if want_key in (WILDCARD, state_key):
                return True
        return False

    def union(self, other: RequiredState) -> RequiredState:
        """The superset of two configs (a room matched by several lists and subscriptions)."""
        return RequiredState(
            self.keys | other.keys, self.lazy_members or other.lazy_members
        )

    def all_members(self) -> bool:
        """Whether every member event is wanted (not just some)."""
        return (MEMBER, WILDCARD) in self.keys or (
            not self.lazy_members and (WILDCARD, WILDCARD) in self.keys
        )

    def named_members(self) -> set[str]:
        """The users whose member events are asked for by name."""
        return {k for t, k in self.keys if t in (MEMBER, WILDCARD) and k != WILDCARD}

    def to_json(self) -> dict[str, Any]:
        return {"keys": sorted(self.keys), "lazy": self.lazy_members}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RequiredState:
        return cls(
            frozenset((str(t), str(k)) for t, k in value["keys"]), bool(value["lazy"])
        )
