"""Asking other servers for a space's hierarchy (GET /_matrix/federation/v1/hierarchy/{roomId}):
the via servers of an m.space.child link, in order, until one answers.

Answers are kept for a few minutes (space_hierarchy.yaml: "Responses to this endpoint should be
cached for a period of time"): paging through a space re-walks it for every page, and without
this each page would ask every remote child again. Failures are not kept."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from dendrite_lite.federation.client import FederationClient, FederationError

__all__ = ["RemoteHierarchy"]

log = logging.getLogger(__name__)

MAX_SERVERS = 3  # via servers tried per room
QUERY_TIMEOUT_S = 15.0
CACHE_TTL_S = 300.0
CACHE_SIZE = 1000


class RemoteHierarchy:
    def __init__(
        self,
        client: FederationClient,
        server_name: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._server_name = server_name
        self._clock = clock
        self._cache: OrderedDict[tuple[str, bool], tuple[float, dict[str, Any]]] = OrderedDict()

    async def fetch(
        self, room_id: str, via: Sequence[str], suggested_only: bool
    ) -> dict[str, Any] | None:
        key = (room_id, suggested_only)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        path = f"/_matrix/federation/v1/hierarchy/{quote(room_id, safe='')}"
        query = {"suggested_only": "true" if suggested_only else "false"}
        servers = [s for s in dict.fromkeys(via) if s != self._server_name][:MAX_SERVERS]
        for server in servers:
            try:
                answer = await self._client.get_json(
                    server, path, query=query, timeout_s=QUERY_TIMEOUT_S
                )
            except FederationError as e:
                log.info("space hierarchy of %s from %s: %s", room_id, server, e.message)
                continue
            if isinstance(answer, dict):
                self._cache[key] = (self._clock() + CACHE_TTL_S, answer)
                self._cache.move_to_end(key)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
                return answer
        return None
