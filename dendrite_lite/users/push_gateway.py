"""Delivery of notifications to push gateways (push-gateway-api: POST /_matrix/push/v1/notify).

The unread count hook (rooms.notifications) queues each notification of a user with a pusher in
push_queue, in the event's own transaction, and calls `wake()`. One task reads the queue and
hands each user's rows to a worker of that user's own, which delivers them in order and then
deletes them; while a user's worker runs, the reader skips that user's rows, so one user's slow
or silent gateway (each attempt may wait TIMEOUT_S) holds up no one else's pushes.
What keeps it right:
- the wake-up comes from inside the write transaction, before its commit: the task first runs an
  empty write, which completes only once every write queued before it has committed (one writer,
  in order), so the rows that woke it are visible to its read;
- a restart loses nothing: rows stay queued until delivered, and the task drains them at start;
- a gateway's `rejected` pushkeys remove those pushers (the spec's "must cease sending");
- a read receipt that may lower the user's unread count sends each pusher a badge-only
  notification (`badge`, as Synapse does), so the app can clear its badge; it is not queued:
  a lost one is made good by the next;
- an unreachable gateway or a 5xx answer is retried a few times with backoff, then given up
  for that notification, and the gateway (its URL) is left alone for a while, doubling from
  30 s up to 10 minutes while it stays down: notifications for it in that time are dropped
  rather than queued behind it (a push is worth little once late; the next one will come).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path
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

    from dendrite_lite.events.event import Event

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
        ca_file: Path | None = None,
    ) -> None:
        if ca_file is not None and not ca_file.is_file():
            raise FileNotFoundError(f"push.ca_file {ca_file} does not exist")
        self._ca_file = ca_file
        self._storage = storage
        # Made at the first push, as the federation client does: httpx stays out of a
        # server that has pushed nothing yet (tests/unit/test_server_process.py).
        self._client = client
        self._retry_delay_s = retry_delay_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # gateway URL -> (skip it until this loop time, the backoff that set it)
        self._down: dict[str, tuple[float, float]] = {}
        self._badges: set[asyncio.Task[None]] = set()
        self._workers: dict[str, asyncio.Task[None]] = {}  # user ID -> delivery of their rows

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._wake.set()  # whatever was queued before a restart
        self._task = asyncio.create_task(self._run())

    def badge(self, user_id: str) -> None:
        """The user read something: send their devices the new unread count."""
        task = asyncio.create_task(self._send_badges(user_id))
        self._badges.add(task)
        task.add_done_callback(self._badges.discard)

    async def stop(self) -> None:
        for badge in list(self._badges):
            badge.cancel()
        await asyncio.gather(*self._badges, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            from dendrite_lite.outbound_http import new_client

            # The system CAs, plus push.ca_file for a gateway with a private CA.
            context = ssl.create_default_context()
            if self._ca_file is not None:
                context.load_verify_locations(cafile=self._ca_file)
            self._client = new_client(httpx.AsyncHTTPTransport(verify=context))
        return self._client

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._storage.db.write(_nothing)  # the rows that woke us are committed
                busy = list(self._workers)
                batch = await self._storage.db.read(
                    lambda conn, busy=busy: table.select_push_queue(conn, BATCH, skip_users=busy)
                )
                by_user: dict[str, list[QueuedPush]] = {}
                for item in batch:
                    by_user.setdefault(item.user_id, []).append(item)
                for user_id, items in by_user.items():
                    self._workers[user_id] = asyncio.create_task(self._deliver_all(user_id, items))
                if len(batch) == BATCH:
                    self._wake.set()  # more rows, perhaps of users who have no worker yet
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push delivery failed; retrying at the next notification")

    async def _deliver_all(self, user_id: str, items: Sequence[QueuedPush]) -> None:
        done = False
        try:
            for item in items:
                await self._deliver(item)
            ids = [item.id for item in items]
            await self._storage.db.write(lambda conn: table.delete_push_queue(conn, ids))
            done = True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("push delivery for %s failed; retrying at the next notification", user_id)
        finally:
            del self._workers[user_id]
            if done:
                self._wake.set()  # the user's later rows, if any, are no longer skipped

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

    async def _send_badges(self, user_id: str) -> None:
        async def load(conn: aiosqlite.Connection) -> tuple[list[Pusher], int]:
            return await _http_pushers(conn, user_id), await _unread_total(conn, user_id)

        try:
            pushers, unread = await self._storage.db.read(load)
            for pusher in pushers:
                # Synapse's badge-only shape: no event, empty id and sender, a null type.
                body = {"id": "", "type": None, "sender": "", "counts": {"unread": unread}}
                await self._send(pusher, {**body, "devices": [_device(pusher, {})]})
        except Exception:
            log.exception("badge update for %s failed", user_id)

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
    pushers = await _http_pushers(conn, item.user_id)
    event = (await events_table.select_events_at(conn, [item.stream_ordering])).get(
        item.stream_ordering
    )
    if not pushers or event is None:
        return None
    e = event.event
    body: dict[str, Any] = {
        # `id` beside `event_id`: the field's name in the first push gateway API, still sent
        # by Synapse and read by gateways and SyTest written against it.
        "id": e.event_id, "event_id": e.event_id, "room_id": e.room_id, "type": e.type,
        "sender": e.sender, "content": dict(e.content),
    }
    sender_name = await _state_content(conn, e.room_id, "m.room.member", e.sender, "displayname")
    invite_state = _invite_state(e)
    room_name = await _state_content(conn, e.room_id, "m.room.name", "", "name") or _text(
        invite_state.get("m.room.name"), "name"
    )
    alias = await _state_content(conn, e.room_id, "m.room.canonical_alias", "", "alias") or _text(
        invite_state.get("m.room.canonical_alias"), "alias"
    )
    # A room without a name is shown by its alias, as Synapse names it (the app shows room_name).
    for key, value in (("sender_display_name", sender_name), ("room_name", room_name or alias),
                       ("room_alias", alias)):
        if value is not None:
            body[key] = value
    if e.type == "m.room.member":
        body["user_is_target"] = e.state_key == item.user_id
        body["membership"] = e.content.get("membership")  # as Synapse sends it
    body["counts"] = {"unread": await _unread_total(conn, item.user_id)}
    return pushers, body


async def _http_pushers(conn: aiosqlite.Connection, user_id: str) -> list[Pusher]:
    """The user's pushers that push to a gateway (email ones are users.email_notifier's)."""
    return [p for p in await table.select_pushers(conn, user_id) if p.kind == "http"]


async def _unread_total(conn: aiosqlite.Connection, user_id: str) -> int:
    """The user's unread notifications over their joined rooms (the app's badge)."""
    rooms = await history_table.select_current_memberships(conn, user_id)
    joined = [r for r, m in rooms.items() if m[0] == "join"]
    counts = await notifications_table.select_unread_counts(conn, user_id, joined)
    return sum(n for n, _ in counts.values())


async def _state_content(
    conn: aiosqlite.Connection, room_id: str, event_type: str, state_key: str, key: str
) -> str | None:
    event_id = await state_table.select_current_state_event_id(conn, room_id, event_type, state_key)
    stored = await events_table.select_event(conn, event_id) if event_id else None
    value = stored.event.content.get(key) if stored is not None else None
    return value if isinstance(value, str) else None


def _invite_state(event: Event) -> dict[str, Any]:
    """Content by type of the room state an invite to a room we are not in carries
    (federation/out_of_band.py keeps it in unsigned.invite_room_state): all that names it."""
    unsigned = event.pdu.get("unsigned")
    raw = unsigned.get("invite_room_state") if isinstance(unsigned, dict) else None
    return {
        item["type"]: item.get("content") for item in raw or ()
        if isinstance(item, dict) and item.get("state_key") == "" and isinstance(item.get("type"), str)
    }


def _text(content: Any, key: str) -> str | None:
    value = content.get(key) if isinstance(content, dict) else None
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
    body = dict(full)
    if pusher.data.get("format") == "event_id_only":
        body = {k: full[k] for k in ("event_id", "room_id", "counts") if k in full}
    body["prio"] = "high" if high else "low"
    body["devices"] = [_device(pusher, tweaks)]
    return body


def _device(pusher: Pusher, tweaks: dict[str, Any]) -> dict[str, Any]:
    return {
        "app_id": pusher.app_id, "pushkey": pusher.pushkey, "pushkey_ts": pusher.pushkey_ts // 1000,
        "data": {k: v for k, v in pusher.data.items() if k != "url"}, "tweaks": tweaks,
    }
