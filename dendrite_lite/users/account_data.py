"""Account data (client_config.md §Client Config) and room tags (tags.md), one stream for both.

Everything here is stored in the account_data table and delivered by /sync:
- global and per-room account data set by clients;
- `m.tag` room account data, edited one tag at a time through the tags API;
- `m.fully_read` room account data, set only by the read markers API (rooms/read_markers.py);
- `m.push_rules` global account data: the table holds the user's push rules document
  (push/ruleset.py) and readers see the full ruleset (server defaults + the user's changes).

Positions: `current_position()` is the highest committed stream id; it only moves after a
write's commit returned, so a /sync that reads up to it never skips a row.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.push.ruleset import full_ruleset
from dendrite_lite.storage import Storage
from dendrite_lite.storage import account_data as table
from dendrite_lite.sync.notifier import Notifier

__all__ = [
    "AccountDataService",
    "PUSH_RULES",
    "FULLY_READ",
    "TAG",
    "SERVER_MANAGED_TYPES",
    "MAX_TAG_BYTES",
    "require_self",
]

PUSH_RULES = "m.push_rules"
FULLY_READ = "m.fully_read"
TAG = "m.tag"
# client_config.md §Server Behaviour: types the server manages are refused with 405 M_BAD_JSON.
SERVER_MANAGED_TYPES = frozenset({FULLY_READ, PUSH_RULES})
MAX_TAG_BYTES = 255  # tags.md: "The name of a tag MUST NOT exceed 255 bytes."

Edit = Callable[[dict[str, Any] | None], dict[str, Any] | None]
GlobalData = dict[str, dict[str, Any]]
RoomData = dict[str, dict[str, dict[str, Any]]]


def require_self(requester: str, user_id: str, what: str) -> None:
    """Users may only read and change their own per-user data (403 M_FORBIDDEN otherwise)."""
    if requester != user_id:
        raise MatrixError(Errcode.FORBIDDEN, f"Cannot access {what} of other users.")


def _check_room_id(room_id: str) -> None:
    if not room_id.startswith("!"):
        raise MatrixError(Errcode.INVALID_PARAM, f"{room_id} is not a valid room ID.")


class AccountDataService:
    """Create with `await AccountDataService.open(storage, notifier)`."""

    def __init__(self, storage: Storage, notifier: Notifier, *, position: int = 0) -> None:
        self._storage = storage
        self._notifier = notifier
        self._position = position

    @classmethod
    async def open(cls, storage: Storage, notifier: Notifier) -> AccountDataService:
        position = await storage.db.read(table.select_max_stream_id)
        return cls(storage, notifier, position=position)

    def current_position(self) -> int:
        return self._position

    # --- the account data API ----------------------------------------------------------------

    async def get(
        self, requester: str, user_id: str, room_id: str | None, data_type: str
    ) -> dict[str, Any]:
        """GET /_matrix/client/v3/user/{userId}[/rooms/{roomId}]/account_data/{type} content."""
        require_self(requester, user_id, "account data")
        if room_id is not None:
            _check_room_id(room_id)
        room = room_id if room_id is not None else table.GLOBAL
        content = await self._read(user_id, room, data_type)
        if room_id is None and data_type == PUSH_RULES:
            return full_ruleset(user_id, content or {})
        if content is None:
            what = "Room account data" if room_id is not None else "Account data"
            raise MatrixError(Errcode.NOT_FOUND, f"{what} not found.")
        return content

    async def set(
        self,
        requester: str,
        user_id: str,
        room_id: str | None,
        data_type: str,
        content: dict[str, Any],
    ) -> None:
        """PUT /_matrix/client/v3/user/{userId}[/rooms/{roomId}]/account_data/{type}"""
        require_self(requester, user_id, "account data")
        if room_id is not None:
            _check_room_id(room_id)
        if data_type in SERVER_MANAGED_TYPES:
            raise MatrixError(
                Errcode.BAD_JSON, f"Cannot set {data_type} through this API.", status=405
            )
        room = room_id if room_id is not None else table.GLOBAL
        await self.update(user_id, room, data_type, lambda _old: dict(content))

    # --- room tags ---------------------------------------------------------------------------

    async def tags(self, requester: str, user_id: str, room_id: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags body."""
        require_self(requester, user_id, "tags")
        content = await self._read(user_id, room_id, TAG) or {}
        tags = content.get("tags")
        return {"tags": tags if isinstance(tags, dict) else {}}

    async def add_tag(
        self, requester: str, user_id: str, room_id: str, tag: str, body: dict[str, Any]
    ) -> None:
        """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
        require_self(requester, user_id, "tags")
        _check_room_id(room_id)
        if not tag or len(tag.encode("utf-8")) > MAX_TAG_BYTES:
            raise MatrixError(Errcode.INVALID_PARAM, f"Tag names are 1 to {MAX_TAG_BYTES} bytes")
        order = body.get("order")
        if "order" in body and (isinstance(order, bool) or not isinstance(order, (int, float))):
            raise MatrixError(Errcode.BAD_JSON, "'order' must be a number")

        def edit(old: dict[str, Any] | None) -> dict[str, Any]:
            new = _with_tags(old)
            new["tags"][tag] = copy.deepcopy(body)
            return new

        await self.update(user_id, room_id, TAG, edit)

    async def remove_tag(self, requester: str, user_id: str, room_id: str, tag: str) -> None:
        """DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}

        Removing a tag the room does not have succeeds and changes nothing, like Synapse.
        """
        require_self(requester, user_id, "tags")
        _check_room_id(room_id)

        def edit(old: dict[str, Any] | None) -> dict[str, Any] | None:
            new = _with_tags(old)
            if tag not in new["tags"]:
                return None
            del new["tags"][tag]
            return new

        await self.update(user_id, room_id, TAG, edit)

    # --- for other services ------------------------------------------------------------------

    async def read(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any] | None:
        """The stored content as is (room_id GLOBAL for global data); None if never set."""
        return await self._read(user_id, room_id, data_type)

    async def update(self, user_id: str, room_id: str, data_type: str, edit: Edit) -> bool:
        """Store edit(old content) in one transaction, without the client API's checks.

        For server-managed types (m.fully_read, the push rules document) and read-modify-write
        edits. `edit` runs inside the write transaction: keep it pure and quick; a MatrixError it
        raises reaches the caller with nothing written. Returns False when edit returned None
        (nothing written); otherwise notifies the user's /sync.
        """
        stream_id = await self._storage.db.write(
            lambda conn: table.update_account_data(conn, user_id, room_id, data_type, edit)
        )
        if stream_id is None:
            return False
        self._position = max(self._position, stream_id)
        self._notifier.notify([user_id])
        return True

    async def changes_since(
        self, user_id: str, since: int, until: int
    ) -> tuple[GlobalData, RoomData]:
        """Account data written in (since, until]: (global {type: content}, {room: {type: content}}).

        `since` 0 means an initial sync; it always includes m.push_rules (the defaults when the
        user never changed a rule), which clients need to show notification settings.
        """
        rows = await self._storage.db.read(
            lambda conn: table.select_account_data_since(conn, user_id, since, until)
        )
        global_data: GlobalData = {}
        rooms: RoomData = {}
        for row in rows:
            if row.room_id == table.GLOBAL:
                content = row.content
                if row.type == PUSH_RULES:
                    content = full_ruleset(user_id, content)
                global_data[row.type] = content
            else:
                rooms.setdefault(row.room_id, {})[row.type] = row.content
        if since <= 0 and PUSH_RULES not in global_data:
            global_data[PUSH_RULES] = full_ruleset(user_id, {})
        return global_data, rooms

    async def _read(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any] | None:
        return await self._storage.db.read(
            lambda conn: table.select_account_data(conn, user_id, room_id, data_type)
        )


def _with_tags(old: dict[str, Any] | None) -> dict[str, Any]:
    new = copy.deepcopy(old) if old else {}
    if not isinstance(new.get("tags"), dict):
        new["tags"] = {}
    return new
