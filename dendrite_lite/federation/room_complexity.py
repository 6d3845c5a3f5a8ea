"""Room complexity: how heavy a room is to join, so that a small server can refuse the giants.

Joining a room means downloading, checking and storing its whole current state: for
#matrix:matrix.org that is 100k+ events, hours of CPU and most of the memory of a Raspberry Pi
while everyone else's chat stalls. Synapse's `limit_remote_rooms` measures a room by its state and
refuses rooms over a limit; we use the same measure and the same (unstable) endpoint, so each
side's limit works against the other:

- The measure is Synapse's "v1": current state events / 500, rounded to two places.
- We answer GET /_matrix/federation/unstable/rooms/{roomId}/complexity only for a room we are in
  whose join rule is public or whose history is world_readable, 404 M_NOT_FOUND otherwise (as
  Synapse: a private room's size is nobody's business).
- Before a remote join the first candidate server that answers decides. None answering (a server
  without the endpoint, a private room, nobody reachable) lets the join go ahead, and the room is
  measured again once joined: too heavy, and our user leaves it at once (as Synapse). The download
  was paid, but not the room's traffic from then on.
- Refused: 400 M_RESOURCE_LIMIT_EXCEEDED (Synapse's status and errcode), with a message the user
  sees in their client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import aiosqlite

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.acl import check_server_acl
from dendrite_lite.federation.client import FederationClient, FederationError
from dendrite_lite.federation.membership_events import is_resident
from dendrite_lite.storage import Storage
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import events as events_table
from dendrite_lite.storage import state as state_table

__all__ = ["ComplexityLimit", "RoomComplexity", "complexity_v1", "too_complex"]

log = logging.getLogger(__name__)

STATE_EVENTS_PER_UNIT = 500  # Synapse's v1 scale: complexity 1.0 = 500 state events
# A resident server answers from one COUNT; an unreachable one must not hold the join up long.
_ASK_TIMEOUT_S = 10.0
_MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ComplexityLimit:
    """federation.max_room_complexity (0 = no limit) and room_complexity_admins_can_join."""

    max_complexity: float = 0.0
    admins_can_join: bool = False


def complexity_v1(state_events: int) -> float:
    return round(state_events / STATE_EVENTS_PER_UNIT, 2)


def too_complex(complexity: float, limit: float) -> MatrixError:
    return MatrixError(
        Errcode.RESOURCE_LIMIT_EXCEEDED,
        f"This room is too large for this server to join (about "
        f"{round(complexity * STATE_EVENTS_PER_UNIT):,} state events; this server joins rooms of "
        f"up to {round(limit * STATE_EVENTS_PER_UNIT):,}). Please speak to your server "
        f"administrator: federation.max_room_complexity in its configuration sets the limit.",
        status=400,
    )


async def _is_public(conn: aiosqlite.Connection, room_id: str) -> bool:
    """Public join rule or world_readable history (Synapse's
    is_room_world_readable_or_publicly_joinable)."""
    wanted = {
        "m.room.join_rules": ("join_rule", "public"),
        "m.room.history_visibility": ("history_visibility", "world_readable"),
    }
    for event_type, (key, open_value) in wanted.items():
        event_id = await state_table.select_current_state_event_id(conn, room_id, event_type, "")
        stored = await events_table.select_event(conn, event_id) if event_id else None
        if stored is not None and stored.event.content.get(key) == open_value:
            return True
    return False


class RoomComplexity:
    def __init__(
        self, storage: Storage, *, server_name: str, client: FederationClient | None,
        limit: ComplexityLimit,
    ) -> None:
        self._storage = storage
        self._server_name = server_name
        self._client = client
        self.limit = limit

    # --- answering other servers ------------------------------------------------------------
    async def answer(self, origin: str, room_id: str) -> dict[str, float]:
        """GET /unstable/rooms/{roomId}/complexity: {"v1": ...}; 404 M_NOT_FOUND unless we are
        in the room and it is public or world_readable."""
        if not await is_resident(self._storage, room_id, self._server_name):
            raise MatrixError(Errcode.NOT_FOUND, f"Room {room_id} not found")
        await check_server_acl(self._storage, room_id, origin)
        if not await self._storage.db.read(lambda c: _is_public(c, room_id)):
            raise MatrixError(Errcode.NOT_FOUND, f"Room {room_id} not found")
        return {"v1": await self.local(room_id)}

    async def local(self, room_id: str) -> float:
        count = await self._storage.db.read(
            lambda c: state_table.select_current_state_count(c, room_id)
        )
        return complexity_v1(count)

    # --- our users joining other servers' rooms ---------------------------------------------
    async def remote(self, room_id: str, servers: Sequence[str]) -> float | None:
        """The first answer of `servers`, asked in order; None when none answers."""
        if self._client is None:
            return None
        path = f"/_matrix/federation/unstable/rooms/{quote(room_id, safe='')}/complexity"
        for server in servers:
            try:
                answer = await self._client.get_json(
                    server, path, timeout_s=_ASK_TIMEOUT_S, max_response_bytes=_MAX_ANSWER_BYTES
                )
            except FederationError as e:
                log.debug("room complexity of %s via %s: %s", room_id, server, e)
                continue
            v1 = answer.get("v1") if isinstance(answer, dict) else None
            if isinstance(v1, (int, float)) and not isinstance(v1, bool):
                return float(v1)
        return None

    async def _applies_to(self, user_id: str) -> bool:
        if self.limit.max_complexity <= 0:
            return False
        if not self.limit.admins_can_join:
            return True
        account = await self._storage.db.read(lambda c: accounts_table.select_account(c, user_id))
        return account is None or not account.is_admin

    async def check_before_join(self, user_id: str, room_id: str, servers: Sequence[str]) -> bool:
        """Raise 400 M_RESOURCE_LIMIT_EXCEEDED when a resident server says the room is over the
        limit for `user_id`. Returns whether to measure the room again once joined (nobody
        answered)."""
        if not await self._applies_to(user_id):
            return False
        complexity = await self.remote(room_id, servers)
        if complexity is None:
            return True
        if complexity > self.limit.max_complexity:
            log.info("%s may not join %s: complexity %s over %s", user_id, room_id,
                     complexity, self.limit.max_complexity)
            raise too_complex(complexity, self.limit.max_complexity)
        return False

    async def refusal_after_join(self, room_id: str) -> MatrixError | None:
        """The error to leave the just-joined room with, if it is over the limit."""
        complexity = await self.local(room_id)
        if complexity > self.limit.max_complexity > 0:
            log.info("leaving %s: complexity %s over %s once joined", room_id, complexity,
                     self.limit.max_complexity)
            return too_complex(complexity, self.limit.max_complexity)
        return None
