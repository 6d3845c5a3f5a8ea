"""GET /sync: the long-poll and the response outside `rooms` (client-server-api §Syncing).

Long-poll without polling the database: the request registers with the Notifier BEFORE it looks
for news, so a write committed between the look and the wait still wakes it; it then sleeps until
a write concerning this user commits (the pipeline, receipts, typing, account data and presence
services notify exactly the users concerned) or the timeout passes. A wake-up whose news turns out
to be filtered out moves the request's position forward and goes back to sleep.

The per-user services (account data, receipts, typing, presence, end-to-end encryption) are
optional: without one its section is empty (or absent) and its stream stays at 0.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import sync as sync_table
from dendrite_lite.sync.filter_store import FilterService
from dendrite_lite.sync.filters import Filter, apply_event_fields
from dendrite_lite.sync.lazy_members import SentMembers
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.room_sections import RoomsRequest, RoomsResult, build_rooms
from dendrite_lite.sync.tokens import SyncToken, parse_sync_token

if TYPE_CHECKING:
    from dendrite_lite.e2ee.sync_extensions import E2eeSync
    from dendrite_lite.rooms.receipts import ReceiptsService
    from dendrite_lite.rooms.typing import TypingService
    from dendrite_lite.users.account_data import AccountDataService
    from dendrite_lite.users.presence import PresenceService

__all__ = ["SyncService", "SyncRequest", "MAX_TIMEOUT_MS"]

# A proxy in front of us usually cuts requests at 60-180 s; clients ask for 30 s.
MAX_TIMEOUT_MS = 180_000


@dataclass(frozen=True, slots=True)
class SyncRequest:
    user_id: str
    device_id: str | None
    since: str | None = None
    filter: str | None = None
    full_state: bool = False
    timeout_ms: int = 0
    set_presence: str | None = None


class SyncService:
    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        filters: FilterService,
        *,
        account_data: AccountDataService | None = None,
        receipts: ReceiptsService | None = None,
        typing: TypingService | None = None,
        presence: PresenceService | None = None,
        e2ee: E2eeSync | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._filters = filters
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing
        self._presence = presence
        self._e2ee = e2ee
        self._clock = clock
        self._sent_members = SentMembers()

    async def current_token(self) -> SyncToken:
        e2ee = self._e2ee

        async def read(conn: aiosqlite.Connection) -> tuple[int, tuple[int, int]]:
            room = await events_table.select_max_stream_ordering(conn)
            return room, await e2ee.positions(conn) if e2ee else (0, 0)

        room, (to_device, device_lists) = await self._storage.db.read(read)
        return SyncToken(
            room=room,
            to_device=to_device,
            device_lists=device_lists,
            account_data=self._account_data.current_position() if self._account_data else 0,
            receipts=self._receipts.current_position() if self._receipts else 0,
            typing=self._typing.current_position() if self._typing else 0,
            presence=self._presence.current_position() if self._presence else 0,
        )

    async def sync(self, req: SyncRequest) -> dict[str, Any]:
        """GET /_matrix/client/v3/sync -> the response body."""
        f = await self._filters.resolve(req.user_id, req.filter)
        since = parse_sync_token(req.since) if req.since else None
        if self._presence is not None:
            await self._presence.set_presence_from_sync(req.user_id, req.set_presence)
        timeout_s = min(max(req.timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
        if since is None or req.full_state or timeout_s <= 0:
            now = await self.current_token()
            body, _ = await self._build(req, f, since.clamp(now) if since else None, now)
            return body
        deadline = time.monotonic() + timeout_s
        while True:
            with self._notifier.listen(req.user_id) as listener:
                now = await self.current_token()
                since = since.clamp(now)
                if since.advanced_by(now):
                    body, has_news = await self._build(req, f, since, now)
                    if has_news:
                        return body
                    since = now  # what happened in between is not for this user/filter
                remaining = deadline - time.monotonic()
                # Closed: the server is stopping; answer now (what is new was sent above).
                if remaining <= 0 or self._notifier.closed or not await listener.wait(remaining):
                    return await self._empty(req, since)

    async def _empty(self, req: SyncRequest, since: SyncToken) -> dict[str, Any]:
        body = _empty(since)
        if self._e2ee is not None:
            # The key counts are required in every response, news or not.
            body.update(await self._e2ee.idle_fields(req.user_id, req.device_id))
        return body

    # --- building ---------------------------------------------------------------------------------

    async def _build(
        self, req: SyncRequest, f: Filter, since: SyncToken | None, now: SyncToken
    ) -> tuple[dict[str, Any], bool]:
        rooms_req = RoomsRequest(
            user_id=req.user_id,
            device_id=req.device_id,
            filter=f,
            since=since.room if since else None,
            until=now.room,
            full_state=req.full_state,
            now_ms=int(self._clock() * 1000),
            all_counts=since is None or req.full_state or since.receipts < now.receipts,
            sent_members=self._sent_members,
        )
        rooms = await self._storage.db.read(lambda conn: build_rooms(conn, rooms_req))
        global_data = await self._add_account_data(req.user_id, f, rooms, since, now)
        await self._add_ephemeral(req.user_id, f, rooms, since, now)
        presence = await self._presence_events(req.user_id, f, rooms, since)
        if since is not None and not req.full_state:
            _drop_unchanged_rooms(rooms)
        if f.event_fields:
            _apply_fields(rooms, f)
        body: dict[str, Any] = {
            "next_batch": now.encode(),
            "rooms": rooms.to_json(),
            "account_data": {"events": global_data},
            "presence": {"events": presence},
        }
        has_news = bool(
            global_data or presence or rooms.join or rooms.invite or rooms.leave or rooms.knock
        )
        if self._e2ee is not None:
            e2ee = await self._e2ee.build(req.user_id, req.device_id, since, now)
            body.update(e2ee.fields)
            # Fewer to-device messages than waiting: the next sync starts after the last sent.
            body["next_batch"] = dataclasses.replace(now, to_device=e2ee.to_device_position).encode()
            has_news = has_news or e2ee.has_news
        return body, has_news

    async def _add_account_data(
        self,
        user_id: str,
        f: Filter,
        rooms: RoomsResult,
        since: SyncToken | None,
        now: SyncToken,
    ) -> list[dict[str, Any]]:
        if self._account_data is None or (since is not None and since.account_data >= now.account_data):
            return []
        global_data, room_data = await self._account_data.changes_since(
            user_id, since.account_data if since else 0, now.account_data
        )
        events = [{"type": t, "content": c} for t, c in sorted(global_data.items())]
        events = [e for e in events if f.account_data.matches(e)]
        room_filter = f.room.account_data
        for section in (rooms.join, rooms.leave):
            for room_id, body in section.items():
                body["account_data"]["events"] = [
                    e
                    for t, c in sorted(room_data.get(room_id, {}).items())
                    if room_filter.matches(e := {"type": t, "content": c}, room_id)
                ]
        return events

    async def _add_ephemeral(
        self, user_id: str, f: Filter, rooms: RoomsResult, since: SyncToken | None, now: SyncToken
    ) -> None:
        room_ids = list(rooms.join)
        if not room_ids or f.room.ephemeral.blocks_all():
            return
        typing: dict[str, list[str]] = {}
        receipts: dict[str, dict[str, Any]] = {}
        if self._typing is not None and (since is None or since.typing < now.typing):
            typing = await self._typing.typing_since(room_ids, since.typing if since else 0)
        if self._receipts is not None and (since is None or since.receipts < now.receipts):
            receipts = await self._receipts.receipts_since(
                room_ids, since.receipts if since else 0, now.receipts, user_id
            )
        eph = f.room.ephemeral
        for room_id, body in rooms.join.items():
            events: list[dict[str, Any]] = []
            if room_id in typing:
                events.append({"type": "m.typing", "content": {"user_ids": typing[room_id]}})
            if room_id in receipts:
                events.append({"type": "m.receipt", "content": receipts[room_id]})
            body["ephemeral"]["events"] = [e for e in events if eph.matches(e, room_id)]

    async def _presence_events(
        self, user_id: str, f: Filter, rooms: RoomsResult, since: SyncToken | None
    ) -> list[dict[str, Any]]:
        """Presence of the user and of everyone sharing a room with them: changes since
        `since`, plus the current presence (offline too) of whoever newly shares a room with
        them (a room they joined, a member who joined), whose last change may be older."""
        if self._presence is None or f.presence.blocks_all():
            return []
        my_new_rooms, new_members = _newly_sharing(user_id, rooms) if since else (set(), set())
        nothing_new = since is not None and since.presence >= self._presence.current_position()
        if nothing_new and not (my_new_rooms or new_members):
            return []

        async def read(conn: aiosqlite.Connection) -> tuple[list[str], list[str]]:
            return (
                await sync_table.select_users_sharing_rooms(conn, rooms.joined_room_ids),
                await sync_table.select_users_sharing_rooms(conn, sorted(my_new_rooms)),
            )

        users, in_new_rooms = await self._storage.db.read(read)
        events = await self._presence.presence_since(
            {*users, user_id}, since.presence if since else 0
        )
        newcomers = (set(in_new_rooms) | new_members) - {e["sender"] for e in events} - {user_id}
        if newcomers:
            events += await self._presence.current_presence(newcomers)
        return [e for e in events if f.presence.matches(e)]


def _newly_sharing(user_id: str, rooms: RoomsResult) -> tuple[set[str], set[str]]:
    """From an incremental sync's joined rooms: those the user joined in it, and the others'
    members who joined in it (by the join events in the state delta and timeline)."""
    my_new_rooms: set[str] = set()
    new_members: set[str] = set()
    for room_id, body in rooms.join.items():
        for event in (*body["state"]["events"], *body["timeline"]["events"]):
            if event.get("type") != "m.room.member":
                continue
            prev = (event.get("unsigned") or {}).get("prev_content") or {}
            if (event.get("content") or {}).get("membership") != "join" or prev.get("membership") == "join":
                continue  # not a join, or a profile change of someone already joined
            if event.get("state_key") == user_id:
                my_new_rooms.add(room_id)
            elif isinstance(event.get("state_key"), str):
                new_members.add(event["state_key"])
    return my_new_rooms, new_members


def _empty(token: SyncToken) -> dict[str, Any]:
    return {
        "next_batch": token.encode(),
        "rooms": RoomsResult().to_json(),
        "account_data": {"events": []},
        "presence": {"events": []},
    }


def _drop_unchanged_rooms(rooms: RoomsResult) -> None:
    """An incremental sync only lists joined rooms that have something new."""
    for room_id in list(rooms.join):
        body = rooms.join[room_id]
        if not (
            body["timeline"]["events"]
            or body["state"]["events"]
            or body["ephemeral"]["events"]
            or body["account_data"]["events"]
        ):
            del rooms.join[room_id]


def _apply_fields(rooms: RoomsResult, f: Filter) -> None:
    for section in (rooms.join, rooms.leave):
        for body in section.values():
            for part in ("timeline", "state"):
                body[part]["events"] = [
                    apply_event_fields(e, f.event_fields) for e in body[part]["events"]
                ]
