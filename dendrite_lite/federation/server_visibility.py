"""Which events another server may see in full (history visibility for servers).

The spec states the rules for users (client-server-api §Room History Visibility); a server
sees what its users could see, so for an event with history visibility (at the event):
- world_readable or shared: the full event (the server is in the room, or was at that event:
  callers check that first);
- invited: the full event if one of its users was invited or joined at the event;
- joined: the full event if one of its users was joined at the event;
- otherwise the REDACTED event, not nothing: the server still needs the DAG (prev events,
  auth events, hashes) to stay consistent, only the content is withheld.

Outliers have no state at them here, so they count as shared (as Synapse does). Redacted events
are always served redacted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from dendrite_lite.events.pdu import pdu_for_federation
from dendrite_lite.events.redaction import redact
from dendrite_lite.rooms.visibility import DEFAULT_VISIBILITY, HISTORY_VISIBILITY
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.sync.client_events import load_redactions

__all__ = ["pdus_for_server", "server_memberships", "MEMBER"]

MEMBER = "m.room.member"
_OPEN = ("world_readable", "shared")


def server_memberships(
    state: Mapping[tuple[str, str], str], events: Mapping[str, StoredEvent], server_name: str
) -> set[str]:
    """The memberships the users of `server_name` have in a state map."""
    suffix = ":" + server_name
    out: set[str] = set()
    for (etype, state_key), event_id in state.items():
        if etype == MEMBER and state_key.endswith(suffix):
            stored = events.get(event_id)
            if stored is not None and stored.event.membership:
                out.add(stored.event.membership)
    return out


def _allowed(visibility: str, memberships: set[str]) -> bool:
    if visibility in _OPEN:
        return True
    if "join" in memberships:
        return True
    return visibility == "invited" and "invite" in memberships


async def pdus_for_server(
    conn: aiosqlite.Connection, server_name: str, events: Sequence[StoredEvent], now_ms: int
) -> list[dict[str, Any]]:
    """The federation PDUs of `events` (same order) as `server_name` may see them."""
    with_state = [s for s in events if s.state_group is not None and not s.outlier]
    groups = {s.state_group for s in with_state if s.state_group is not None}
    vis_state = await history_table.select_state_for_groups(conn, groups, keys=[(HISTORY_VISIBILITY, "")])
    vis_events = await events_table.select_events(
        conn, {eid for st in vis_state.values() for eid in st.values()}
    )

    def visibility(group: int) -> str:
        eid = vis_state.get(group, {}).get((HISTORY_VISIBILITY, ""))
        stored = vis_events.get(eid) if eid is not None else None
        value = stored.event.content.get("history_visibility") if stored is not None else None
        return value if isinstance(value, str) else DEFAULT_VISIBILITY

    closed = {s.state_group for s in with_state if s.state_group is not None and visibility(s.state_group) not in _OPEN}
    members_at: dict[int, set[str]] = {}
    if closed:
        member_state = await history_table.select_state_for_groups(conn, closed, types=[MEMBER])
        suffix = ":" + server_name
        ids = {
            eid for st in member_state.values() for (_, sk), eid in st.items() if sk.endswith(suffix)
        }
        member_events = await events_table.select_events(conn, ids)
        members_at = {g: server_memberships(st, member_events, server_name) for g, st in member_state.items()}
    # The redactions that apply (a spoofed one from a server without the level does not).
    redacted = await load_redactions(conn, events)
    # A user who deactivated with erase=true: their events go out redacted (Synapse's rule).
    erased = await accounts_table.select_erased_users(conn, {s.event.sender for s in events})

    out: list[dict[str, Any]] = []
    for s in events:
        pdu = pdu_for_federation(s.event, now_ms=now_ms)
        hidden = s.state_group in closed and not _allowed(
            visibility(s.state_group), members_at.get(s.state_group, set())  # type: ignore[arg-type]
        )
        if hidden or s.event.event_id in redacted or s.event.sender in erased:
            pdu = redact(pdu, s.event.room_version)
        out.append(pdu)
    return out
