"""Sliding sync extensions: to_device (MSC3885), e2ee (MSC3884), account_data (MSC3959),
receipts (MSC3960) and typing (MSC3961), each built from the same services /sync uses.

What each sends, and when it is news (worth answering a long-poll for):
- to_device: the device's messages after `since` (the `next_batch` the client last got), at
  most `limit` (100), after deleting those `since` acknowledges; news when there are messages. The body always carries a
  `next_batch`, so a client can acknowledge what it got.
- e2ee: the device's one-time key counts and unused fallback key types on every response
  (clients top their keys up from them); on a connection's later requests also device_lists
  changed/left since its previous response; news only when a device list changed.
- account_data: global data written since the connection's previous response (everything, and
  m.push_rules, on its first); for the rooms in scope, all of a room's data the first time the
  connection has it in scope, then what was written since it last sent the room's.
- receipts: for the rooms in scope, receipts written since the connection last sent the room's;
  for a room sent `initial` (or with an expanded timeline), or whose receipts it never sent, the
  receipts on its timeline events plus the user's own, as an initial /sync would give with that
  timeline.
- typing: for the rooms in scope, who types now in those whose typing changed since.

Scope (`lists`, `rooms` in an extension's request, both ["*"] when absent): the rooms in the
named lists' windows ("*": every list) and the named room subscriptions ("*": all of them).
Receipts and typing only ever come from rooms the user is joined to now.

A room out of scope (no list's window holds it, no subscription names it) gets nothing, but what
changed of its account data or receipts meanwhile is remembered with the connection and sent when
it is back in scope (as Synapse's per-connection HaveSentRoom: `ExtensionContext.sent`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dendrite_lite.e2ee.to_device import MAX_PER_SYNC
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.storage import history as history_table
from dendrite_lite.sync.sliding.connection import LIVE, SentStreams, Stream
from dendrite_lite.sync.sliding.service import (
    Extension,
    ExtensionAnswer,
    ExtensionContext,
)

if TYPE_CHECKING:
    from dendrite_lite.e2ee.sync_extensions import E2eeSync
    from dendrite_lite.rooms.receipts import ReceiptsService
    from dendrite_lite.rooms.typing import TypingService
    from dendrite_lite.users.account_data import AccountDataService

__all__ = [
    "AccountDataExtension",
    "E2eeExtension",
    "ReceiptsExtension",
    "ToDeviceExtension",
    "TypingExtension",
    "scoped_rooms",
    "sliding_extensions",
]

ALL = "*"


def _enabled(ctx: ExtensionContext) -> bool:
    return ctx.config.get("enabled") is True


def _names(ctx: ExtensionContext, key: str) -> Sequence[str]:
    value = ctx.config.get(key, [ALL])
    if value is None:
        return [ALL]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError(Errcode.INVALID_PARAM, f"extensions.*.{key} must be a list of strings")
    return value


def scoped_rooms(ctx: ExtensionContext) -> list[str]:
    """The rooms an extension's `lists` and `rooms` pick, in a stable order."""
    picked: dict[str, None] = {}
    lists = _names(ctx, "lists")
    for name, room_ids in ctx.list_rooms.items():
        if ALL in lists or name in lists:
            picked.update(dict.fromkeys(room_ids))
    rooms = _names(ctx, "rooms")
    for room_id in ctx.subscribed_rooms:
        if ALL in rooms or room_id in rooms:
            picked[room_id] = None
    return list(picked)


def _sent_afresh(room: Mapping[str, Any]) -> bool:
    """A room this response sends as new to the client (`initial`), or whose timeline reaches
    further back than before."""
    return bool(room.get("initial") or room.get("unstable_expanded_timeline"))


def _by_status(
    ctx: ExtensionContext,
    stream: Stream,
    room_ids: Iterable[str],
    afresh: Callable[[str], bool] = lambda room_id: False,
) -> tuple[list[str], list[str], dict[int, list[str]]]:
    """The rooms whose `stream` the connection never sent (or, by `afresh`, is to send again
    from scratch), those it sent up to its previous response, and those it sent only up to an
    older position (position -> rooms)."""
    never: list[str] = []
    live: list[str] = []
    behind: dict[int, list[str]] = {}
    for room_id in room_ids:
        status = ctx.sent.status(stream, room_id) if ctx.since is not None else None
        if status is None or afresh(room_id):
            never.append(room_id)
        elif status == LIVE:
            live.append(room_id)
        else:
            behind.setdefault(status, []).append(room_id)
    return never, live, behind


class ToDeviceExtension:
    name = "to_device"

    def __init__(self, e2ee: E2eeSync) -> None:
        self._e2ee = e2ee

    async def build(self, ctx: ExtensionContext) -> ExtensionAnswer | None:
        if not _enabled(ctx):
            return None
        device_id = ctx.request.device_id
        since = _since(ctx.config.get("since"))
        if device_id is None:  # an appservice user without a device: nothing is addressed here
            return ExtensionAnswer({"next_batch": str(ctx.now.to_device), "events": []}, news=False)
        if since > ctx.now.to_device:  # a position from the future: keep it, send nothing
            return ExtensionAnswer({"next_batch": str(since), "events": []}, news=False)
        delivery = await self._e2ee.deliver_to_device(
            ctx.request.user_id, device_id, since, ctx.now.to_device, _limit(ctx.config.get("limit"))
        )
        body = {"next_batch": str(delivery.last_position), "events": delivery.events}
        return ExtensionAnswer(body, news=bool(delivery.events))


def _limit(raw: Any) -> int:
    """MSC3885's `limit`: 100 when absent, never more (send_to_device.md's recommended most)."""
    if raw is None:
        return MAX_PER_SYNC
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return min(raw, MAX_PER_SYNC)
    raise MatrixError(Errcode.INVALID_PARAM, "extensions.to_device.limit must be a positive integer")


def _since(raw: Any) -> int:
    if raw is None:
        return 0
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 19:
        return int(raw)
    raise MatrixError(Errcode.INVALID_PARAM, "extensions.to_device.since must be a next_batch it sent")


class E2eeExtension:
    name = "e2ee"

    def __init__(self, e2ee: E2eeSync) -> None:
        self._e2ee = e2ee

    async def build(self, ctx: ExtensionContext) -> ExtensionAnswer | None:
        if not _enabled(ctx):
            return None
        user_id, device_id = ctx.request.user_id, ctx.request.device_id
        body: dict[str, Any] = {
            "device_one_time_keys_count": {}, "device_unused_fallback_key_types": [],
        }
        if device_id is not None:
            body.update(await self._e2ee.key_counts(user_id, device_id))
        news = False
        if ctx.since is not None:
            lists = await self._e2ee.device_list_changes(user_id, ctx.since, ctx.now)
            body["device_lists"] = lists.to_json()
            news = bool(lists.changed or lists.left)
        return ExtensionAnswer(body, news=news)


class AccountDataExtension:
    name = "account_data"

    def __init__(self, account_data: AccountDataService) -> None:
        self._account_data = account_data

    async def build(self, ctx: ExtensionContext) -> ExtensionAnswer | None:
        if not _enabled(ctx):
            return None
        user_id = ctx.request.user_id
        since = ctx.since.account_data if ctx.since is not None else 0
        until = ctx.now.account_data
        scope = scoped_rooms(ctx)
        global_data: Mapping[str, Any] = {}
        changed: Mapping[str, Mapping[str, Any]] = {}
        if since < until or ctx.since is None:
            global_data, changed = await self._account_data.changes_since(user_id, since, until)
        never, live, behind = _by_status(ctx, "account_data", scope)
        by_room = {r: changed[r] for r in live if r in changed}
        if never and ctx.since is None:
            by_room.update((r, changed[r]) for r in never if r in changed)  # all of it
        elif never:
            _, everything = await self._account_data.changes_since(user_id, 0, until)
            by_room.update((r, everything[r]) for r in never if r in everything)
        for position, rooms in behind.items():
            if position < until:
                _, owed = await self._account_data.changes_since(user_id, position, until)
                by_room.update((r, owed[r]) for r in rooms if r in owed)
        ctx.sent.record_sent("account_data", [*never, *(r for g in behind.values() for r in g)])
        if ctx.since is not None:
            ctx.sent.record_unsent("account_data", set(changed) - set(scope), since)
        body = {
            "global": _events(global_data),
            "rooms": {room_id: _events(data) for room_id, data in by_room.items()},
        }
        return ExtensionAnswer(body, news=bool(global_data or by_room))


def _events(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"type": data_type, "content": content} for data_type, content in data.items()]


async def _joined(storage: Storage, user_id: str, room_ids: Sequence[str]) -> list[str]:
    if not room_ids:
        return []
    memberships = await storage.db.read(
        lambda conn: history_table.select_current_memberships(conn, user_id, room_ids)
    )
    return [r for r in room_ids if memberships.get(r, ("",))[0] == "join"]


class ReceiptsExtension:
    name = "receipts"

    def __init__(self, storage: Storage, receipts: ReceiptsService) -> None:
        self._storage = storage
        self._receipts = receipts

    async def build(self, ctx: ExtensionContext) -> ExtensionAnswer | None:
        if not _enabled(ctx):
            return None
        user_id = ctx.request.user_id
        scope = scoped_rooms(ctx)
        rooms = await _joined(self._storage, user_id, scope)
        # A room sent afresh gets the receipts an initial sync would give with its timeline.
        fresh, live, behind = _by_status(
            ctx, "receipts", rooms, lambda r: _sent_afresh(ctx.rooms.get(r, {}))
        )
        now = ctx.now.receipts
        out: dict[str, Any] = {}
        if live and ctx.since is not None and ctx.since.receipts < now:
            changed = await self._receipts.receipts_since(live, ctx.since.receipts, now, user_id)
            out.update((r, _receipt_event(content)) for r, content in changed.items())
        for position, group in behind.items():
            if position < now:
                owed = await self._receipts.receipts_since(group, position, now, user_id)
                out.update((r, _receipt_event(content)) for r, content in owed.items())
        if fresh:
            current = await self._receipts.receipts_since(fresh, 0, now, user_id)
            for room_id, content in current.items():
                kept = _on_timeline(content, ctx.rooms.get(room_id, {}), user_id)
                if kept:
                    out[room_id] = _receipt_event(kept)
        ctx.sent.record_sent("receipts", [*fresh, *(r for g in behind.values() for r in g)])
        if ctx.since is not None and ctx.since.receipts < now:
            await self._record_unsent(ctx.sent, set(scope), ctx.since.receipts, now, user_id)
        return ExtensionAnswer({"rooms": out}, news=bool(out))

    async def _record_unsent(
        self, sent: SentStreams, scope: set[str], since: int, now: int, user_id: str
    ) -> None:
        """Rooms the client was up to date on, out of scope now, whose receipts changed: it
        holds them up to `since` only."""
        out_of_scope = [r for r in sent.live_rooms("receipts") if r not in scope]
        if out_of_scope:
            changed = await self._receipts.receipts_since(out_of_scope, since, now, user_id)
            sent.record_unsent("receipts", changed, since)


def _receipt_event(content: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "m.receipt", "content": content}


def _on_timeline(
    content: Mapping[str, Any], room: Mapping[str, Any], user_id: str
) -> dict[str, Any]:
    """The receipts of an m.receipt content that are on the room's timeline events, or the
    user's own."""
    on_timeline = {ev.get("event_id") for ev in room.get("timeline", ())}
    kept: dict[str, Any] = {}
    for event_id, by_type in content.items():
        for receipt_type, by_user in by_type.items():
            users = {
                u: r for u, r in by_user.items() if event_id in on_timeline or u == user_id
            }
            if users:
                kept.setdefault(event_id, {})[receipt_type] = users
    return kept


class TypingExtension:
    name = "typing"

    def __init__(self, storage: Storage, typing: TypingService) -> None:
        self._storage = storage
        self._typing = typing

    async def build(self, ctx: ExtensionContext) -> ExtensionAnswer | None:
        if not _enabled(ctx):
            return None
        since = ctx.since.typing if ctx.since is not None else 0
        out: dict[str, Any] = {}
        if ctx.since is None or since < ctx.now.typing:
            rooms = await _joined(self._storage, ctx.request.user_id, scoped_rooms(ctx))
            for room_id, user_ids in (await self._typing.typing_since(rooms, since)).items():
                # A first response has no typing to stop: only who types now matters.
                if user_ids or ctx.since is not None:
                    out[room_id] = {"type": "m.typing", "content": {"user_ids": user_ids}}
        return ExtensionAnswer({"rooms": out}, news=bool(out))


def sliding_extensions(
    storage: Storage,
    *,
    e2ee: E2eeSync | None,
    account_data: AccountDataService,
    receipts: ReceiptsService,
    typing: TypingService,
) -> list[Extension]:
    """Every extension this server offers, for SlidingSyncService."""
    found: list[Extension] = [
        AccountDataExtension(account_data),
        ReceiptsExtension(storage, receipts),
        TypingExtension(storage, typing),
    ]
    if e2ee is not None:
        found += [ToDeviceExtension(e2ee), E2eeExtension(e2ee)]
    return found
