"""What other servers ask about our users' keys (server-server-api.md §Device Management,
§End-to-End Encryption; user_devices.yaml, user_keys.yaml):

- POST /user/keys/query and /user/keys/claim: as the client API answers them, for our users
  only (others in the request are ignored: "Requested users must be local"), without
  user-signing keys and without signatures by other users (those are only for the signer);
- GET /user/devices/{userId}: the user's devices with keys, their cross-signing keys, and the
  stream id of the last m.device_list_update we sent about them, which the asking server then
  continues the EDU chain from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiosqlite

from dendrite_lite.e2ee.keys import (
    claim_local_keys,
    local_device_keys,
    parse_claim,
    parse_query,
)
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id
from dendrite_lite.storage import Storage
from dendrite_lite.storage import remote_device_lists as remote_table

__all__ = ["FederationKeyAnswers"]

# The requester of a federation query: no user of ours, so it sees no user-signing key and
# only the users' own signatures (e2ee/cross_signing.py add_cross_signing).
_NOBODY = ""


class FederationKeyAnswers:
    def __init__(self, storage: Storage, *, server_name: str) -> None:
        self._storage = storage
        self._suffix = ":" + server_name

    def _ours(self, users: Mapping[str, Any]) -> dict[str, Any]:
        return {u: v for u, v in users.items() if u.endswith(self._suffix)}

    async def query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/federation/v1/user/keys/query -> the response body."""
        local = self._ours(parse_query(body))

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            found = await local_device_keys(conn, _NOBODY, local)
            found.pop("user_signing_keys", None)
            return found

        return await self._storage.db.read(read)  # type: ignore[no-any-return]

    async def claim(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/federation/v1/user/keys/claim -> the response body."""
        local = self._ours(parse_claim(body))
        claimed = await self._storage.db.write(lambda c: claim_local_keys(c, local)) if local else {}
        return {"one_time_keys": claimed}

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/user/devices/{userId} -> the response body."""
        if not is_valid_user_id(user_id) or not user_id.endswith(self._suffix):
            raise MatrixError(Errcode.INVALID_PARAM, "The user is not a user of this server")

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            # One read: the stream id is that of the list returned.
            stream_id = await remote_table.select_last_device_change(conn, user_id)
            found = await local_device_keys(conn, _NOBODY, {user_id: []})
            return {"stream_id": stream_id, **found}

        found = await self._storage.db.read(read)
        devices = []
        for device_id, keys in found["device_keys"][user_id].items():
            device: dict[str, Any] = {"device_id": device_id, "keys": keys}
            # The display name has its own field here, as in Synapse.
            name = keys.pop("unsigned", {}).get("device_display_name")
            if name is not None:
                device["device_display_name"] = name
            devices.append(device)
        answer: dict[str, Any] = {"user_id": user_id, "stream_id": found["stream_id"], "devices": devices}
        for field, by_user in (("master_key", "master_keys"), ("self_signing_key", "self_signing_keys")):
            if user_id in found[by_user]:
                answer[field] = found[by_user][user_id]
        return answer
