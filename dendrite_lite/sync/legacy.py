"""The deprecated sync endpoints still in the spec (old_sync.yaml, room_initial_sync.yaml):
GET /events, GET /initialSync, GET /rooms/{roomId}/initialSync and GET /events/{eventId}.

They are views over the services behind /sync and /messages, so access rules, visibility and
streams stay in one place:
- /events is an incremental /sync with no device (to-device messages stay queued for /sync; a
  legacy stream must not acknowledge them) flattened into one `chunk`, each event carrying its
  `room_id`. Its tokens are sync tokens, so `end` of a room initialSync (a sync token too) can be
  used as `from`.
- /events?room_id= for a world_readable room the user is not in (a peek) reads that room through
  /messages, plus its typing, receipts and its members' presence, as Synapse sends a peeker. The notifier only wakes members, so a peek re-reads the room every PEEK_POLL_S until
  its timeout; it is a rare, deprecated path and the poll is one indexed read.
- /initialSync is an initial /sync reshaped into a list of rooms.
- Events come in the v1 client format, as Synapse serves them here: `user_id` beside `sender`,
  and presence events name their user in `content.user_id` (SyTest reads both).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.history import HistoryService, MessagesRequest
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage import sync as sync_table
from dendrite_lite.sync.service import MAX_TIMEOUT_MS, SyncRequest, SyncService
from dendrite_lite.sync.tokens import SyncToken, pagination_token, parse_sync_token
from dendrite_lite.users.account_data import PUSH_RULES, AccountDataService
from dendrite_lite.users.presence import PresenceService

if TYPE_CHECKING:
    from dendrite_lite.rooms.receipts import ReceiptsService
    from dendrite_lite.rooms.typing import TypingService

__all__ = ["PEEK_POLL_S", "LegacySyncService"]

PEEK_POLL_S = 0.25
# /events has no page size of its own here: a timeline cut short would lose events for good
# (the stream has no prev_batch), so it asks /sync for up to this many per room.
_STREAM_LIMIT = 1000
_ROOM_SECTIONS = ("join", "leave")

GetState = Callable[[str, str], Awaitable[list[dict[str, Any]]]]
GetEvent = Callable[[str, str | None, str, str], Awaitable[dict[str, Any]]]


class LegacySyncService:
    def __init__(
        self,
        storage: Storage,
        sync: SyncService,
        history: HistoryService,
        get_state: GetState,
        get_event: GetEvent,
        presence: PresenceService | None = None,
        account_data: AccountDataService | None = None,
        receipts: ReceiptsService | None = None,
        typing: TypingService | None = None,
    ) -> None:
        self._storage = storage
        self._sync = sync
        self._history = history
        self._get_state = get_state
        self._get_event = get_event
        self._presence = presence
        self._account_data = account_data
        self._receipts = receipts
        self._typing = typing

    # --- GET /events ------------------------------------------------------------------------------

    async def events(
        self, user_id: str, from_token: str | None, timeout_ms: int, room_id: str | None
    ) -> dict[str, Any]:
        """GET /_matrix/client/v3/events -> {start, end, chunk}."""
        since = parse_sync_token(from_token) if from_token else await self._sync.current_token()
        if room_id is not None and not await self._is_member(user_id, room_id):
            return await self._peek(user_id, room_id, since, timeout_ms)
        body = await self._sync.sync(
            SyncRequest(
                user_id=user_id, device_id=None, since=since.encode(),
                filter=json.dumps({"room": {"timeline": {"limit": _STREAM_LIMIT}}}),
                timeout_ms=timeout_ms,
            )
        )
        chunk = _flatten(body)
        if room_id is not None:
            chunk = [e for e in chunk if e.get("room_id") == room_id]
        return {"start": since.encode(), "end": body["next_batch"], "chunk": _v1(chunk)}

    async def _is_member(self, user_id: str, room_id: str) -> bool:
        current = await self._storage.db.read(
            lambda c: history_table.select_current_memberships(c, user_id, [room_id])
        )
        return room_id in current and current[room_id][0] == "join"

    async def _peek(
        self, user_id: str, room_id: str, since: SyncToken, timeout_ms: int
    ) -> dict[str, Any]:
        deadline = time.monotonic() + min(max(timeout_ms, 0), MAX_TIMEOUT_MS) / 1000
        while True:
            now = await self._sync.current_token()
            page = await self._history.messages(
                MessagesRequest(
                    user_id=user_id, device_id=None, room_id=room_id, dir="f",
                    from_token=pagination_token(since.room), to_token=pagination_token(now.room),
                    limit=_STREAM_LIMIT,
                )
            )
            chunk = page["chunk"] + await self._peek_extras(user_id, room_id, since, now)
            if chunk or time.monotonic() >= deadline:
                return {"start": since.encode(), "end": now.encode(), "chunk": _v1(chunk)}
            await asyncio.sleep(min(PEEK_POLL_S, max(0.0, deadline - time.monotonic())))

    async def _peek_extras(
        self, user_id: str, room_id: str, since: SyncToken, now: SyncToken
    ) -> list[dict[str, Any]]:
        """Typing, receipts and members' presence in the peeked room between the tokens."""
        out: list[dict[str, Any]] = []
        if self._typing is not None and since.typing < now.typing:
            typing = await self._typing.typing_since([room_id], since.typing)
            if room_id in typing:
                out.append({"type": "m.typing", "room_id": room_id,
                            "content": {"user_ids": typing[room_id]}})
        if self._receipts is not None and since.receipts < now.receipts:
            receipts = await self._receipts.receipts_since(
                [room_id], since.receipts, now.receipts, user_id
            )
            if room_id in receipts:
                out.append({"type": "m.receipt", "room_id": room_id, "content": receipts[room_id]})
        if self._presence is not None and since.presence < now.presence:
            members = await self._storage.db.read(
                lambda c: state_table.select_members(c, room_id, "join")
            )
            out.extend(await self._presence.presence_since(members, since.presence))
        return out

    # --- GET /initialSync -------------------------------------------------------------------------

    async def initial_sync(self, user_id: str, limit: int, archived: bool) -> dict[str, Any]:
        """GET /_matrix/client/v3/initialSync."""
        f = {"room": {"timeline": {"limit": limit}, "include_leave": archived}}
        body = await self._sync.sync(
            SyncRequest(user_id=user_id, device_id=None, filter=json.dumps(f))
        )
        end = body["next_batch"]
        rooms: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        for membership, section in (("join", "join"), ("leave", "leave")):
            for room_id, room in body["rooms"][section].items():
                rooms.append(_room_entry(room_id, membership, room, end))
                for e in room.get("ephemeral", {}).get("events", []):
                    if e["type"] == "m.receipt":
                        receipts.append({**e, "room_id": room_id})
        for room_id, room in body["rooms"]["invite"].items():
            invite = room["invite_state"]["events"][-1]
            rooms.append({
                "room_id": room_id, "membership": "invite",
                "invite": {**invite, "room_id": room_id},
                "state": room["invite_state"]["events"],
            })
        joined = list(body["rooms"]["join"])
        sharing = await self._storage.db.read(
            lambda c: sync_table.select_users_sharing_rooms(c, joined)
        ) if joined else []
        return {
            "end": end,
            "rooms": rooms,
            "presence": await self._presence_of([user_id, *sharing], [user_id]),
            # m.push_rules has its own API; Synapse leaves it out here.
            "account_data": [e for e in body["account_data"]["events"] if e["type"] != PUSH_RULES],
            "receipts": receipts,
        }

    async def _presence_of(self, user_ids: list[str], always: list[str]) -> list[dict[str, Any]]:
        """Current presence of these users; of those in `always` even when offline (the
        requester's own; every member of a room in a room initialSync, as Synapse does)."""
        if self._presence is None:
            return []
        events = await self._presence.presence_since(user_ids, 0)
        seen = {e["sender"] for e in events}
        for user_id in always:
            if user_id not in seen:
                # Asked as the user: the others share the room, or it is the requester.
                content = await self._presence.get_presence(user_id, user_id)
                events.append({"type": "m.presence", "sender": user_id, "content": content})
        return _v1(events)

    async def _room_account_data(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        if self._account_data is None:
            return []
        position = self._account_data.current_position()
        _, rooms = await self._account_data.changes_since(user_id, 0, position)
        return [{"type": t, "content": c} for t, c in sorted(rooms.get(room_id, {}).items())]

    # --- GET /rooms/{roomId}/initialSync ----------------------------------------------------------

    async def room_initial_sync(
        self, user_id: str, device_id: str | None, room_id: str, limit: int
    ) -> dict[str, Any]:
        """GET /_matrix/client/v3/rooms/{roomId}/initialSync: 403 unless the user may read it."""
        now = await self._sync.current_token()
        back = await self._history.messages(
            MessagesRequest(
                user_id=user_id, device_id=device_id, room_id=room_id, dir="b",
                from_token=pagination_token(now.room), limit=limit,
            )
        )
        chunk = list(reversed(back["chunk"]))
        start = back.get("end") or await self._before(chunk, now)
        state = _v1(await self._get_state(user_id, room_id))
        out: dict[str, Any] = {
            "room_id": room_id,
            "messages": {"chunk": _v1(chunk), "start": start, "end": now.encode()},
            "state": state,
            "presence": [],
            "receipts": [],
            "account_data": await self._room_account_data(user_id, room_id),
        }
        for e in state:
            if e["type"] == "m.room.member" and e.get("state_key") == user_id:
                out["membership"] = e["content"].get("membership")
            elif e["type"] == "m.room.join_rules":
                out["visibility"] = "public" if e["content"].get("join_rule") == "public" else "private"
        if out.get("membership") == "join":
            # Presence is for members only: not after leaving, not for a peek (as Synapse).
            members = await self._storage.db.read(
                lambda c: state_table.select_members(c, room_id, "join")
            )
            out["presence"] = await self._presence_of(list(members), list(members))
        return out

    async def _before(self, chunk: list[dict[str, Any]], now: SyncToken) -> str:
        """The token just before the oldest event served (the whole history fitted the page)."""
        if not chunk:
            return pagination_token(now.room)
        first = await self._storage.db.read(
            lambda c: events_table.select_event(c, chunk[0]["event_id"])
        )
        return pagination_token(first.stream_ordering - 1 if first else now.room)

    # --- GET /events/{eventId} --------------------------------------------------------------------

    async def event(self, user_id: str, device_id: str | None, event_id: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/events/{eventId}: 404 unless the user may see it."""
        stored = await self._storage.db.read(lambda c: events_table.select_event(c, event_id))
        if stored is None:
            raise MatrixError(Errcode.NOT_FOUND, "Event not found")
        return await self._get_event(user_id, device_id, stored.event.room_id, event_id)


def _room_entry(room_id: str, membership: str, room: dict[str, Any], end: str) -> dict[str, Any]:
    timeline = [{**e, "room_id": room_id} for e in room["timeline"]["events"]]
    # The current state: the state at the timeline's start updated by the timeline's state events.
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for e in [*room["state"]["events"], *timeline]:
        if "state_key" in e:
            state[(e["type"], e["state_key"])] = {**e, "room_id": room_id}
    entry: dict[str, Any] = {
        "room_id": room_id,
        "membership": membership,
        "messages": {"chunk": _v1(timeline), "start": room["timeline"]["prev_batch"], "end": end},
        "state": _v1(list(state.values())),
        "account_data": room["account_data"]["events"],
    }
    rules = state.get(("m.room.join_rules", ""))
    if rules is not None:
        entry["visibility"] = "public" if rules["content"].get("join_rule") == "public" else "private"
    return entry


def _flatten(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A /sync response as one list of events, room events tagged with their room."""
    chunk: list[dict[str, Any]] = []
    rooms = body["rooms"]
    for room_id, room in rooms["invite"].items():
        chunk.extend({**e, "room_id": room_id} for e in room["invite_state"]["events"][-1:])
    for section in _ROOM_SECTIONS:
        for room_id, room in rooms[section].items():
            for part in ("timeline", "ephemeral", "account_data"):
                chunk.extend({**e, "room_id": room_id} for e in room.get(part, {}).get("events", []))
    chunk.extend(body["presence"]["events"])
    chunk.extend(body["account_data"]["events"])
    return chunk



def _v1(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The v1 client format (see the module docstring)."""
    out: list[dict[str, Any]] = []
    for e in events:
        if "sender" in e:
            e = {**e, "user_id": e["sender"]}
            if e.get("type") == "m.presence":
                e["content"] = {**e["content"], "user_id": e["sender"]}
        out.append(e)
    return out
