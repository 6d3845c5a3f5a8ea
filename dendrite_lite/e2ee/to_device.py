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

Other servers' users: messages for them go to `RemoteToDevice` (the m.direct_to_device EDU
sender of issue 13 item 5); without it they are dropped with a log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.request_body import required_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import devices as devices_table
from dendrite_lite.storage import to_device as table
from dendrite_lite.storage.to_device import Delivery
from dendrite_lite.sync.notifier import Notifier

__all__ = ["ALL_DEVICES", "MAX_PER_SYNC", "RemoteToDevice", "ToDeviceService"]

log = logging.getLogger(__name__)

MAX_PER_SYNC = 100  # send_to_device.md: "100 messages is recommended as a reasonable limit"
ALL_DEVICES = "*"

Messages = dict[str, dict[str, dict[str, Any]]]  # user_id -> device_id or "*" -> content


class RemoteToDevice(Protocol):
    async def send(self, sender: str, event_type: str, messages: Messages) -> None:
        """Queue the messages for other servers' users (grouped by server by the sender)."""
        ...


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

        async def txn(conn: aiosqlite.Connection) -> list[str] | None:
            if not await table.insert_txn(conn, sender, sender_device, txn_id, now_ms):
                return None  # a retry: done the first time
            rows = await _local_rows(conn, sender, event_type, local)
            await table.insert_messages(conn, rows)
            return sorted({user_id for user_id, _, _ in rows})

        recipients = await self._storage.db.write(txn)
        if recipients is None:
            return
        self._notifier.notify(recipients)
        if remote:
            await self._send_remote(sender, event_type, remote)

    async def deliver(
        self, user_id: str, device_id: str, since: int, until: int
    ) -> Delivery:
        """The device's messages in (since, until] for a /sync, after deleting those `since`
        acknowledges. `last_position` is where this sync's `next_batch` may stand."""
        if since > 0 and await self._storage.db.read(
            lambda conn: table.select_has_acknowledged(conn, user_id, device_id, since)
        ):
            await self._storage.db.write(
                lambda conn: table.delete_acknowledged(conn, user_id, device_id, since)
            )
        delivery = await self._storage.db.read(
            lambda conn: table.select_messages(conn, user_id, device_id, since, until, MAX_PER_SYNC)
        )
        if len(delivery.events) < MAX_PER_SYNC:
            return Delivery(delivery.events, until)
        return delivery

    async def _send_remote(self, sender: str, event_type: str, messages: Messages) -> None:
        if self._remote is None:
            log.info(
                "to-device %s from %s to other servers' users dropped: not supported yet",
                event_type, sender,
            )
            return
        await self._remote.send(sender, event_type, messages)


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
