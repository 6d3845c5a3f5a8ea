"""Transactions other servers push to us (PUT /_matrix/federation/v1/send/{txnId};
server-server-api.md §Transactions).

- Shape: `pdus` a list of at most 50, `edus` (optional) a list of at most 100, `origin` equal
  to the server that signed the request; otherwise 400 M_BAD_JSON / 403 M_FORBIDDEN, and
  nothing is processed or remembered (a fixed retry may reuse the txn id).
- Idempotent: the answer is stored under (origin, txnId); a repeat gets it back without being
  processed again. A repeat arriving while the first is still being processed (the sender timed
  out and retried) waits for that same answer.
- Fair: one origin's transactions are processed one at a time, in arrival order; more than
  MAX_PENDING_PER_ORIGIN waiting from one origin are refused with 429, so a flood from one
  server occupies one worker and cannot starve the others.
- PDUs go to the inbound pipeline (federation/ingest.py) except those for rooms whose server ACL
  denies the origin (reported in the answer); then EDUs go to federation/inbound_edus.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import compute_event_id
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.federation.acl import room_acl, server_allowed
from dendrite_lite.federation.inbound_edus import InboundEdus
from dendrite_lite.storage import Storage
from dendrite_lite.storage import inbound_txns as txns_table
from dendrite_lite.storage import rooms as rooms_table

__all__ = [
    "TransactionReceiver",
    "PduReceiver",
    "MAX_PDUS",
    "MAX_EDUS",
    "MAX_PENDING_PER_ORIGIN",
]

log = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
MAX_PENDING_PER_ORIGIN = 4
KEEP_ANSWERS_MS = 24 * 3600 * 1000  # senders retry for hours, not days
_CLEANUP_EVERY_MS = 3600 * 1000


class PduReceiver(Protocol):
    """federation.ingest.FederationIngest"""

    async def receive_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, dict[str, str]]: ...


def _check_shape(origin: str, body: Any) -> tuple[list[Any], list[Any]]:
    if not isinstance(body, Mapping):
        raise MatrixError(Errcode.BAD_JSON, "transaction must be an object")
    pdus = body.get("pdus")
    edus = body.get("edus", [])
    if not isinstance(pdus, list):
        raise MatrixError(Errcode.BAD_JSON, "pdus must be a list")
    if edus is None:
        edus = []
    if not isinstance(edus, list):
        raise MatrixError(Errcode.BAD_JSON, "edus must be a list")
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise MatrixError(
            Errcode.BAD_JSON, f"a transaction has at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"
        )
    if body.get("origin", origin) != origin:
        raise MatrixError(Errcode.FORBIDDEN, "transaction origin does not match the signing server")
    return pdus, edus


class TransactionReceiver:
    def __init__(
        self,
        storage: Storage,
        pdus: PduReceiver | None,
        edus: InboundEdus,
        *,
        max_pending_per_origin: int = MAX_PENDING_PER_ORIGIN,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._storage = storage
        self._pdus = pdus
        self._edus = edus
        self._max_pending = max_pending_per_origin
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._inflight: dict[tuple[str, str], asyncio.Task[dict[str, Any]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._pending: dict[str, int] = {}
        self._last_cleanup = 0

    async def receive(self, origin: str, txn_id: str, body: Any) -> dict[str, Any]:
        """The /send answer ({"pdus": {event_id: {} or {"error": ...}}})."""
        pdus, edus = _check_shape(origin, body)
        key = (origin, txn_id)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        stored = await self._storage.db.read(lambda c: txns_table.select_txn_response(c, origin, txn_id))
        if stored is not None:
            return stored
        if self._pending.get(origin, 0) >= self._max_pending:
            raise MatrixError(Errcode.LIMIT_EXCEEDED, f"too many transactions from {origin} in progress")
        # Processed in a task of its own: a sender that hangs up (and retries) must not cancel
        # the work half way; the retry waits for the same answer instead.
        task = asyncio.get_running_loop().create_task(self._run(origin, txn_id, pdus, edus))
        self._inflight[key] = task
        self._pending[origin] = self._pending.get(origin, 0) + 1
        task.add_done_callback(lambda _: self._finished(key))
        return await asyncio.shield(task)

    async def _run(self, origin: str, txn_id: str, pdus: list[Any], edus: list[Any]) -> dict[str, Any]:
        async with self._lock(origin):
            return await self._process(origin, txn_id, pdus, edus)

    def _finished(self, key: tuple[str, str]) -> None:
        task = self._inflight.pop(key)
        if not task.cancelled() and task.exception() is not None:
            log.error("transaction %s from %s failed", key[1], key[0], exc_info=task.exception())
        origin = key[0]
        self._pending[origin] -= 1
        if not self._pending[origin]:
            del self._pending[origin]
            self._locks.pop(origin, None)

    def _lock(self, origin: str) -> asyncio.Lock:
        lock = self._locks.get(origin)
        if lock is None:
            lock = self._locks[origin] = asyncio.Lock()
        return lock

    async def _process(
        self, origin: str, txn_id: str, pdus: list[Any], edus: list[Any]
    ) -> dict[str, Any]:
        # A repeat may have been answered while this one waited for the origin's lock.
        stored = await self._storage.db.read(lambda c: txns_table.select_txn_response(c, origin, txn_id))
        if stored is not None:
            return stored
        allowed, denied = await self._apply_acls(origin, pdus)
        results = {}
        if allowed and self._pdus is not None:  # None: federation disabled, PDUs are ignored
            results = await self._pdus.receive_pdus(origin, allowed)
        results = {**denied, **results}
        for edu in edus:
            await self._edus.receive(origin, edu)
        answer = {"pdus": results}
        now = self._clock_ms()
        await self._storage.db.write(
            lambda c: txns_table.insert_txn_response(c, origin, txn_id, answer, now)
        )
        await self._cleanup(now)
        return answer

    async def _apply_acls(
        self, origin: str, pdus: list[Any]
    ) -> tuple[list[Any], dict[str, dict[str, str]]]:
        """Split off the PDUs for rooms whose ACL denies `origin`, with their results."""
        allowed: list[Any] = []
        denied: dict[str, dict[str, str]] = {}
        verdicts: dict[str, bool] = {}
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, Mapping) else None
            if not isinstance(room_id, str):
                allowed.append(pdu)  # the pipeline reports what is wrong with it
                continue
            if room_id not in verdicts:
                verdicts[room_id] = server_allowed(await room_acl(self._storage, room_id), origin)
            if verdicts[room_id]:
                allowed.append(pdu)
                continue
            event_id = await self._event_id(pdu, room_id)
            if event_id is not None:
                denied[event_id] = {"error": "the room's server ACL denies the sending server"}
        return allowed, denied

    async def _event_id(self, pdu: Mapping[str, Any], room_id: str) -> str | None:
        room = await self._storage.db.read(lambda c: rooms_table.select_room(c, room_id))
        if room is None:
            return None
        try:
            return compute_event_id(pdu, get_room_version(room.room_version))
        except Exception:  # not even an id: nothing to key the error by
            return None

    async def _cleanup(self, now: int) -> None:
        if now - self._last_cleanup < _CLEANUP_EVERY_MS:
            return
        self._last_cleanup = now
        removed = await self._storage.db.write(
            lambda c: txns_table.delete_txns_before(c, now - KEEP_ANSWERS_MS)
        )
        if removed:
            log.debug("forgot %d old inbound transaction answers", removed)
