"""The published room directory of any server (list_public_rooms.yaml `server`): ours from
storage, another server's through GET/POST /_matrix/federation/v1/publicRooms.

A filter (search term or room types) needs the POST form; a plain page uses GET, which every
server implements. Another server's answer is passed on as it came, minus anything that is
not shaped like a directory page, so one broken server cannot break a client's room list.
"""

from __future__ import annotations

from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.client import FederationClient, RemoteError, UnreachableError
from dendrite_lite.rooms.directory import PublicRoomsQuery, list_public_rooms
from dendrite_lite.storage import Storage

__all__ = ["PublicRoomsDirectory", "FEDERATION_PATH"]

FEDERATION_PATH = "/_matrix/federation/v1/publicRooms"
QUERY_TIMEOUT_S = 20.0


class PublicRoomsDirectory:
    def __init__(
        self, storage: Storage, server_name: str, client: FederationClient | None
    ) -> None:
        self._storage = storage
        self._server_name = server_name
        self._client = client

    async def list(self, server: str | None, query: PublicRoomsQuery) -> dict[str, Any]:
        """The directory page of `server` (None or our name: ours)."""
        if server is None or server == self._server_name:
            return await list_public_rooms(self._storage, query)
        if self._client is None:
            raise MatrixError(
                Errcode.NOT_FOUND, f"Cannot list the room directory of {server}: federation is off"
            )
        try:
            answer = await self._ask(server, query)
        except RemoteError as e:
            status = e.status if 400 <= e.status < 500 else 502
            raise MatrixError(
                e.errcode or Errcode.UNKNOWN, f"{server} refused to list its rooms: {e.message}", status=status,
            ) from None
        except UnreachableError as e:
            raise MatrixError(
                Errcode.UNKNOWN, f"{server} could not be reached: {e.message}", status=502
            ) from None
        return _page(answer)

    async def _ask(self, server: str, query: PublicRoomsQuery) -> Any:
        assert self._client is not None
        if query.search is not None or query.room_types is not None:
            body: dict[str, Any] = {"filter": {}}
            if query.search is not None:
                body["filter"]["generic_search_term"] = query.search
            if query.room_types is not None:
                body["filter"]["room_types"] = list(query.room_types)
            for key in ("limit", "since"):
                if getattr(query, key) is not None:
                    body[key] = getattr(query, key)
            return await self._client.post_json(
                server, FEDERATION_PATH, body, timeout_s=QUERY_TIMEOUT_S
            )
        params: dict[str, str | int] = {}
        if query.limit is not None:
            params["limit"] = query.limit
        if query.since is not None:
            params["since"] = query.since
        return await self._client.get_json(
            server, FEDERATION_PATH, query=params or None, timeout_s=QUERY_TIMEOUT_S
        )


def _page(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict) or not isinstance(answer.get("chunk"), list):
        raise MatrixError(Errcode.UNKNOWN, "The other server sent no room directory", status=502)
    page: dict[str, Any] = {
        "chunk": [r for r in answer["chunk"] if isinstance(r, dict) and isinstance(r.get("room_id"), str)]
    }
    for key in ("next_batch", "prev_batch"):
        if isinstance(answer.get(key), str):
            page[key] = answer[key]
    total = answer.get("total_room_count_estimate")
    if isinstance(total, int) and not isinstance(total, bool):
        page["total_room_count_estimate"] = total
    return page
