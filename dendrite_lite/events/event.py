"""The Event type: a parsed PDU that keeps its original JSON.

Cheap to create (no copying, no validation: see events/format.py for that) and cheap to read;
accessors hide the differences between event formats (v1/v2 [id, hashes] pairs, v11 `redacts` in
content, v12 room ids derived from the create event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dendrite_lite.events.room_versions import RoomVersion

__all__ = ["Event", "StateKey"]

StateKey = tuple[str, str]  # (event type, state_key)


def _ids(refs: Any) -> tuple[str, ...]:
    """prev_events/auth_events as event ids, whatever the event format."""
    if not refs:
        return ()
    return tuple(r[0] if isinstance(r, (list, tuple)) else r for r in refs)


class Event:
    """One PDU in one room version.

    `pdu` is the event as received or built (for v3+ without `event_id`; v1/v2 carry it inside).
    It is never mutated: redaction and serialisation produce new dicts. `rejected_reason` is set by
    the pipeline when auth fails, so a rejected event can still be stored and referenced.
    """

    __slots__ = ("event_id", "room_version", "pdu", "rejected_reason", "_room_id")

    def __init__(
        self,
        pdu: Mapping[str, Any],
        room_version: RoomVersion,
        event_id: str,
        *,
        room_id: str | None = None,
        rejected_reason: str | None = None,
    ) -> None:
        self.event_id = event_id
        self.room_version = room_version
        self.pdu = pdu
        self.rejected_reason = rejected_reason
        # v12 create events carry no room_id; events/ids.py derives it and passes it here.
        self._room_id = room_id if room_id is not None else pdu.get("room_id", "")

    # --- top-level fields -------------------------------------------------------------------
    @property
    def type(self) -> str:
        return self.pdu["type"]  # type: ignore[no-any-return]

    @property
    def sender(self) -> str:
        return self.pdu["sender"]  # type: ignore[no-any-return]

    @property
    def room_id(self) -> str:
        return self._room_id  # type: ignore[no-any-return]

    @property
    def content(self) -> Mapping[str, Any]:
        return self.pdu.get("content") or {}  # type: ignore[no-any-return]

    @property
    def state_key(self) -> str | None:
        return self.pdu.get("state_key")  # type: ignore[no-any-return]

    def is_state(self) -> bool:
        return "state_key" in self.pdu

    @property
    def state_tuple(self) -> StateKey:
        """(type, state_key) of a state event. Only valid when is_state()."""
        return (self.pdu["type"], self.pdu["state_key"])

    @property
    def depth(self) -> int:
        return self.pdu.get("depth", 0)  # type: ignore[no-any-return]

    @property
    def origin_server_ts(self) -> int:
        return self.pdu.get("origin_server_ts", 0)  # type: ignore[no-any-return]

    @property
    def prev_event_ids(self) -> tuple[str, ...]:
        return _ids(self.pdu.get("prev_events"))

    @property
    def auth_event_ids(self) -> tuple[str, ...]:
        return _ids(self.pdu.get("auth_events"))

    @property
    def redacts(self) -> str | None:
        """The event a m.room.redaction redacts: in content from v11, top-level before."""
        if self.room_version.updated_redaction_rules:
            r = self.content.get("redacts")
            if r is None:
                r = self.pdu.get("redacts")  # tolerate older-format senders when reading
            return r if isinstance(r, str) else None
        r = self.pdu.get("redacts")
        return r if isinstance(r, str) else None

    @property
    def membership(self) -> str | None:
        m = self.content.get("membership")
        return m if isinstance(m, str) else None

    @property
    def unsigned(self) -> Mapping[str, Any]:
        return self.pdu.get("unsigned") or {}  # type: ignore[no-any-return]

    @property
    def origin(self) -> str:
        """The server that sent this event (the sender's domain)."""
        return self.sender.split(":", 1)[1] if ":" in self.sender else ""

    def __repr__(self) -> str:
        sk = f" state_key={self.state_key!r}" if self.is_state() else ""
        return f"<Event {self.event_id} {self.type}{sk} from {self.sender}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

