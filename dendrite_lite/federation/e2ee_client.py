"""The end-to-end encryption requests we make of other servers (user_keys.yaml,
user_devices.yaml), over the signed federation client: e2ee/remote_keys.py's KeysTransport
and e2ee/remote_device_lists.py's device list fetcher. Errors are federation.client's
(RemoteError carries the answer's `status`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from dendrite_lite.federation.client import FederationClient

__all__ = ["E2eeRequests"]

_V1 = "/_matrix/federation/v1"
# A device list resync happens in the background; a server slower than this is retried at the
# next /keys/query (the list is marked stale).
USER_DEVICES_TIMEOUT_S = 30.0


class E2eeRequests:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def query_keys(self, destination: str, device_keys: dict[str, Any], timeout_s: float) -> Any:
        return await self._client.post_json(
            destination, f"{_V1}/user/keys/query", {"device_keys": device_keys}, timeout_s=timeout_s
        )

    async def claim_keys(self, destination: str, one_time_keys: dict[str, Any], timeout_s: float) -> Any:
        return await self._client.post_json(
            destination, f"{_V1}/user/keys/claim", {"one_time_keys": one_time_keys}, timeout_s=timeout_s
        )

    async def user_devices(self, destination: str, user_id: str) -> Any:
        return await self._client.get_json(
            destination, f"{_V1}/user/devices/{quote(user_id, safe='')}",
            timeout_s=USER_DEVICES_TIMEOUT_S,
        )
