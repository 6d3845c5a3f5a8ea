"""The FederationRequester (federation/missing_events.py) over the signed federation client:
the requests the inbound event pipeline makes to fill gaps in a room's DAG.

Answers are shape-checked here (a peer's garbage becomes a `BadAnswer`, which the fetcher
treats like any other failure); the PDUs inside are checked by the pipeline itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from dendrite_lite.federation.client import FederationClient, FederationError

__all__ = ["ClientRequester", "BadAnswer"]

_V1 = "/_matrix/federation/v1"


class BadAnswer(FederationError):
    """The peer answered 2xx with a body of the wrong shape."""


def _seg(value: str) -> str:
    return quote(value, safe="")


def _pdu_list(destination: str, body: Any, key: str) -> list[dict[str, Any]]:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadAnswer(destination, f"answer has no '{key}' list")
    return [p for p in items if isinstance(p, dict)]


def _id_list(destination: str, body: dict[str, Any], key: str) -> list[str]:
    items = body.get(key)
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadAnswer(destination, f"answer has no '{key}' list of event ids")
    return list(items)


class ClientRequester:
    """Implements federation.missing_events.FederationRequester."""

    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def get_missing_events(
        self,
        destination: str,
        room_id: str,
        earliest_events: Sequence[str],
        latest_events: Sequence[str],
        limit: int,
        min_depth: int,
    ) -> list[dict[str, Any]]:
        body = await self._client.post_json(
            destination,
            f"{_V1}/get_missing_events/{_seg(room_id)}",
            {
                "earliest_events": list(earliest_events),
                "latest_events": list(latest_events),
                "limit": limit,
                "min_depth": min_depth,
            },
        )
        return _pdu_list(destination, body, "events")

    async def get_state_ids(
        self, destination: str, room_id: str, event_id: str
    ) -> tuple[list[str], list[str]]:
        body = await self._client.get_json(
            destination, f"{_V1}/state_ids/{_seg(room_id)}", query={"event_id": event_id}
        )
        if not isinstance(body, dict):
            raise BadAnswer(destination, "state_ids answer is not an object")
        return _id_list(destination, body, "pdu_ids"), _id_list(destination, body, "auth_chain_ids")

    async def get_event(self, destination: str, event_id: str) -> dict[str, Any] | None:
        body = await self._client.get_json(destination, f"{_V1}/event/{_seg(event_id)}")
        pdus = _pdu_list(destination, body, "pdus")
        return pdus[0] if pdus else None

    async def get_event_auth(
        self, destination: str, room_id: str, event_id: str
    ) -> list[dict[str, Any]]:
        body = await self._client.get_json(
            destination, f"{_V1}/event_auth/{_seg(room_id)}/{_seg(event_id)}"
        )
        return _pdu_list(destination, body, "auth_chain")

    async def backfill(
        self, destination: str, room_id: str, event_ids: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """GET /backfill/{roomId}?v=..&limit=: the `pdus` of the answer (not part of the
        protocol P's pipeline needs; for history fetches)."""
        body = await self._client.get_json(
            destination, f"{_V1}/backfill/{_seg(room_id)}",
            query={"v": list(event_ids), "limit": limit},
        )
        return _pdu_list(destination, body, "pdus")
