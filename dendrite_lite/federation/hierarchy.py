"""Asking other servers for a space's hierarchy (GET /_matrix/federation/v1/hierarchy/{roomId}):
the via servers of an m.space.child link, in order, until one answers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from dendrite_lite.federation.client import FederationClient, FederationError

__all__ = ["RemoteHierarchy"]

log = logging.getLogger(__name__)

MAX_SERVERS = 3  # via servers tried per room
QUERY_TIMEOUT_S = 15.0


class RemoteHierarchy:
    def __init__(self, client: FederationClient, server_name: str) -> None:
        self._client = client
        self._server_name = server_name

    async def fetch(
        self, room_id: str, via: Sequence[str], suggested_only: bool
    ) -> dict[str, Any] | None:
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
                return answer
        return None
