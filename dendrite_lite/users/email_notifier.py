"""Email notifications: the mailer of "email" pushers (push.md §Pushers, kind "email"; set by
users/pushers.py). For each email pusher it reads its user's notifications after the pusher's
position (the rows GET /notifications lists, read or unread by the same receipts), lets
push/email_schedule.py decide whether to mail (the delay, the per-room throttle), has
push/email_digest.py write the mail, sends it, and only then moves the position on.
What keeps it right:
- a restart neither loses nor re-sends: the position and the rooms' last mails are in the
  database (migration 0040), moved in one transaction once the SMTP server took the mail; only a
  crash between those two would mail again (better twice than never);
- the mail server being down keeps everything where it was, and the pass is retried later;
  a refused address is logged and passed over, so one bad address does not loop;
- it runs when something may have fallen due: `delay` after a notification for a user with a
  pusher was queued (`wake`, from the unread count hook), at the soonest due time the last
  pass found, and at start (what fell due while stopped);
- only rooms the user is joined to (notifications after their current join) or invited to (the
  invite itself) count, as for the unread counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiosqlite

from dendrite_lite.config import EmailConfig
from dendrite_lite.push.email_digest import (
    MAX_LINES,
    Mail,
    RoomDigest,
    message_line,
    render_mail,
    room_link,
    room_name,
)
from dendrite_lite.push.email_schedule import Pending, plan
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import email_pushers as table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.storage import notifications as notifications_table
from dendrite_lite.storage import state as state_table
from dendrite_lite.storage.email_pushers import EmailPusher
from dendrite_lite.storage.notifications import NotificationRow
from dendrite_lite.users.accounts import default_displayname
from dendrite_lite.users.email_sender import EmailRefused, EmailSender, EmailUnavailable

__all__ = ["UNSUBSCRIBE_PATH", "EmailNotifier"]

log = logging.getLogger(__name__)

UNSUBSCRIBE_PATH = "/_dendrite_lite/client/email/unsubscribe"
BATCH = 500  # notifications read per pusher and pass
RETRY_S = 300.0  # after a failed pass (the mail server is down, say)


@dataclass(frozen=True, slots=True)
class _Found:
    rows: list[NotificationRow]
    pending: list[Pending]
    last_sent: dict[str, int]


class EmailNotifier:
    def __init__(
        self,
        storage: Storage,
        sender: EmailSender,
        config: EmailConfig,
        *,
        server_name: str,
        public_baseurl: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._sender = sender
        self._server_name = server_name
        self._unsubscribe_base = public_baseurl.rstrip("/") + UNSUBSCRIBE_PATH
        self._client_base_url = config.client_base_url
        self._delay_ms = int(config.notif_delay_minutes * 60_000)
        self._throttle_ms = int(config.notif_throttle_minutes * 60_000)
        self._clock = clock
        self._due: float | None = None  # when the next pass runs (clock seconds)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_run_ts: int | None = None  # ms, for the admin API's job list
        self.last_result: str | None = None

    @property
    def next_run_ts(self) -> int | None:
        return int(self._due * 1000) if self._due is not None else None

    def wake(self) -> None:
        """A notification was queued for a user with a pusher: it may fall due `delay` on."""
        self._schedule(self._clock() + self._delay_ms / 1000)

    def start(self) -> None:
        self._schedule(self._clock())
        self._task = asyncio.get_running_loop().create_task(self._run(), name="email-notifier")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _schedule(self, at: float) -> None:
        if self._due is None or at < self._due:
            self._due = at
            self._wake.set()

    async def _run(self) -> None:
        while True:
            timeout = None if self._due is None else max(0.0, self._due - self._clock())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._due is None or self._clock() < self._due:
                continue
            self._due = None
            try:
                next_due = await self.run_once()
            except Exception as e:  # the pass is retried: nothing moved
                self.last_result = f"failed: {e}"
                log.exception("email notifications: pass failed")
                next_due = self._clock() + RETRY_S
            if next_due is not None:
                self._schedule(next_due)

    async def run_once(self) -> float | None:
        """One pass over every email pusher; when the next is due (clock seconds), if any."""
        now = self._clock()
        pushers = await self._storage.db.read(table.select_email_pushers)
        dues: list[float] = []
        mailed = 0
        for pusher in pushers:
            try:
                sent, due_ms = await self._process(pusher, int(now * 1000))
            except Exception:  # one pusher's trouble holds up no other's mail
                log.exception("email notifications to %s failed; retried later", pusher.pushkey)
                sent, due_ms = 0, int((now + RETRY_S) * 1000)
            mailed += sent
            if due_ms is not None:
                dues.append(due_ms / 1000)
        self.last_run_ts = int(now * 1000)
        self.last_result = f"ok: {mailed} mail(s) to {len(pushers)} address(es)"
        return min(dues, default=None)

    async def _process(self, pusher: EmailPusher, now_ms: int) -> tuple[int, int | None]:
        """Mail this pusher what is due: (mails sent, when its next notification is due)."""
        found = await self._storage.db.read(lambda conn: _find(conn, pusher))
        decided = plan(
            found.pending, found.last_sent, now_ms=now_ms, delay_ms=self._delay_ms,
            throttle_ms=self._throttle_ms,
        )
        next_due = decided.next_due_ms
        if len(found.rows) == BATCH and decided.position is not None:
            next_due = now_ms  # more rows than one read: go on at once
        if not decided.mail:
            if decided.position is not None:
                await self._storage.db.write(
                    lambda conn: table.update_position(conn, pusher.key, decided.position or 0)
                )
            return 0, next_due
        wanted = {p.stream_ordering for p in decided.mail}
        rows = [r for r in found.rows if r.stream_ordering in wanted]
        mail = await self._storage.db.read(lambda conn: self._compose(conn, pusher, rows))
        try:
            await self._sender.send(
                pusher.pushkey, mail.subject, mail.text, html=mail.html,
                headers={"List-Unsubscribe": f"<{self._unsubscribe_link(pusher)}>",
                         "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            )
        except EmailUnavailable:
            return 0, now_ms + int(RETRY_S * 1000)  # logged by the sender; nothing moves
        except EmailRefused:
            log.warning("email notifications to %s refused: passed over", pusher.pushkey)
        rooms = {r.room_id for r in rows}
        position = decided.position or 0
        await self._storage.db.write(
            lambda conn: table.update_mailed(conn, pusher.key, position, rooms, now_ms)
        )
        return 1, next_due

    def _unsubscribe_link(self, pusher: EmailPusher) -> str:
        query = urllib.parse.urlencode({"token": pusher.unsubscribe_token})
        return f"{self._unsubscribe_base}?{query}"

    async def _compose(
        self, conn: aiosqlite.Connection, pusher: EmailPusher, rows: Sequence[NotificationRow]
    ) -> Mail:
        events = await events_table.select_events(conn, [r.event_id for r in rows])
        by_room: dict[str, list[NotificationRow]] = {}
        for row in reversed(rows):  # newest room first
            by_room.setdefault(row.room_id, []).insert(0, row)
        digests = []
        for room_id, room_rows in by_room.items():
            names = _Names(conn, room_id)
            shown = [events[r.event_id].event for r in room_rows if r.event_id in events]
            invite = next((
                e for e in shown if e.type == "m.room.member" and e.state_key == pusher.user_id
                and e.content.get("membership") == "invite"
            ), None)
            lines = [
                message_line(await names.of(e.sender), e.type, e.content)
                for e in shown[-MAX_LINES:] if e is not invite
            ]
            digests.append(RoomDigest(
                await names.room(pusher.user_id), room_link(self._client_base_url, room_id),
                lines, more=max(0, len(shown) - MAX_LINES),
                invited_by=await names.of(invite.sender) if invite is not None else None,
            ))
        account = await accounts_table.select_account(conn, pusher.user_id)
        user_name = (account.displayname if account else None) or default_displayname(pusher.user_id)
        brand = pusher.data.get("brand")
        return render_mail(
            brand=brand if isinstance(brand, str) and brand else self._server_name,
            server_name=self._server_name, user_name=user_name, address=pusher.pushkey,
            rooms=digests, unsubscribe_link=self._unsubscribe_link(pusher),
        )


async def _find(conn: aiosqlite.Connection, pusher: EmailPusher) -> _Found:
    """The pusher's notifications after its position, each marked read when its receipt covers
    it or it is not the user's to be told about (see the module docstring)."""
    user_id = pusher.user_id
    memberships = await history_table.select_current_memberships(conn, user_id)
    rooms = sorted(r for r, m in memberships.items() if m[0] in ("join", "invite"))
    rows = await notifications_table.select_notifications_after(
        conn, user_id, rooms, after=pusher.last_stream_ordering, limit=BATCH
    )
    joins = {
        room_id: await _joined_at(conn, room_id, user_id)
        for room_id in {r.room_id for r in rows} if memberships[room_id][0] == "join"
    }

    def counts(row: NotificationRow) -> bool:
        membership, _, at = memberships[row.room_id]
        return row.stream_ordering == at if membership == "invite" else (
            row.stream_ordering > joins[row.room_id]
        )

    pending = [
        Pending(r.room_id, r.stream_ordering, r.origin_server_ts, r.read or not counts(r))
        for r in rows
    ]
    last_sent = await table.select_room_last_sent(conn, pusher.key)
    return _Found(rows, pending, last_sent)


async def _joined_at(conn: aiosqlite.Connection, room_id: str, user_id: str) -> int:
    """The user's current join: the first join since their last other membership (a profile
    change is a join too, and is not a new join)."""
    joined_at = 0
    for position, membership in await history_table.select_membership_changes(conn, room_id, user_id):
        if membership != "join":
            joined_at = 0
        elif not joined_at:
            joined_at = position
    return joined_at


class _Names:
    """Display names in one room, from its current state, each read once."""

    def __init__(self, conn: aiosqlite.Connection, room_id: str) -> None:
        self._conn = conn
        self._room_id = room_id
        self._cache: dict[str, str] = {}

    async def _state_text(self, event_type: str, state_key: str, key: str) -> str | None:
        event_id = await state_table.select_current_state_event_id(
            self._conn, self._room_id, event_type, state_key
        )
        stored = await events_table.select_event(self._conn, event_id) if event_id else None
        value = stored.event.content.get(key) if stored is not None else None
        return value if isinstance(value, str) and value.strip() else None

    async def of(self, user_id: str) -> str:
        if user_id not in self._cache:
            name = await self._state_text("m.room.member", user_id, "displayname")
            self._cache[user_id] = name or default_displayname(user_id)
        return self._cache[user_id]

    async def room(self, user_id: str) -> str:
        name = await self._state_text("m.room.name", "", "name")
        alias = await self._state_text("m.room.canonical_alias", "", "alias")
        if name or alias:
            return room_name(name, alias, [])
        joined = await state_table.select_joined_profiles(self._conn, self._room_id)
        others = [n or default_displayname(u) for u, n, _ in joined if u != user_id]
        return room_name(None, None, others)
