"""Per-connection state of sliding sync: what one (user, device, conn_id) has been sent.

A `pos` is `<position>/<sync token>`: the position names the connection's record of what the
client holds (storage.sliding_sync), the sync token the stream positions the response reached.
Both live in the database, so a `pos` stays good across a restart. A position only changes when
what the client holds changes; a long-poll that times out hands back the same position with a
newer token.

What the client holds, per position:
- each room sent: up to where its timeline went, with which config, and what was sent of its
  account data and receipts (`StreamSent`, as Synapse's HaveSentRoom): a room that is out of
  every window while they change is owed those changes when it comes back (`SentStreams`, what
  the extensions read and record);
- each list's count, so a count that changes with nothing else to send (a room left outside the
  window) is news for a long-poll.

Expiry (400 M_UNKNOWN_POS, and the client starts again without `pos`): a `pos` of another
connection or one the connection moved past (once a client sends position N, the others are
deleted: older ones are no longer needed, newer ones never reached it), a connection replaced by
a request without `pos`, a connection idle for CONNECTION_TTL_MS, and the least recently used
beyond MAX_CONNECTIONS_PER_DEVICE.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.storage import sliding_sync as table
from dendrite_lite.storage.sliding_sync import SentRoom
from dendrite_lite.sync.sliding.required_state import RequiredState
from dendrite_lite.sync.tokens import SyncToken, parse_sliding_pos

__all__ = [
    "CONNECTION_TTL_MS",
    "LIVE",
    "MAX_CONNECTIONS_PER_DEVICE",
    "ConnectionState",
    "NewestRequests",
    "RoomSent",
    "SentStreams",
    "Stream",
    "StreamSent",
    "load_connection",
    "save_connection",
]

CONNECTION_TTL_MS = 7 * 24 * 3600 * 1000
# MSC4186 §Security: a device opening connection after connection (a conn_id per request) must
# not grow the database without end; Element X uses two.
MAX_CONNECTIONS_PER_DEVICE = 20

# What a connection sent of one room's account data or receipts:
# - None: nothing yet (all of it is due when the room comes into an extension's scope);
# - LIVE: everything up to the connection's previous response;
# - a stream position: everything up to there only; the room was out of every window when
#   later changes came, and they are still owed.
Stream = Literal["account_data", "receipts"]
LIVE: Literal["live"] = "live"
StreamSent = Literal["live"] | int | None


@dataclass(frozen=True, slots=True)
class RoomSent:
    """What the client holds of one room on this connection."""

    sent_to: int  # the room-stream position its timeline and state were sent up to
    timeline_limit: int
    required_state: RequiredState
    # Users whose member event was sent lazily
    lazy_members: frozenset[str] = frozenset()
    is_dm: bool = False  # as last sent (a change of m.direct is sent as a change)
    account_data: StreamSent = None
    receipts: StreamSent = None

    def streams_of(self, before: RoomSent | None) -> RoomSent:
        """This record with what `before` (the room's previous record) says was sent of its
        account data and receipts: sending the room again does not send those."""
        if before is None:
            return self
        return replace(self, account_data=before.account_data, receipts=before.receipts)


@dataclass(slots=True)
class ConnectionState:
    user_id: str
    device_id: str
    conn_id: str
    # None: a new connection, created when its first response is saved
    conn_key: int | None
    position: int | None
    since: SyncToken | None  # the streams the previous response reached
    rooms: dict[str, RoomSent] = field(default_factory=dict)
    # List name -> the count the client holds; None: unknown (a new connection, or a position
    # saved before counts were kept)
    lists_sent: dict[str, int] | None = None
    # The counts this response sends, saved with it
    lists: dict[str, int] = field(default_factory=dict)
    # What this response sends, saved with it
    changed: dict[str, RoomSent] = field(default_factory=dict)
    request_no: int = 0  # set by NewestRequests.start

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user_id, self.device_id, self.conn_id)

    @property
    def lists_changed(self) -> bool:
        """This response has a count the client does not hold: a list's count changed, or the
        list is new to the connection (one it no longer asks for is no news)."""
        if self.lists_sent is None:
            return False
        return any(self.lists_sent.get(name) != n for name, n in self.lists.items())

    def room(self, room_id: str) -> RoomSent | None:
        return self.changed.get(room_id) or self.rooms.get(room_id)


class NewestRequests:
    """The newest request of each connection (in memory). A client sends a connection's next
    request only after cancelling the one in flight, so an older request still running (its
    cancellation not seen yet) is abandoned: it must not save its response, or it would delete
    the position the newer one handed out and force the client into a full resync."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, str, str], int] = {}
        self._numbers = itertools.count(1)

    def start(self, state: ConnectionState) -> None:
        state.request_no = next(self._numbers)
        self._newest[state.key] = state.request_no

    def finish(self, state: ConnectionState) -> None:
        """Before saving the response: 400 M_UNKNOWN_POS if a newer request of the connection
        came meanwhile (the client is not listening to this one any more)."""
        if self._newest.get(state.key) != state.request_no:
            raise MatrixError(Errcode.UNKNOWN_POS, "A newer request replaced this one")
        del self._newest[state.key]


def _unknown_pos() -> MatrixError:
    return MatrixError(
        Errcode.UNKNOWN_POS, "Unknown or expired pos: start a new connection"
    )


async def load_connection(
    conn: aiosqlite.Connection,
    user_id: str,
    device_id: str,
    conn_id: str,
    pos: str | None,
    now_ms: int,
) -> ConnectionState:
    """The state a request continues from; 400 M_UNKNOWN_POS when `pos` cannot be continued."""
    if pos is None:
        return ConnectionState(user_id, device_id, conn_id, None, None, None)
    parsed = parse_sliding_pos(pos)
    if parsed is None:
        raise _unknown_pos()
    position, token = parsed
    found = await table.select_connection(conn, user_id, device_id, conn_id)
    if found is None or found.last_used_ts < now_ms - CONNECTION_TTL_MS:
        raise _unknown_pos()
    rows = await table.select_position_rooms(conn, found.conn_key, position)
    if rows is None:
        raise _unknown_pos()
    counts = await table.select_position_list_counts(conn, position)
    rooms = {room_id: _from_row(row) for room_id, row in rows.items()}
    return ConnectionState(
        user_id,
        device_id,
        conn_id,
        found.conn_key,
        position,
        token,
        rooms,
        _lists_from_json(counts) if counts is not None else None,
    )


async def save_connection(
    conn: aiosqlite.Connection, state: ConnectionState, now_ms: int
) -> int:
    """Record the response about to be sent; returns the position its `pos` names."""
    if state.conn_key is None:
        await table.delete_idle_connections(
            conn, state.user_id, now_ms - CONNECTION_TTL_MS
        )
        conn_key = await table.insert_connection(
            conn, state.user_id, state.device_id, state.conn_id, now_ms
        )
        await table.delete_excess_connections(
            conn, state.user_id, state.device_id, MAX_CONNECTIONS_PER_DEVICE
        )
        return await table.insert_position(
            conn, conn_key, None, _room_rows(state.changed), _lists_json(state.lists)
        )
    found = await table.select_connection(
        conn, state.user_id, state.device_id, state.conn_id
    )
    if found is None or found.conn_key != state.conn_key or state.position is None:
        raise _unknown_pos()  # replaced by a request without pos while this one ran
    await table.delete_other_positions(conn, state.conn_key, state.position)
    await table.update_last_used(conn, state.conn_key, now_ms)
    if not state.changed and state.lists == state.lists_sent:
        return state.position
    return await table.insert_position(
        conn, state.conn_key, state.position, _room_rows(state.changed), _lists_json(state.lists)
    )


def _from_row(row: SentRoom) -> RoomSent:
    data = json.loads(row.required_state)
    return RoomSent(
        row.sent_to,
        row.timeline_limit,
        RequiredState.from_json(data),
        frozenset(data.get("lazy_members", ())),
        bool(data.get("is_dm", False)),
        _stream_sent(data.get("account_data")),
        _stream_sent(data.get("receipts")),
    )


def _stream_sent(raw: object) -> StreamSent:
    if raw == LIVE:
        return LIVE
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _lists_from_json(raw: str) -> dict[str, int]:
    counts = json.loads(raw)
    return {k: v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}


def _lists_json(counts: dict[str, int]) -> str:
    return json.dumps(counts, separators=(",", ":"), sort_keys=True)


def _room_rows(rooms: dict[str, RoomSent]) -> list[SentRoom]:
    return [
        SentRoom(
            room_id,
            r.sent_to,
            r.timeline_limit,
            json.dumps(
                {
                    **r.required_state.to_json(),
                    "lazy_members": sorted(r.lazy_members),
                    "is_dm": r.is_dm,
                    **{
                        name: sent
                        for name, sent in (
                            ("account_data", r.account_data),
                            ("receipts", r.receipts),
                        )
                        if sent is not None
                    },
                },
                separators=(",", ":"),
            ),
        )
        for room_id, r in sorted(rooms.items())
    ]


class SentStreams:
    """What a connection sent of each room's account data and receipts, for the extensions that
    send them (as Synapse's per-connection RoomStatusMap): `status` says what the client holds,
    `record_sent` and `record_unsent` change it with the response being built."""

    def __init__(self, state: ConnectionState | None = None) -> None:
        self._state = state

    def status(self, stream: Stream, room_id: str) -> StreamSent:
        room = self._state.room(room_id) if self._state is not None else None
        return getattr(room, stream) if room is not None else None

    def live_rooms(self, stream: Stream) -> list[str]:
        """The rooms whose `stream` the client holds up to the previous response."""
        if self._state is None:
            return []
        return [
            r for r, sent in self._state.rooms.items() if getattr(sent, stream) == LIVE
        ]

    def record_sent(self, stream: Stream, room_ids: Iterable[str]) -> None:
        """This response brings the client up to date on these rooms."""
        self._set(stream, room_ids, lambda sent: LIVE)

    def record_unsent(self, stream: Stream, room_ids: Iterable[str], upto: int) -> None:
        """These rooms had changes up to this response that it does not send: the client holds
        them up to `upto` (the previous response) only, unless it was already behind."""
        self._set(stream, room_ids, lambda sent: upto if sent == LIVE else sent)

    def _set(
        self,
        stream: Stream,
        room_ids: Iterable[str],
        new: Callable[[StreamSent], StreamSent],
    ) -> None:
        if self._state is None:
            return
        for room_id in room_ids:
            room = self._state.room(room_id)
            if room is None:  # never sent: nothing to remember of it
                continue
            value = new(getattr(room, stream))
            if value != getattr(room, stream):
                self._state.changed[room_id] = replace(room, **{stream: value})
