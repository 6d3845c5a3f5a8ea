"""Delivery of notifications to push gateways (push-gateway-api: POST /_matrix/push/v1/notify).

The unread count hook (rooms.notifications) queues each notification of a user with a pusher in
push_queue, in the event's own transaction, and calls `wake()`. One task drains the queue a
batch at a time: each user's notifications in order, different users at once (so one user's
slow gateway does not hold up everyone's pushes), then deletes the batch's rows.
What keeps it right:
- the wake-up comes from inside the write transaction, before its commit: the task first runs an
  empty write, which completes only once every write queued before it has committed (one writer,
  in order), so the rows that woke it are visible to its read;
- a restart loses nothing: rows stay queued until delivered, and the task drains them at start;
- a gateway's `rejected` pushkeys remove those pushers (the spec's "must cease sending");
- an unreachable gateway or a 5xx answer is retried a few times with backoff, then given up
  for that notification, and the gateway (its URL) is left alone for a while, doubling from
  30 s up to 10 minutes while it stays down: notifications for it in that time are dropped
  rather than queued behind it (a push is worth little once late; the next one will come).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import notifications as notifications_table
from dendrite_lite.storage import pushers as table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.pushers import Pusher, QueuedPush

if TYPE_CHECKING:
    import httpx

__all__ = ["PushGateway"]

log = logging.getLogger(__name__)

BATCH = 50
ATTEMPTS = 3
MAX_ANSWER_BYTES = 64 * 1024
TIMEOUT_S = 10.0
DOWN_FIRST_S = 30.0
DOWN_MAX_S = 600.0


class PushGateway:
    def __init__(
        self,
        storage: Storage,
        *,
        client: httpx.AsyncClient | None = None,
        retry_delay_s: float = 1.0,
    ) -> None:
        self._storage = storage
        # Made at the first push, as the federation client does: httpx stays out of a
        # server that has pushed nothing yet (tests/unit/test_server_process.py).
        self._client = client
        self._retry_delay_s = retry_delay_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # gateway URL -> (skip it until this loop time, the backoff that set it)
        self._down: dict[str, tuple[float, float]] = {}

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._wake.set()  # whatever was queued before a restart
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            from dendrite_lite.outbound_http import new_client

            self._client = new_client(httpx.AsyncHTTPTransport())
        return self._client

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._storage.db.write(_nothing)  # the rows that woke us are committed
                while batch := await self._storage.db.read(
                    lambda conn: table.select_push_queue(conn, BATCH)
                ):
                    by_user: dict[str, list[QueuedPush]] = {}
                    for item in batch:
                        by_user.setdefault(item.user_id, []).append(item)
                    await asyncio.gather(*(self._deliver_all(items) for items in by_user.values()))
                    ids = [item.id for item in batch]
                    await self._storage.db.write(
                        lambda conn, ids=ids: table.delete_push_queue(conn, ids)
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push delivery failed; retrying at the next notification")

    async def _deliver_all(self, items: Sequence[QueuedPush]) -> None:
        for item in items:
            await self._deliver(item)

    async def _deliver(self, item: QueuedPush) -> None:
        loaded = await self._storage.db.read(lambda conn: _load(conn, item))
        if loaded is None:
            return
        pushers, notification = loaded
        for pusher in pushers:
            rejected = await self._send(pusher, _for_pusher(notification, pusher, item.actions))
            if pusher.pushkey in rejected:
                log.info("push gateway rejected pushkey of %s (app %s): pusher removed",
                         pusher.user_id, pusher.app_id)
                await self._storage.db.write(
                    lambda conn, p=pusher: table.delete_pusher(conn, p.user_id, p.app_id, p.pushkey)
                )

    async def _send(self, pusher: Pusher, body: dict[str, Any]) -> list[str]:
        """POST the notification; the pushkeys the gateway rejected."""
        url = str(pusher.data["url"])
        now = asyncio.get_running_loop().time()
        down = self._down.get(url)
        if down is not None and now < down[0]:
            log.debug("push gateway %s is down; notification for %s dropped", url, pusher.user_id)
            return []
        from dendrite_lite.outbound_http import HttpError, fetch

        content = json.dumps({"notification": body}).encode("utf-8")
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(self._retry_delay_s * 2 ** (attempt - 1))
            try:
                answer = await fetch(
                    self._http(), "POST", url, max_body_bytes=MAX_ANSWER_BYTES,
                    timeout_s=TIMEOUT_S, connect_timeout_s=TIMEOUT_S,
                    headers={"Content-Type": "application/json"}, content=content,
                )
            except HttpError as e:
                log.warning("push gateway %s unreachable (attempt %d): %s", url, attempt + 1, e)
                continue
            if answer.status < 500 and answer.status != 429:
                self._down.pop(url, None)
                return _rejected(answer.body) if answer.status == 200 else []
            log.warning("push gateway %s answered %d (attempt %d)", url, answer.status, attempt + 1)
        backoff = min(down[1] * 2, DOWN_MAX_S) if down is not None else DOWN_FIRST_S
        self._down[url] = (asyncio.get_running_loop().time() + backoff, backoff)
        log.warning("push gateway %s given up on for %.0f s", url, backoff)
        return []


async def _nothing(conn: aiosqlite.Connection) -> None:
    return None


def _rejected(body: bytes) -> list[str]:
    try:
        rejected = json.loads(body).get("rejected")
    except (ValueError, AttributeError):
        return []
    return [k for k in rejected if isinstance(k, str)] if isinstance(rejected, list) else []


async def _load(
    conn: aiosqlite.Connection, item: QueuedPush
) -> tuple[list[Pusher], dict[str, Any]] | None:
    """The user's pushers and the notification's event-related fields (full format)."""
    pushers = await table.select_pushers(conn, item.user_id)
    event = (await events_table.select_events_at(conn, [item.stream_ordering])).get(
        item.stream_ordering
    )
    if not pushers or event is None:
        return None
    rooms = await history_table.select_current_memberships(conn, item.user_id)
    joined = [r for r, m in rooms.items() if m[0] == "join"]
    counts = await notifications_table.select_unread_counts(conn, item.user_id, joined)
    unread = sum(n for n, _ in counts.values())
    e = event.event
    body: dict[str, Any] = {
        "event_id": e.event_id, "room_id": e.room_id, "type": e.type, "sender": e.sender,
        "content": dict(e.content),
    }
    sender_name = await _state_content(conn, e.room_id, "m.room.member", e.sender, "displayname")
    room_name = await _state_content(conn, e.room_id, "m.room.name", "", "name")
    alias = await _state_content(conn, e.room_id, "m.room.canonical_alias", "", "alias")
    for key, value in (("sender_display_name", sender_name), ("room_name", room_name),
                       ("room_alias", alias)):
        if value is not None:
            body[key] = value
    if e.type == "m.room.member":
        body["user_is_target"] = e.state_key == item.user_id
    if unread:
        body["counts"] = {"unread": unread}
    return pushers, body


async def _state_content(
    conn: aiosqlite.Connection, room_id: str, event_type: str, state_key: str, key: str
) -> str | None:
    event_id = await state_table.select_current_state_event_id(conn, room_id, event_type, state_key)
    stored = await events_table.select_event(conn, event_id) if event_id else None
    value = stored.event.content.get(key) if stored is not None else None
    return value if isinstance(value, str) else None


def _tweaks(actions: Sequence[Any]) -> dict[str, Any]:
    return {
        a["set_tweak"]: a.get("value", True) for a in actions
        if isinstance(a, dict) and isinstance(a.get("set_tweak"), str)
    }


def _for_pusher(full: dict[str, Any], pusher: Pusher, actions: Sequence[Any]) -> dict[str, Any]:
    """The notification as this pusher gets it: its device entry, and with format
    event_id_only only the ids, counts and priority (push-gateway-api)."""
    tweaks = _tweaks(actions)
    high = full["type"] == "m.room.encrypted" or bool(tweaks.get("highlight")) or "sound" in tweaks
    device = {
        "app_id": pusher.app_id, "pushkey": pusher.pushkey, "pushkey_ts": pusher.pushkey_ts // 1000,
        "data": {k: v for k, v in pusher.data.items() if k != "url"}, "tweaks": tweaks,
    }
    body = dict(full)
    if pusher.data.get("format") == "event_id_only":
        body = {k: full[k] for k in ("event_id", "room_id", "counts") if k in full}
    body["prio"] = "high" if high else "low"
    body["devices"] = [device]
    return body
