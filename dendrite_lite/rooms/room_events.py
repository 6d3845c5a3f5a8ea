"""Sending and reading room events: /send, /state, /event, /redact (room_send.yaml,
room_state.yaml, rooms.yaml, redaction.yaml), and the one function that turns stored events
into what clients see (`client_events`: redacted events served redacted with
unsigned.redacted_because, the sender's transaction_id echoed to the sending device).

History visibility is enforced through rooms.visibility for single events; state reads use the
"joined, or the state when you left" rule of rooms.access.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.event import Event
from dendrite_lite.events.pdu import client_format
from dendrite_lite.events.redaction import redact
from dendrite_lite.ratelimit import RateLimiter
from dendrite_lite.rooms.access import load_current, load_readable
from dendrite_lite.rooms.aggregations import Viewer, bundle_aggregations
from dendrite_lite.rooms.aliases import CANONICAL_ALIAS, check_canonical_alias
from dendrite_lite.rooms.pipeline import EventSpec, RoomPipeline
from dendrite_lite.rooms.relations import check_thread_start
from dendrite_lite.rooms.visibility import can_see_event
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage.events import StoredEvent
from dendrite_lite.sync.client_events import load_redactions

__all__ = ["RoomEventsService", "client_events", "REDACTION"]

REDACTION = "m.room.redaction"


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _applied_redactions(
    storage: Storage, stored: Sequence[StoredEvent]
) -> dict[str, StoredEvent]:
    """redacted event id -> the redaction event that applies to it (sync.client_events'
    rule: the first valid one)."""
    if not stored:
        return {}
    return await storage.db.read(lambda conn: load_redactions(conn, stored))


async def client_events(
    storage: Storage,
    stored: Sequence[StoredEvent],
    *,
    device: tuple[str, str] | None = None,
    now_ms: int | None = None,
) -> list[dict[str, Any]]:
    """Stored events in the client format, for the viewer on `device` = (user_id, device_id).

    Redacted events lose what redaction removes and carry the redaction event in
    unsigned.redacted_because; unsigned.age is relative to now; unsigned.transaction_id is
    set only for the device that sent the event (client-server-api §Transaction identifiers).
    """
    now = _now_ms() if now_ms is None else now_ms
    redactions = await _applied_redactions(storage, stored)
    out = []
    for s in stored:
        event = s.event
        unsigned: dict[str, Any] = {"age": max(0, now - event.origin_server_ts)}
        if device is not None and s.txn_id is not None and (s.txn_user_id, s.txn_device_id) == device:
            unsigned["transaction_id"] = s.txn_id
        red = redactions.get(event.event_id)
        if red is not None:
            pruned = redact(event.pdu, event.room_version)
            event = Event(pruned, event.room_version, event.event_id, room_id=event.room_id)
            unsigned["redacted_because"] = client_format(
                red.event, unsigned={"age": max(0, now - red.event.origin_server_ts)}
            )
            unsigned["redacted_by"] = red.event.event_id  # Synapse's too; SyTest reads it
        out.append(client_format(event, unsigned=unsigned))
    return out


def _require_object(content: Any) -> Mapping[str, Any]:
    if not isinstance(content, Mapping):
        raise MatrixError(Errcode.BAD_JSON, "Event content must be a JSON object")
    return content


@dataclass(frozen=True, slots=True)
class RoomEventsService:
    storage: Storage
    pipeline: RoomPipeline
    server_name: str
    send_limiter: RateLimiter

    async def _retransmission(
        self, user_id: str, device_id: str, txn_id: str, room_id: str, event_type: str
    ) -> str | None:
        """The event id of an earlier request with this txn id from this device, if any.

        NOTSPEC: the pipeline keys transactions by (user, device, txn id) across /send and
        /redact, so a txn id already used on another room or event type is refused (400
        M_INVALID_PARAM) rather than silently answering with an unrelated event.
        """
        earlier = await self.storage.db.read(
            lambda c: events_table.select_event_by_txn(c, user_id, device_id, txn_id)
        )
        if earlier is None:
            return None
        if earlier.event.room_id != room_id or earlier.event.type != event_type:
            raise MatrixError(
                Errcode.INVALID_PARAM,
                f"Transaction id {txn_id!r} was already used for a different request",
            )
        return earlier.event.event_id

    async def send(
        self,
        *,
        user_id: str,
        device_id: str,
        room_id: str,
        event_type: str,
        txn_id: str,
        content: Any,
        ts: int | None = None,
        rate_limited: bool = True,
    ) -> str:
        """PUT /rooms/{roomId}/send/{eventType}/{txnId}: idempotent per device. `ts` is an
        application service's timestamp for the event; `rate_limited` false for an AS whose
        registration says so."""
        content = _require_object(content)
        if event_type == REDACTION:
            redacts = content.get("redacts")
            if not isinstance(redacts, str):
                raise MatrixError(Errcode.BAD_JSON, "m.room.redaction needs content.redacts")
            return await self.redact(
                user_id=user_id, device_id=device_id, room_id=room_id, event_id=redacts,
                txn_id=txn_id, reason=content.get("reason"),
            )
        earlier = await self._retransmission(user_id, device_id, txn_id, room_id, event_type)
        if earlier is not None:
            return earlier
        await check_thread_start(self.storage, content)
        if rate_limited:
            self.send_limiter.check(user_id.lower())
        spec = EventSpec(
            user_id, event_type, content, txn=(user_id, device_id, txn_id), origin_server_ts=ts
        )
        return (await self.pipeline.send(room_id, spec)).event.event_id

    async def set_state(
        self, *, user_id: str, room_id: str, event_type: str, state_key: str, content: Any,
        ts: int | None = None, rate_limited: bool = True,
    ) -> str:
        """PUT /rooms/{roomId}/state/{eventType}/{stateKey}. Setting the same content again
        returns the existing event instead of adding a duplicate to the timeline."""
        content = _require_object(content)
        room = await load_current(self.storage, room_id, [(event_type, state_key)])
        if event_type == CANONICAL_ALIAS and state_key == "":
            await check_canonical_alias(
                self.storage, server_name=self.server_name, room_id=room_id, content=content
            )
        existing = room.get(event_type, state_key)
        if existing is not None and existing.sender == user_id and dict(existing.content) == dict(content):
            return existing.event_id
        if rate_limited:
            self.send_limiter.check(user_id.lower())
        spec = EventSpec(user_id, event_type, content, state_key, origin_server_ts=ts)
        return (await self.pipeline.send(room_id, spec)).event.event_id

    async def get_state(self, *, user_id: str, room_id: str) -> list[dict[str, Any]]:
        """GET /rooms/{roomId}/state."""
        room = await load_readable(self.storage, user_id, room_id, None)
        stored = [room.events[i] for _, i in sorted(room.state.items()) if i in room.events]
        return await client_events(self.storage, stored)

    async def get_state_event(
        self, *, user_id: str, room_id: str, event_type: str, state_key: str, as_event: bool
    ) -> dict[str, Any]:
        """GET /rooms/{roomId}/state/{eventType}/{stateKey} (?format=event for the event)."""
        room = await load_readable(self.storage, user_id, room_id, [(event_type, state_key)])
        event_id = room.state.get((event_type, state_key))
        stored = room.events.get(event_id) if event_id is not None else None
        if stored is None:
            raise MatrixError(Errcode.NOT_FOUND, f"Event not found: {event_type}/{state_key}")
        formatted = (await client_events(self.storage, [stored]))[0]
        return formatted if as_event else formatted["content"]

    async def _visible_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        await load_current(self.storage, room_id)  # 404 for an unknown room
        stored = await self.storage.db.read(lambda c: events_table.select_event(c, event_id))
        if (
            stored is None
            or stored.event.room_id != room_id
            or not await can_see_event(self.storage, user_id, stored)
        ):
            # Not visible and not there answer alike, so ids cannot be probed.
            raise MatrixError(Errcode.NOT_FOUND, "Event not found")
        return stored

    async def get_event(
        self, *, user_id: str, device_id: str | None, room_id: str, event_id: str
    ) -> dict[str, Any]:
        """GET /rooms/{roomId}/event/{eventId}: 404 unless the user may see it."""
        stored = await self._visible_event(user_id, room_id, event_id)
        device = (user_id, device_id) if device_id is not None else None
        formatted = (await client_events(self.storage, [stored], device=device))[0]
        viewer = Viewer(user_id, device_id, _now_ms())
        bundles = await self.storage.db.read(
            lambda c: bundle_aggregations(c, viewer, [stored])
        )
        if event_id in bundles:
            formatted["unsigned"]["m.relations"] = bundles[event_id]
        return formatted

    async def redact(
        self,
        *,
        user_id: str,
        device_id: str,
        room_id: str,
        event_id: str,
        txn_id: str,
        reason: Any = None,
    ) -> str:
        """PUT /rooms/{roomId}/redact/{eventId}/{txnId}: your own events, or anyone's with the
        room's redact level (the v3+ auth rules leave this check to the server)."""
        if reason is not None and not isinstance(reason, str):
            raise MatrixError(Errcode.BAD_JSON, "reason must be a string")
        earlier = await self._retransmission(user_id, device_id, txn_id, room_id, REDACTION)
        if earlier is not None:
            return earlier
        elsewhere = await self.storage.db.read(lambda c: events_table.select_event(c, event_id))
        if elsewhere is not None and elsewhere.event.room_id != room_id:
            # 400 as Synapse (SyTest "PUT /redact disallows redaction of event in different
            # room"); event ids are hashes, so this tells nothing to whoever does not hold one.
            raise MatrixError(Errcode.INVALID_PARAM, "Cannot redact an event from another room")
        target = await self._visible_event(user_id, room_id, event_id)
        room = await load_current(self.storage, room_id)
        if target.event.sender != user_id and room.power_level(user_id) < room.named_level("redact"):
            raise MatrixError(Errcode.FORBIDDEN, "You may not redact other users' events")
        self.send_limiter.check(user_id.lower())
        content: dict[str, Any] = {"reason": reason} if reason is not None else {}
        spec = EventSpec(
            user_id, REDACTION, content, redacts=event_id, txn=(user_id, device_id, txn_id)
        )
        return (await self.pipeline.send(room_id, spec)).event.event_id
