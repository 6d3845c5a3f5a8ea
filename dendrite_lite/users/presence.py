"""Presence (presence.md): online / unavailable / offline, status messages, last activity.

What moves a user's state:
- PUT /presence/{userId}/status sets it (and the status message: omitted or null clears it);
- /sync calls `set_presence_from_sync`: without set_presence (or "online") an offline user
  becomes online; "unavailable" marks the user idle; "offline" changes nothing;
- `bump_active` (sending events, receipts, typing...) makes the user online and currently active;
- `check_timeouts` (every TIMEOUT_CHECK_S while `start()`ed): online users idle for IDLE_MS
  become unavailable; users with no /sync and no activity for SYNC_TIMEOUT_MS go offline.

Only state changes are written (and get a stream position); activity and sync times between
changes live in memory, so a busy user costs no write per message. `currently_active` tells
clients to treat an online user as active without further last_active updates (presence.md
§Last active ago); it ends with the switch to unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import presence as table
from dendrite_lite.storage import sync as sync_table
from dendrite_lite.storage.presence import PresenceRow
from dendrite_lite.sync.notifier import Notifier

if TYPE_CHECKING:
    from dendrite_lite.events.event import Event
    from dendrite_lite.federation.edus import EduFanout

__all__ = [
    "PresenceService",
    "ONLINE",
    "UNAVAILABLE",
    "OFFLINE",
    "STATES",
    "IDLE_MS",
    "SYNC_TIMEOUT_MS",
    "TIMEOUT_CHECK_S",
    "JoinPresenceHook",
]

log = logging.getLogger(__name__)

ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)
IDLE_MS = 5 * 60_000  # presence.md §Idle timeout: "e.g. 5 minutes"
# Longer than a client's long-poll timeout (usually 30 s) plus a retry, so a syncing client
# never flaps offline between two /syncs.
SYNC_TIMEOUT_MS = 90_000
TIMEOUT_CHECK_S = 15.0
# A join's presence exchange waits for the join's commit (polled) for at most this long.
JOIN_COMMIT_WAIT_S = 30.0
JOIN_POLL_S = 0.05
# A remote user's server tells us of every change; one not heard of for this long (the server
# is gone?) is shown offline rather than online forever.
REMOTE_TIMEOUT_MS = 30 * 60_000


class PresenceService:
    """Create with `await PresenceService.open(storage, notifier)`; `start()` runs the timeouts."""

    def __init__(
        self,
        storage: Storage,
        notifier: Notifier,
        *,
        position: int = 0,
        live: Iterable[PresenceRow] = (),
        clock: Callable[[], float] = time.time,
        edus: EduFanout | None = None,
    ) -> None:
        self._storage = storage
        self._notifier = notifier
        self._edus = edus  # our users' changes go to the servers sharing a room with them
        self._remote_seen: dict[str, int] = {}  # remote users not offline -> last update
        self._position = position
        self._clock = clock
        # Users not offline, as last written: the only ones timeouts can apply to.
        self._live: dict[str, PresenceRow] = {row.user_id: row for row in live}
        self._last_active: dict[str, int] = {}  # newer than the row's, not yet written
        # A restart is not the users' fault: give everyone online a full sync timeout.
        started = self._now()
        self._last_sync: dict[str, int] = {user: started for user in self._live}
        self._task: asyncio.Task[None] | None = None
        self._join_tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        # The timeout loop's last round (ms, and what it did), for the admin API's job list.
        self.last_check_ts: int | None = None
        self.last_check_result: str | None = None
        # Hears each stored change, local or remote: (user, m.presence content, the users who
        # see it). Application services' ephemeral events (MSC2409).
        self.on_change: Callable[[str, dict[str, Any], set[str]], None] | None = None

    @classmethod
    async def open(
        cls,
        storage: Storage,
        notifier: Notifier,
        *,
        clock: Callable[[], float] = time.time,
        edus: EduFanout | None = None,
    ) -> PresenceService:
        async def load(conn: aiosqlite.Connection) -> tuple[int, list[PresenceRow]]:
            return await table.select_max_stream_id(conn), await table.select_live_presence(conn)

        position, live = await storage.db.read(load)
        return cls(storage, notifier, position=position, live=live, clock=clock, edus=edus)

    def current_position(self) -> int:
        return self._position

    def _now(self) -> int:
        return int(self._clock() * 1000)

    # --- the presence API --------------------------------------------------------------------

    async def get_presence(self, requester: str, user_id: str) -> dict[str, Any]:
        """GET /_matrix/client/v3/presence/{userId}/status body.

        Visible to the user and to users sharing a room with them (presence.md §Security
        considerations); 403 M_FORBIDDEN for anyone else. No record yet means offline.
        """
        if requester != user_id:
            shared = await self._storage.db.read(
                lambda conn: table.select_share_a_room(conn, requester, user_id)
            )
            if not shared:
                raise MatrixError(Errcode.FORBIDDEN, "You are not allowed to see their presence.")
        row = await self._row(user_id)
        if row is None:
            return {"presence": OFFLINE}
        return self._content(row)

    async def set_presence(
        self, requester: str, user_id: str, presence: Any, status_msg: Any = None
    ) -> None:
        """PUT /_matrix/client/v3/presence/{userId}/status (raw body values)."""
        if requester != user_id:
            raise MatrixError(Errcode.FORBIDDEN, "You cannot set the presence of other users.")
        if presence not in STATES:
            raise MatrixError(Errcode.INVALID_PARAM, f"presence must be one of {', '.join(STATES)}")
        if status_msg is not None and not isinstance(status_msg, str):
            raise MatrixError(Errcode.BAD_JSON, "status_msg must be a string")
        now = self._now()
        self._last_active[user_id] = now
        self._last_sync.setdefault(user_id, now)
        async with self._lock(user_id):
            # "When setting the status, the activity time is updated."
            await self._write(user_id, presence, status_msg, now, presence == ONLINE)

    # --- hooks for /sync and activity ----------------------------------------------------------

    async def set_presence_from_sync(self, user_id: str, set_presence: str | None) -> None:
        """A /sync request's `set_presence` parameter (None when absent, which means online)."""
        if set_presence == OFFLINE:
            return
        now = self._now()
        self._last_sync[user_id] = now
        async with self._lock(user_id):
            row = await self._row(user_id)
            state = row.state if row is not None else OFFLINE
            msg = row.status_msg if row is not None else None
            if set_presence == UNAVAILABLE:
                if state != UNAVAILABLE:
                    await self._write(user_id, UNAVAILABLE, msg, self._active_ts(row), False)
            elif state == OFFLINE:
                self._last_active[user_id] = now
                await self._write(user_id, ONLINE, msg, now, True)

    async def bump_active(self, user_id: str) -> None:
        """The user did something pro-active (sent an event, a receipt, typed...)."""
        now = self._now()
        self._last_active[user_id] = now
        row = self._live.get(user_id)
        if row is not None and row.state == ONLINE and row.currently_active:
            return  # currently_active: clients need no update for the new activity time
        async with self._lock(user_id):
            row = await self._row(user_id)
            msg = row.status_msg if row is not None else None
            await self._write(user_id, ONLINE, msg, now, True)

    async def set_remote_presence(
        self,
        user_id: str,
        presence: str,
        *,
        last_active_ago: int,
        currently_active: bool,
        status_msg: str | None,
    ) -> None:
        """An m.presence EDU entry from the user's server (which the caller checked)."""
        if presence not in STATES:
            return
        active_ts = self._now() - max(0, last_active_ago)
        async with self._lock(user_id):
            await self._write(
                user_id, presence, status_msg, active_ts, currently_active, remote=True
            )

    # --- joins (federation) -------------------------------------------------------------------

    def joining(self, room_id: str, events: Sequence[Event]) -> None:
        """Events about to be persisted (JoinPresenceHook): joins make servers newly share the
        room, so once a join is committed they exchange the presence they would otherwise
        only hear of at the next change (EduFanout.presence_on_join)."""
        if self._edus is None or any(e.type == "m.room.create" for e in events):
            return  # a room being created has no other server in it yet
        joins = [
            e for e in events
            if e.type == "m.room.member" and e.membership == "join" and e.state_key
        ]
        if joins:
            task = asyncio.get_running_loop().create_task(self._share_on_join(room_id, joins))
            self._join_tasks.add(task)
            task.add_done_callback(self._join_tasks.discard)

    async def _share_on_join(self, room_id: str, joins: list[Event]) -> None:
        assert self._edus is not None
        try:
            last = joins[-1].event_id
            deadline = time.monotonic() + JOIN_COMMIT_WAIT_S
            while not await self._storage.db.read(lambda c: events_table.select_event(c, last)):
                if time.monotonic() > deadline:
                    return  # the transaction failed: no join happened
                await asyncio.sleep(JOIN_POLL_S)
            joiners = [e.state_key for e in joins if e.state_key]
            members = await self._storage.db.read(
                lambda conn: sync_table.select_users_sharing_rooms(conn, [room_id])
            )
            for joiner in joiners:
                await self._edus.presence_on_join(room_id, joiner, members, self._entries)
        except Exception:  # federation trouble never fails anything local
            log.exception("cannot send presence for joins in %s", room_id)

    async def _entries(self, user_ids: list[str]) -> list[dict[str, Any]]:
        """m.presence EDU entries for those of these users who are not offline."""
        rows = await self._storage.db.read(lambda conn: table.select_presence_since(conn, user_ids, 0))
        # The event content has the entry's fields (presence, last_active_ago, ...).
        return [{"user_id": row.user_id, **self._content(row)} for row in rows if row.state != OFFLINE]

    # --- reading (for /sync) -----------------------------------------------------------------

    async def presence_since(self, user_ids: Iterable[str], since: int) -> list[dict[str, Any]]:
        """m.presence events for these users' changes after `since`, oldest change first.

        `since` 0 (initial sync) leaves out users who are offline: absence means the same.
        """
        ids = sorted(set(user_ids))
        rows = await self._storage.db.read(lambda conn: table.select_presence_since(conn, ids, since))
        return [
            {"type": "m.presence", "sender": row.user_id, "content": self._content(row)}
            for row in rows
            if since > 0 or row.state != OFFLINE
        ]

    async def current_presence(self, user_ids: Iterable[str]) -> list[dict[str, Any]]:
        """m.presence events of these users as they are now, one each: offline users and users
        never seen included (for users newly sharing a room with the syncing user, who learn
        where they stand, as from Synapse)."""
        ids = sorted(set(user_ids))
        rows = await self._storage.db.read(lambda conn: table.select_presence_since(conn, ids, 0))
        by_user = {row.user_id: row for row in rows}
        return [
            {
                "type": "m.presence", "sender": user_id,
                "content": self._content(by_user[user_id]) if user_id in by_user else {"presence": OFFLINE},
            }
            for user_id in ids
        ]

    # --- timeouts ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="presence-timeouts")

    async def close(self) -> None:
        for task in list(self._join_tasks):
            task.cancel()
        await asyncio.gather(*self._join_tasks, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TIMEOUT_CHECK_S)
            self.last_check_ts = self._now()
            try:
                changed = await self.check_timeouts()
            except Exception as e:  # the loop must survive a failed round (e.g. database closing)
                log.exception("presence timeout check failed")
                self.last_check_result = f"failed: {e!r}"
            else:
                self.last_check_result = f"ok: {len(changed)} user(s) changed"

    async def check_timeouts(self) -> list[str]:
        """Apply the idle and sync timeouts now; returns the users whose state changed."""
        now = self._now()
        changed: list[str] = []
        for user_id, seen in list(self._remote_seen.items()):
            if now - seen > REMOTE_TIMEOUT_MS:
                async with self._lock(user_id):
                    if self._remote_seen.get(user_id) == seen:
                        await self._write(user_id, OFFLINE, None, seen, False, remote=True)
                        changed.append(user_id)
        for user_id, row in list(self._live.items()):
            active = self._active_ts(row)
            last_seen = max(active, self._last_sync.get(user_id, 0))
            new_state = None
            if now - last_seen > SYNC_TIMEOUT_MS:
                new_state = OFFLINE
            elif row.state == ONLINE and now - active > IDLE_MS:
                new_state = UNAVAILABLE
            if new_state is None:
                continue
            async with self._lock(user_id):
                current = self._live.get(user_id)
                if current is None or current.stream_id != row.stream_id:
                    continue  # changed while we looked
                await self._write(user_id, new_state, row.status_msg, active, False)
            changed.append(user_id)
        return changed

    # --- internals ---------------------------------------------------------------------------

    def _lock(self, user_id: str) -> asyncio.Lock:
        # Serialises read-decide-write per user (one small lock per user seen since start).
        lock = self._locks.get(user_id)
        if lock is None:
            lock = self._locks[user_id] = asyncio.Lock()
        return lock

    def _active_ts(self, row: PresenceRow | None) -> int:
        if row is None:
            return 0
        return max(row.last_active_ts, self._last_active.get(row.user_id, 0))

    async def _row(self, user_id: str) -> PresenceRow | None:
        row = self._live.get(user_id)
        if row is not None:
            return row
        return await self._storage.db.read(lambda conn: table.select_presence(conn, user_id))

    def _content(self, row: PresenceRow) -> dict[str, Any]:
        now = self._now()
        content: dict[str, Any] = {
            "presence": row.state,
            "last_active_ago": max(0, now - self._active_ts(row)),
            "currently_active": row.currently_active and row.state == ONLINE,
        }
        if row.status_msg is not None:
            content["status_msg"] = row.status_msg
        return content

    async def _write(
        self,
        user_id: str,
        state: str,
        status_msg: str | None,
        active_ts: int,
        currently_active: bool,
        *,
        remote: bool = False,
    ) -> None:
        async def write(conn: aiosqlite.Connection) -> tuple[PresenceRow, set[str]]:
            row = await table.upsert_presence(
                conn, user_id=user_id, state=state, status_msg=status_msg,
                last_active_ts=active_ts, currently_active=currently_active,
            )
            return row, await table.select_users_sharing_room(conn, user_id)

        row, audience = await self._storage.db.write(write)
        self._position = max(self._position, row.stream_id)
        if self.on_change is not None:
            self.on_change(user_id, self._content(row), audience | {user_id})
        if remote:
            if state == OFFLINE:
                self._remote_seen.pop(user_id, None)
            else:
                self._remote_seen[user_id] = self._now()
            self._notifier.notify(audience)
            return
        if state == OFFLINE:
            self._live.pop(user_id, None)
            self._last_active.pop(user_id, None)
            self._last_sync.pop(user_id, None)
        else:
            self._live[user_id] = row
        self._notifier.notify(audience | {user_id})
        if self._edus is not None:
            try:
                await self._edus.presence(
                    user_id, state, last_active_ago=max(0, self._now() - self._active_ts(row)),
                    currently_active=currently_active and state == ONLINE, status_msg=status_msg,
                )
            except Exception:  # federation trouble never fails the local change
                log.exception("cannot queue m.presence for %s", user_id)


class JoinPresenceHook:
    """The persist hook (pipeline and federation ingest) for PresenceService.joining: the hooks
    are fixed before the presence service exists, so this stands in until `service` is set."""

    def __init__(self) -> None:
        self.service: PresenceService | None = None

    async def prepare(self, room_id: str, events: Sequence[Event]) -> None:
        if self.service is not None:
            self.service.joining(room_id, events)
