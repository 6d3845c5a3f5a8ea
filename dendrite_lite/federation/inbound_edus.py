"""EDUs other servers send us in transactions (server-server-api.md §EDUs, §Typing
Notifications, §Presence, §Receipts), handed to the local typing, receipts and presence
services.

Common rules: a server speaks only for its own users (an EDU about anyone else's user is
ignored), typing and receipts for a room are ignored when the room's server ACL denies the
sender (§Server Access Control Lists), and EDU types we do not know are ignored. Malformed
EDUs are ignored too: an EDU has no result to report in the /send answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dendrite_lite.federation.acl import room_acl, server_allowed
from dendrite_lite.rooms.receipts import ReceiptsService
from dendrite_lite.rooms.typing import TypingService
from dendrite_lite.storage import Storage
from dendrite_lite.users.presence import PresenceService

__all__ = ["EduHandler", "InboundEdus"]

log = logging.getLogger(__name__)

EduHandler = Callable[[str, Mapping[str, Any]], Any]  # (origin, content) -> awaitable


def _server_of(user_id: Any) -> str | None:
    if not isinstance(user_id, str) or not user_id.startswith("@") or ":" not in user_id:
        return None
    return user_id.partition(":")[2]


class InboundEdus:
    def __init__(
        self,
        storage: Storage,
        *,
        typing: TypingService,
        receipts: ReceiptsService,
        presence: PresenceService,
        clock_ms: Callable[[], int] | None = None,
        more: Mapping[str, EduHandler] | None = None,
    ) -> None:
        """`more`: handlers of other EDU types by type (end-to-end encryption's
        m.device_list_update, m.signing_key_update, m.direct_to_device), each checking its own
        input and that the origin speaks for the user."""
        self._storage = storage
        self._typing = typing
        self._receipts = receipts
        self._presence = presence
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._handlers: dict[str, EduHandler] = {
            "m.typing": self._on_typing,
            "m.receipt": self._on_receipt,
            "m.presence": self._on_presence,
            **(more or {}),
        }

    async def receive(self, origin: str, edu: Any) -> None:
        """One EDU of a transaction from `origin`. Never raises for bad input."""
        if not isinstance(edu, Mapping):
            return
        handler = self._handlers.get(edu.get("edu_type"))  # type: ignore[arg-type]
        content = edu.get("content")
        if handler is None or not isinstance(content, Mapping):
            return
        try:
            await handler(origin, content)
        except Exception:  # one bad EDU must not fail the transaction's other EDUs
            log.exception("EDU %s from %s failed", edu.get("edu_type"), origin)

    async def _allowed(self, origin: str, room_id: Any) -> bool:
        if not isinstance(room_id, str):
            return False
        return server_allowed(await room_acl(self._storage, room_id), origin)

    async def _on_typing(self, origin: str, content: Mapping[str, Any]) -> None:
        room_id, user_id, typing = content.get("room_id"), content.get("user_id"), content.get("typing")
        if _server_of(user_id) != origin or not isinstance(typing, bool) or not isinstance(room_id, str):
            return
        if not await self._allowed(origin, room_id):
            return
        await self._typing.set_remote_typing(room_id, str(user_id), typing)

    async def _on_receipt(self, origin: str, content: Mapping[str, Any]) -> None:
        for room_id, by_type in content.items():
            if not isinstance(by_type, Mapping) or not await self._allowed(origin, room_id):
                continue
            reads = by_type.get("m.read")  # the only receipt type servers exchange
            if not isinstance(reads, Mapping):
                continue
            for user_id, receipt in reads.items():
                if _server_of(user_id) != origin or not isinstance(receipt, Mapping):
                    continue
                event_ids = receipt.get("event_ids")
                data = receipt.get("data")
                data = data if isinstance(data, Mapping) else {}
                ts = data.get("ts")
                if isinstance(ts, bool) or not isinstance(ts, int):
                    ts = self._clock_ms()
                thread_id = data.get("thread_id")
                thread = thread_id if isinstance(thread_id, str) and thread_id else None
                if not isinstance(event_ids, list):
                    continue
                for event_id in event_ids:
                    if isinstance(event_id, str):
                        await self._receipts.receive_remote_receipt(room_id, user_id, event_id, ts, thread)

    async def _on_presence(self, origin: str, content: Mapping[str, Any]) -> None:
        push = content.get("push")
        if not isinstance(push, list):
            return
        for entry in push:
            if not isinstance(entry, Mapping) or _server_of(entry.get("user_id")) != origin:
                continue
            ago = entry.get("last_active_ago")
            msg = entry.get("status_msg")
            await self._presence.set_remote_presence(
                entry["user_id"],
                entry.get("presence"),  # type: ignore[arg-type]  # checked by the service
                last_active_ago=ago if isinstance(ago, int) and not isinstance(ago, bool) else 0,
                currently_active=entry.get("currently_active") is True,
                status_msg=msg if isinstance(msg, str) else None,
            )
