"""Send-to-device messaging (send_to_device.md): PUT /sendToDevice and the `to_device` section of
/sync.

Delivery is at least once until acknowledged, and never again after:
- a message is a row of the inbox, written in the same transaction as the request's transaction
  id (so a retried request adds nothing) and kept across restarts;
- a /sync returns the device's messages after its `since` position, up to the stream position
  it reports in `next_batch` (at most MAX_PER_SYNC; `next_batch` then stops at the last one
  returned, so the rest come next time);
- a /sync whose `since` is at or past a message's position proves the client got the response
  that carried it: the message is deleted then, before anything is read.

Other servers' users (server-server-api.md §Send-to-device messaging): messages for them are
queued by `RemoteToDevice` (federation/to_device_edus.py) as m.direct_to_device EDUs in the
persistent outbox, in the same transaction as the request's transaction id, so a 200 means
they will be sent even across a restart. Without it (federation disabled) they are dropped
with a log line. Messages other servers send us (`receive_remote`) are delivered once per
message id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.request_body import required_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import remote_device_lists as remote_table
from dendrite_lite.storage import to_device as table
from dendrite_lite.storage.to_device import Delivery
from dendrite_lite.sync.notifier import Notifier

__all__ = ["ALL_DEVICES", "MAX_PER_SYNC", "RemoteToDevice", "ToDeviceService"]

log = logging.getLogger(__name__)

MAX_PER_SYNC = 100  # send_to_device.md: "100 messages is recommended as a reasonable limit"
ALL_DEVICES = "*"

Messages = dict[str, dict[str, dict[str, Any]]]  # user_id -> device_id or "*" -> content


class RemoteToDevice(Protocol):
    async def queue_in(
        self, conn: aiosqlite.Connection, sender: str, event_type: str, messages: Messages
    ) -> list[str]:
        """Inside the request's write: queue the messages for other servers' users; returns the
        servers to wake once it committed."""
        ...

    def wake(self, servers: list[str]) -> None: ...


def _parse_messages(body: Mapping[str, Any]) -> Messages:
    messages = required_field(body, "messages", "object")
    for user_id, devices in messages.items():
        if not is_valid_user_id(user_id):
            raise MatrixError(Errcode.INVALID_PARAM, f"messages: {user_id[:100]!r} is not a user id")
        if not isinstance(devices, dict) or not all(isinstance(c, dict) for c in devices.values()):
            raise MatrixError(
                Errcode.BAD_JSON, f"messages.{user_id} must map device ids to content objects"
            )
    return messages


_Row = tuple[str, str, dict[str, Any]]  # (user, device, message)


class ToDeviceService:
    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        *,
        server_name: str,
        remote: RemoteToDevice | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._server_name = server_name
        self._remote = remote
        self._clock = clock
        # Called inside the transaction that stores messages for our users' devices, with
        # their (user, device, message) rows: application services get theirs (MSC2409).
        self.in_txn: Callable[[aiosqlite.Connection, list[_Row]], Awaitable[None]] | None = None

    async def send(
        self,
        sender: str,
        sender_device: str,
        event_type: str,
        txn_id: str,
        body: Mapping[str, Any],
    ) -> None:
        """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
        messages = _parse_messages(body)
        local = {u: d for u, d in messages.items() if server_name_of(u) == self._server_name}
        remote = {u: d for u, d in messages.items() if u not in local}
        now_ms = int(self._clock() * 1000)

        async def txn(conn: aiosqlite.Connection) -> tuple[list[str], list[str]] | None:
            if not await table.insert_txn(conn, sender, sender_device, txn_id, now_ms):
                return None  # a retry: done the first time
            rows = await _local_rows(conn, sender, event_type, local)
            await table.insert_messages(conn, rows)
            if self.in_txn is not None:
                await self.in_txn(conn, rows)
            servers: list[str] = []
            if remote and self._remote is not None:
                servers = await self._remote.queue_in(conn, sender, event_type, remote)
            return sorted({user_id for user_id, _, _ in rows}), servers

        done = await self._storage.db.write(txn)
        if done is None:
            return
        recipients, servers = done
        self._notifier.notify(recipients)
        if self._remote is not None:
            self._remote.wake(servers)
        elif remote:
            log.info(
                "to-device %s from %s to other servers' users dropped: federation is disabled",
                event_type, sender,
            )

    async def receive_remote(self, origin: str, content: Mapping[str, Any]) -> None:
        """An m.direct_to_device EDU from `origin`: its messages for our users' devices, unless
        a message with this id came from `origin` before. Malformed EDUs are ignored."""
        sender, event_type = content.get("sender"), content.get("type")
        message_id, messages = content.get("message_id"), content.get("messages")
        if not isinstance(sender, str) or not is_valid_user_id(sender) or server_name_of(sender) != origin:
            return  # a server speaks only for its own users
        if not isinstance(event_type, str) or not isinstance(message_id, str):
            return
        if not isinstance(messages, Mapping):
            return
        ours = {
            u: {d: c for d, c in by_device.items() if isinstance(c, dict)}
            for u, by_device in messages.items()
            if isinstance(u, str) and is_valid_user_id(u) and server_name_of(u) == self._server_name
            and isinstance(by_device, Mapping)
        }
        now_ms = int(self._clock() * 1000)

        async def txn(conn: aiosqlite.Connection) -> list[str]:
            if not await remote_table.insert_inbound_message_id(conn, origin, message_id, now_ms):
                return []  # delivered before
            rows = await _local_rows(conn, sender, event_type, ours)
            await table.insert_messages(conn, rows)
            if self.in_txn is not None:
                await self.in_txn(conn, rows)
            return sorted({user_id for user_id, _, _ in rows})

        self._notifier.notify(await self._storage.db.write(txn))

    async def deliver(
        self, user_id: str, device_id: str, since: int, until: int, limit: int = MAX_PER_SYNC
    ) -> Delivery:
        """The device's messages in (since, until] for a /sync, at most `limit`, after deleting
        those `since` acknowledges. `last_position` is where this sync's `next_batch` may
        stand."""
        if since > 0 and await self._storage.db.read(
            lambda conn: table.select_has_acknowledged(conn, user_id, device_id, since)
        ):
            await self._storage.db.write(
                lambda conn: table.delete_acknowledged(conn, user_id, device_id, since)
            )
        delivery = await self._storage.db.read(
            lambda conn: table.select_messages(conn, user_id, device_id, since, until, limit)
        )
        if len(delivery.events) < limit:
            return Delivery(delivery.events, until)
        return delivery


async def _local_rows(
    conn: aiosqlite.Connection, sender: str, event_type: str, messages: Messages
) -> list[tuple[str, str, dict[str, Any]]]:
    """(user, device, message) for every existing device the messages address ("*": all of the
    user's devices); messages for unknown devices are dropped, as nobody could fetch them."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for user_id, by_device in messages.items():
        devices = {d.device_id for d in await devices_table.select_devices(conn, user_id)}
        for device_id, content in by_device.items():
            targets = sorted(devices) if device_id == ALL_DEVICES else [device_id]
            message = {"sender": sender, "type": event_type, "content": content}
            rows.extend((user_id, d, message) for d in targets if d in devices)
    return rows
