"""Federation destinations for the server admin (the Synapse-compatible admin API,
api/admin/destinations.py): every destination's health, paged and sorted, the rooms shared with
one, and cutting a backoff short.

The listing is built from federation.destinations (what the sender stored after its attempts
plus the outbox's queue lengths) and sorted here: a server knows at most a few thousand
destinations, and every sort key Synapse offers is then one pass over them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.destinations import (
    DestinationHealth,
    destination_health,
    list_destinations,
)
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.storage import Storage
from dendrite_lite.storage import destinations as table

__all__ = [
    "DESTINATION_ORDERS",
    "DestinationAdmin",
    "DestinationPage",
    "failure_ts",
    "retry_last_ts",
]


def retry_last_ts(h: DestinationHealth) -> int:
    """Synapse's retry_last_ts: when the failing streak's last attempt was (0: not failing)."""
    return (h.last_failure_ts or 0) if h.retry_interval_ms else 0


def failure_ts(h: DestinationHealth) -> int | None:
    """Synapse's failure_ts, while failing (None otherwise). NOTSPEC: Synapse gives the
    streak's first failure; we keep only the latest one."""
    return h.last_failure_ts if h.retry_interval_ms else None


# Synapse's `order_by` values. last_successful_stream_ordering is not tracked here (always
# null), so it sorts like the name.
DESTINATION_ORDERS = {
    "destination": lambda h: (False, h.destination),
    "retry_last_ts": lambda h: (False, retry_last_ts(h)),
    "retry_interval": lambda h: (False, h.retry_interval_ms),
    "failure_ts": lambda h: (failure_ts(h) is None, failure_ts(h) or 0),
    "last_successful_stream_ordering": lambda h: (False, h.destination),
}


@dataclass(frozen=True, slots=True)
class DestinationPage:
    destinations: list[DestinationHealth]
    total: int


class DestinationAdmin:
    def __init__(
        self, storage: Storage, sender: FederationSender | None, server_name: str
    ) -> None:
        self._storage = storage
        self._sender = sender
        self._server_name = server_name

    async def page(
        self,
        *,
        search: str | None,
        order_by: str,
        backwards: bool,
        offset: int,
        limit: int,
    ) -> DestinationPage:
        """Destinations whose name contains `search`, sorted by DESTINATION_ORDERS[order_by]
        (ties by name), from `offset`."""
        found = await list_destinations(self._storage)
        if search:
            found = [h for h in found if search in h.destination]
        key = DESTINATION_ORDERS[order_by]
        found.sort(
            key=lambda h: h.destination
        )  # ties stay by name (the sort is stable)
        found.sort(key=key, reverse=backwards)
        return DestinationPage(found[offset : offset + limit], len(found))

    async def details(self, destination: str) -> DestinationHealth:
        """404 M_NOT_FOUND for a destination we never tried and have nothing queued for."""
        health = await destination_health(self._storage, destination)
        if health is None:
            raise MatrixError(Errcode.NOT_FOUND, "Unknown destination")
        return health

    async def rooms(
        self, destination: str, *, backwards: bool, offset: int, limit: int
    ) -> tuple[list[tuple[str, int]], int]:
        """(room_id, stream_ordering) of the rooms shared with a known destination, and how many."""
        await self.details(destination)
        return await self._storage.db.read(
            lambda c: table.select_destination_rooms(
                c,
                destination,
                self._server_name,
                backwards=backwards,
                offset=offset,
                limit=limit,
            )
        )

    async def reset_connection(self, destination: str) -> None:
        """End a backoff now so the outbox retries at once (400 for us, for a destination that is
        not backing off, or without federation; 404 for an unknown one)."""
        if destination == self._server_name:
            raise MatrixError(
                Errcode.INVALID_PARAM, "This server is not a remote destination"
            )
        health = await self.details(destination)
        if not health.retry_interval_ms and not health.next_retry_ts:
            raise MatrixError(
                Errcode.INVALID_PARAM,
                "The retry timing does not need to be reset for this destination.",
            )
        if self._sender is None:
            raise MatrixError(
                Errcode.INVALID_PARAM, "Federation is disabled on this server"
            )
        await self._sender.reset_backoff(destination)
