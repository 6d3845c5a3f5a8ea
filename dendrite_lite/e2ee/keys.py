"""Device keys, one-time keys and fallback keys: POST /keys/upload, /keys/query, /keys/claim, and
the key counts /sync reports to a device (end_to_end_encryption.md §Key Distribution).

Other servers' users go to `RemoteKeys` (e2ee/remote_keys.py: the remote device list cache,
else their servers); without it (federation disabled) their servers are in `failures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiosqlite

from dendrite_lite.e2ee.cross_signing import add_cross_signing
from dendrite_lite.e2ee.device_lists import DeviceListService
from dendrite_lite.e2ee.key_upload import KeyUpload, parse_key_upload
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_user_id, server_name_of
from dendrite_lite.request_body import required_field
from dendrite_lite.storage import Storage
from dendrite_lite.storage import device_lists as device_lists_table
from dendrite_lite.storage import e2e_keys as table

__all__ = ["SIGNED_CURVE25519", "KeyCounts", "KeysService", "RemoteKeys", "store_upload"]

SIGNED_CURVE25519 = "signed_curve25519"


class RemoteKeys(Protocol):
    """Other servers' users' keys. Each call answers (fields of the response body, failures by
    server name): for `query` device_keys, master_keys and self_signing_keys, each by user; for
    `claim` one_time_keys by user."""

    async def query(
        self, requester: str, users: dict[str, list[str]], timeout_ms: int
    ) -> tuple[dict[str, Any], dict[str, Any]]: ...

    async def claim(
        self, users: dict[str, dict[str, str]], timeout_ms: int
    ) -> tuple[dict[str, Any], dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class KeyCounts:
    """What /sync tells a device about its own keys."""

    one_time_keys: dict[str, int]
    unused_fallback_algorithms: list[str]


def _one_time_key_counts(counts: dict[str, int]) -> dict[str, int]:
    # Synapse always reports signed_curve25519: some clients (older Element) read a missing
    # count as "unchanged" and never upload more once the server ran out.
    return {SIGNED_CURVE25519: 0, **counts}


def _split_users(
    server_name: str, users: Mapping[str, Any], field: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(local users, remote users) of a request's user map; 400 for a key that is no user id."""
    local: dict[str, Any] = {}
    remote: dict[str, Any] = {}
    for user_id, value in users.items():
        if not is_valid_user_id(user_id):
            raise MatrixError(Errcode.INVALID_PARAM, f"{field}: {user_id[:100]!r} is not a user id")
        (local if server_name_of(user_id) == server_name else remote)[user_id] = value
    return local, remote


def _timeout(body: Mapping[str, Any]) -> int:
    timeout = body.get("timeout", 10_000)
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise MatrixError(Errcode.BAD_JSON, "timeout must be an integer")
    return max(0, min(timeout, 60_000))


class KeysService:
    def __init__(
        self,
        storage: Storage,
        device_lists: DeviceListService,
        *,
        server_name: str,
        remote: RemoteKeys | None = None,
    ) -> None:
        self._storage = storage
        self._device_lists = device_lists
        self._server_name = server_name
        self._remote = remote

    # --- upload ------------------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/client/v3/keys/upload -> the response body."""
        upload = parse_key_upload(body, user_id, device_id)

        async def txn(conn: aiosqlite.Connection) -> tuple[bool, dict[str, int]]:
            changed = await store_upload(conn, user_id, device_id, upload)
            return changed, await table.count_one_time_keys(conn, user_id, device_id)

        changed, counts = await self._storage.db.write(txn)
        if changed:
            await self._device_lists.changed(user_id)
        return {"one_time_key_counts": _one_time_key_counts(counts)}

    async def counts(self, user_id: str, device_id: str) -> KeyCounts:
        async def read(conn: aiosqlite.Connection) -> KeyCounts:
            return KeyCounts(
                _one_time_key_counts(await table.count_one_time_keys(conn, user_id, device_id)),
                await table.select_unused_fallback_algorithms(conn, user_id, device_id),
            )

        return await self._storage.db.read(read)

    # --- query -------------------------------------------------------------------------------

    async def query(self, requester: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/client/v3/keys/query -> the response body."""
        wanted = parse_query(body)
        timeout_ms = _timeout(body)
        local, remote = _split_users(self._server_name, wanted, "device_keys")

        async def read(conn: aiosqlite.Connection) -> dict[str, Any]:
            return {**await local_device_keys(conn, requester, local), "failures": {}}

        response: dict[str, Any] = await self._storage.db.read(read)
        if remote:
            results, failures = await self._ask_remote("query", remote, timeout_ms, requester)
            _merge(response, results, failures)
        return response

    # --- claim -------------------------------------------------------------------------------

    async def claim(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /_matrix/client/v3/keys/claim -> the response body."""
        wanted = parse_claim(body)
        timeout_ms = _timeout(body)
        local, remote = _split_users(self._server_name, wanted, "one_time_keys")
        claimed = await self._storage.db.write(lambda c: claim_local_keys(c, local)) if local else {}
        response: dict[str, Any] = {"one_time_keys": claimed, "failures": {}}
        if remote:
            results, failures = await self._ask_remote("claim", remote, timeout_ms)
            _merge(response, results, failures)
        return response

    async def _ask_remote(
        self, what: str, users: dict[str, Any], timeout_ms: int, requester: str = ""
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._remote is None:
            servers = sorted({server_name_of(u) for u in users})
            failure = {"status": 503, "message": "federation is disabled on this server"}
            return {}, {server: failure for server in servers}
        if what == "query":
            return await self._remote.query(requester, users, timeout_ms)
        return await self._remote.claim(users, timeout_ms)


def parse_query(body: Mapping[str, Any]) -> dict[str, list[str]]:
    """The `device_keys` of a /keys/query body (client or federation)."""
    wanted = required_field(body, "device_keys", "object")
    for user_id, devices in wanted.items():
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise MatrixError(Errcode.BAD_JSON, f"device_keys.{user_id} must be a list of strings")
    return wanted  # type: ignore[no-any-return]


def parse_claim(body: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The `one_time_keys` of a /keys/claim body (client or federation)."""
    wanted = required_field(body, "one_time_keys", "object")
    for user_id, devices in wanted.items():
        if not isinstance(devices, dict) or not all(isinstance(a, str) for a in devices.values()):
            raise MatrixError(
                Errcode.BAD_JSON, f"one_time_keys.{user_id} must map device ids to algorithms"
            )
    return wanted  # type: ignore[no-any-return]


def _merge(response: dict[str, Any], results: dict[str, Any], failures: dict[str, Any]) -> None:
    for field, by_user in results.items():
        response.setdefault(field, {}).update(by_user)
    response["failures"].update(failures)


async def local_device_keys(
    conn: aiosqlite.Connection, requester: str, users: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """device_keys and the cross-signing fields of a /keys/query answer for users whose keys
    we hold (device ids: those only, or all when empty), as `requester` may see them."""
    found: dict[str, Any] = {}
    for user_id, device_ids in users.items():
        found[user_id] = {
            d.device_id: _with_display_name(d)
            for d in await table.select_device_keys(conn, user_id, device_ids)
        }
    return {"device_keys": found, **await add_cross_signing(conn, requester, found)}


async def claim_local_keys(
    conn: aiosqlite.Connection, users: Mapping[str, Mapping[str, str]]
) -> dict[str, Any]:
    """Inside a write: one key per (user, device, algorithm) asked, by user and device."""
    claimed: dict[str, Any] = {}
    for user_id, devices in users.items():
        for device_id, algorithm in devices.items():
            key = await table.claim_key(conn, user_id, device_id, algorithm)
            if key is not None:
                claimed.setdefault(user_id, {})[device_id] = {key.key_id: key.key}
    return claimed


def _with_display_name(device: table.DeviceKeys) -> dict[str, Any]:
    # `unsigned` is always there, as Synapse sends it: clients (and SyTest) read it without
    # checking it exists.
    keys = dict(device.keys)
    unsigned = dict(keys.get("unsigned") or {})  # another server's cached keys may carry one
    if device.display_name is not None:
        unsigned["device_display_name"] = device.display_name
    keys["unsigned"] = unsigned
    return keys


async def store_upload(
    conn: aiosqlite.Connection, user_id: str, device_id: str, upload: KeyUpload
) -> bool:
    """Inside the write: store what the upload brings; True if the device keys changed (the
    change is then in the device list stream)."""
    changed = False
    if upload.device_keys is not None:
        changed = await table.upsert_device_keys(conn, user_id, device_id, upload.device_keys)
        if changed:
            await device_lists_table.insert_device_list_change(conn, user_id, device_id)
    new: list[tuple[str, str, Any]] = []
    for algorithm, key_id, key in upload.one_time_keys:
        stored = await table.select_one_time_key(conn, user_id, device_id, algorithm, key_id)
        if stored is None:
            new.append((algorithm, key_id, key))
        elif stored != key:
            # Synapse does the same: a client that reuses a key id has lost track of its keys.
            raise MatrixError(
                Errcode.INVALID_PARAM, f"One-time key {algorithm}:{key_id} already exists"
            )
    await table.insert_one_time_keys(conn, user_id, device_id, new)
    for algorithm, key_id, key in upload.fallback_keys:
        await table.upsert_fallback_key(conn, user_id, device_id, algorithm, key_id, key)
    return changed
