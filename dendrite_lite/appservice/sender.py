"""Homeserver -> application services: which events each AS gets, queued with the events.

`prepare` is a persist hook of both the local pipeline and federation ingest: for each batch it
writes one appservice_outbox row per (interested AS, event) INSIDE the events' transaction, so
an event is queued for its ASes exactly when it is stored, and wakes their queues
(appservice/queue.py sends). An AS is interested in an event (application-service-api
§Pushing events) when its user namespace (or its sender) holds the event's sender, the target
of a membership event or a local member of the room; when its room namespace holds the room id;
or its alias namespace one of the room's local aliases.

Ephemeral data reaches ASes that opted in through hooks the other services call (wired in
service_wiring): typing, receipts and presence in memory (MSC2409; they are superseded within
seconds), to-device messages durably in the messages' own transaction, device lists (MSC3202)
from the device list stream through a cursor per AS, and users no longer sharing a room with the
AS's users as outbox rows in the leave's transaction (appservice/device_lists.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from dendrite_lite.appservice import device_lists
from dendrite_lite.appservice.http import AppserviceHttp
from dendrite_lite.appservice.queue import AppserviceQueue
from dendrite_lite.appservice.registration import Registration
from dendrite_lite.appservice.registry import AppServices
from dendrite_lite.events.event import Event
from dendrite_lite.federation.destinations import BackoffPolicy
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table

__all__ = ["AppserviceSender", "AppserviceStatus"]

InTxn = Callable[[aiosqlite.Connection, Sequence[tuple[Event, int]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AppserviceStatus:
    """One AS's delivery, for the TUI dashboard (server_status.py)."""

    id: str
    url: str | None
    queued_events: int
    last_success_ts: int | None
    last_failure_ts: int | None
    last_failure_reason: str | None
    retry_interval_ms: int
    next_retry_ts: int

    @property
    def backing_off(self) -> bool:
        return self.next_retry_ts > int(time.time() * 1000)


class AppserviceSender:
    def __init__(
        self,
        storage: Storage,
        appservices: AppServices,
        http: AppserviceHttp,
        *,
        policy: BackoffPolicy | None = None,
    ) -> None:
        self._storage = storage
        self.appservices = appservices
        self.http = http
        self._queues = {
            r.id: AppserviceQueue(
                r, server_name=appservices.server_name, storage=storage, http=http,
                policy=policy or BackoffPolicy(),
            )
            for r in appservices if r.url is not None
        }

    async def start(self) -> None:
        """Resume: each queue sends what an earlier run left, after any remembered backoff.
        An AS new to MSC3202 device lists starts at the stream's position now."""
        with_lists = [r.id for r in self.appservices if r.device_lists and r.id in self._queues]
        without = [r.id for r in self.appservices if not r.device_lists]
        await self._storage.db.write(
            lambda c: table.start_device_list_positions(c, with_lists, without)
        )
        states = await self._storage.db.read(table.select_states)
        for as_id, queue in self._queues.items():
            state = states.get(as_id)
            if state is not None:
                queue.resume(state.retry_interval_ms, state.next_retry_ts)
            queue.start()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Requests in flight get `grace_s`, then are cancelled (their rows stay queued)."""
        for queue in self._queues.values():
            queue.stop()
        await asyncio.gather(*(q.join(grace_s) for q in self._queues.values()))
        await self.http.aclose()

    def queue(self, as_id: str) -> AppserviceQueue | None:
        return self._queues.get(as_id)

    def retry_now(self, as_id: str) -> None:
        """The AS is up (it answered a ping): send what waits for it without waiting out the
        backoff."""
        queue = self._queues.get(as_id)
        if queue is not None:
            queue.retry_now()

    # --- events: the persist hook --------------------------------------------------------------
    async def prepare(self, room_id: str, events: Sequence[Event]) -> InTxn | None:
        regs = [self.appservices.by_id(as_id) for as_id in self._queues]
        active = [r for r in regs if r is not None]
        if not active or not events:
            return None
        before = await self._storage.db.read(lambda c: table.select_joined_users(c, room_id))
        wanted = {e.event_id for e in events}

        async def write(conn: aiosqlite.Connection, persisted: Sequence[tuple[Event, int]]) -> None:
            members = set(before) | set(await table.select_joined_users(conn, room_id))
            aliases = await table.select_room_aliases(conn, room_id)
            room_wide = {r.id for r in active if self._room_interests(r, room_id, members, aliases)}
            rows = []
            for event, _ in persisted:
                if event.event_id not in wanted:
                    continue
                for reg in active:
                    if reg.id in room_wide or self._event_interests(reg, event):
                        rows.append((reg.id, event.event_id))
            now = int(time.time() * 1000)
            if rows:
                await table.insert_outbox_events(conn, rows, now)
            woken = {a for a, _ in rows}
            events_here = [e for e, _ in persisted if e.event_id in wanted]
            for reg in active:
                if reg.device_lists:
                    left = await device_lists.users_left(
                        conn, self.appservices.server_name, events_here, before,
                        lambda u, reg=reg: self._user_is_ours(reg, u),
                    )
                    for user_id in left:
                        entry = device_lists.entry(user_id, left=True)
                        await table.insert_outbox_edu(conn, reg.id, device_lists.EDU_TYPE, entry, now)
                        woken.add(reg.id)
            for as_id in woken:
                self._queues[as_id].wake()

        return write

    def _user_is_ours(self, reg: Registration, user_id: str) -> bool:
        return user_id == reg.sender(self.appservices.server_name) or reg.matches("users", user_id)

    def _event_interests(self, reg: Registration, event: Event) -> bool:
        if self._user_is_ours(reg, event.sender):
            return True
        return bool(
            event.type == "m.room.member" and event.state_key
            and self._user_is_ours(reg, event.state_key)
        )

    def _room_interests(
        self, reg: Registration, room_id: str, members: set[str], aliases: Sequence[str]
    ) -> bool:
        if reg.matches("rooms", room_id):
            return True
        if any(reg.matches("aliases", a) for a in aliases):
            return True
        suffix = ":" + self.appservices.server_name
        return any(m.endswith(suffix) and self._user_is_ours(reg, m) for m in members)

    # --- ephemeral events (MSC2409) ------------------------------------------------------------
    def typing_changed(self, room_id: str, typing: list[str], members: list[str]) -> None:
        """TypingService.on_change: the room's typing list, to the ASes that see the room."""
        edu = {"type": "m.typing", "room_id": room_id, "content": {"user_ids": typing}}
        self._room_ephemeral(room_id, members, edu)

    def receipt_stored(
        self, room_id: str, user_id: str, event_id: str, ts: int, thread_id: str | None,
        members: list[str],
    ) -> None:
        """ReceiptsService.on_receipt: a public read receipt, as /sync shows it."""
        receipt: dict[str, Any] = {"ts": ts}
        if thread_id:
            receipt["thread_id"] = thread_id
        content = {event_id: {"m.read": {user_id: receipt}}}
        self._room_ephemeral(room_id, members, {"type": "m.receipt", "room_id": room_id, "content": content})

    async def to_device_in_txn(
        self, conn: aiosqlite.Connection, rows: Sequence[tuple[str, str, Mapping[str, Any]]]
    ) -> None:
        """ToDeviceService's hook, inside the transaction storing to-device messages for our
        users' devices: those for an AS's users are queued for it (MSC2409), durably, as
        de.sorunome.msc2409.to_device entries naming their recipient."""
        now = int(time.time() * 1000)
        woken = set()
        for user_id, device_id, message in rows:
            for reg in self.appservices:
                if reg.receive_ephemeral and reg.id in self._queues and self._user_is_ours(reg, user_id):
                    entry = {**message, "to_user_id": user_id, "to_device_id": device_id}
                    await table.insert_outbox_edu(conn, reg.id, "m.to_device", entry, now)
                    woken.add(reg.id)
        for as_id in woken:
            self._queues[as_id].wake()

    def presence_changed(self, user_id: str, content: dict[str, Any], audience: set[str]) -> None:
        """PresenceService.on_change: to the ASes (with ephemeral events) whose users see it."""
        edu = {"type": "m.presence", "sender": user_id, "content": content}
        for reg in self.appservices:
            if reg.receive_ephemeral and reg.id in self._queues and any(
                self._user_is_ours(reg, u) for u in audience
            ):
                self._queues[reg.id].add_ephemeral(dict(edu))

    async def device_list_changed(self, user_id: str, sharing: set[str]) -> None:
        """DeviceListService.on_change, after a change committed: wakes the queues of the ASes
        with MSC3202 device lists whose users share a room with the user (or are the user).
        The wake carries nothing: each queue reads the device list stream after its own cursor
        (appservice/device_lists.py), so a change committed just before a crash still reaches
        them after the restart."""
        for reg in self.appservices:
            if reg.device_lists and reg.id in self._queues and any(
                self._user_is_ours(reg, u) for u in sharing | {user_id}
            ):
                self._queues[reg.id].wake()

    def _room_ephemeral(self, room_id: str, members: list[str], edu: Mapping[str, Any]) -> None:
        suffix = ":" + self.appservices.server_name
        for reg in self.appservices:
            if not reg.receive_ephemeral or reg.id not in self._queues:
                continue
            if reg.matches("rooms", room_id) or any(
                m.endswith(suffix) and self._user_is_ours(reg, m) for m in members
            ):
                self._queues[reg.id].add_ephemeral(dict(edu))

    # --- health ----------------------------------------------------------------------------------
    async def statuses(self) -> list[AppserviceStatus]:
        async def load(conn: aiosqlite.Connection) -> tuple[Any, Any]:
            return await table.select_states(conn), await table.select_pending_counts(conn)

        states, counts = await self._storage.db.read(load)
        out = []
        for reg in self.appservices:
            state = states.get(reg.id) or table.AppserviceState(reg.id)
            out.append(AppserviceStatus(
                reg.id, reg.url, counts.get(reg.id, 0), state.last_success_ts,
                state.last_failure_ts, state.last_failure_reason, state.retry_interval_ms,
                state.next_retry_ts,
            ))
        return out
