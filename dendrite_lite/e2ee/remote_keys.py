"""/keys/query and /keys/claim for other servers' users (keys.yaml; server-server-api.md
§End-to-End Encryption): the `RemoteKeys` of KeysService.

- query: users whose list we cache and may use (e2ee/remote_device_lists.py) are answered from
  the cache. Room-mates whose list we lack (or hold stale) are resynced first, as Synapse does:
  their whole list from GET /user/devices, cached with its stream id (so later EDUs apply
  to it) and a device list change for our users. The rest, and room-mates whose resync
  failed, are asked of their servers, one POST /user/keys/query per server, all servers at
  once, each within the request's timeout; a whole list (no device ids asked) of a user we
  share a room with is cached on the way back.
- claim: one POST /user/keys/claim per server, all at once (one-time keys are never cached).
- A server that fails (unreachable, timeout, an error answer, a malformed answer) is in
  `failures` with a status (its HTTP status, else 503) and a message; the others still count.
  Answers are filtered: only users of the server answering, and keys naming the right user
  and device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiosqlite

from dendrite_lite.e2ee.keys import local_device_keys
from dendrite_lite.e2ee.remote_device_lists import (
    RemoteDeviceLists,
    parse_cross_signing,
)
from dendrite_lite.events.ids import server_name_of
from dendrite_lite.storage import Storage

__all__ = ["FederatedKeys", "KeysTransport"]

# By server name: what to ask it -> (fields of the answer, its failure or None)
Answer = tuple[dict[str, Any], dict[str, Any] | None]
CROSS_SIGNING = ("master_keys", "self_signing_keys")


class KeysTransport(Protocol):
    """The federation requests (federation/e2ee_client.py); each raises on failure, with a
    `status` attribute when the server answered with an error."""

    async def query_keys(self, destination: str, device_keys: dict[str, Any], timeout_s: float) -> Any: ...

    async def claim_keys(self, destination: str, one_time_keys: dict[str, Any], timeout_s: float) -> Any: ...


def _failure(error: BaseException) -> dict[str, Any]:
    status = getattr(error, "status", None)
    if isinstance(error, TimeoutError):
        return {"status": 504, "message": "timed out"}
    return {"status": status if isinstance(status, int) else 503, "message": str(error) or type(error).__name__}


def _by_server(users: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for user_id, value in users.items():
        out.setdefault(server_name_of(user_id), {})[user_id] = value
    return out


def _devices_of(user_id: str, devices: Any) -> dict[str, Any]:
    if not isinstance(devices, dict):
        return {}
    return {
        d: keys for d, keys in devices.items()
        if isinstance(keys, dict) and keys.get("user_id") == user_id and keys.get("device_id") == d
    }


def _query_fields(asked: Mapping[str, Any], body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("device_keys"), dict):
        raise ValueError("the answer has no device_keys")
    fields: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
    for user_id in asked:
        if user_id in body["device_keys"]:
            fields["device_keys"][user_id] = _devices_of(user_id, body["device_keys"][user_id])
        for field in CROSS_SIGNING:
            key = body.get(field, {}).get(user_id) if isinstance(body.get(field), dict) else None
            if isinstance(key, dict) and key.get("user_id") == user_id:
                fields[field][user_id] = key
    return fields


def _claim_fields(asked: Mapping[str, Any], body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("one_time_keys"), dict):
        raise ValueError("the answer has no one_time_keys")
    claimed: dict[str, Any] = {}
    for user_id, devices in body["one_time_keys"].items():
        if user_id in asked and isinstance(devices, dict):
            claimed[user_id] = {
                d: keys for d, keys in devices.items() if d in asked[user_id] and isinstance(keys, dict)
            }
    return {"one_time_keys": claimed}


async def _ask_all(
    users: Mapping[str, Any],
    timeout_ms: int,
    ask: Callable[[str, dict[str, Any], float], Awaitable[Any]],
    fields: Callable[[Mapping[str, Any], Any], dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every server of `users` at once -> (merged fields, failures by server)."""
    timeout_s = max(timeout_ms, 1) / 1000

    async def one(server: str, asked: dict[str, Any]) -> Answer:
        try:
            body = await asyncio.wait_for(ask(server, asked, timeout_s), timeout_s)
            return fields(asked, body), None
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - each server fails on its own
            return {}, _failure(e)

    servers = _by_server(users)
    answers = await asyncio.gather(*(one(s, asked) for s, asked in servers.items()))
    merged: dict[str, Any] = {}
    failures: dict[str, Any] = {}
    for server, (found, failure) in zip(servers, answers, strict=True):
        if failure is not None:
            failures[server] = failure
        for field, by_user in found.items():
            merged.setdefault(field, {}).update(by_user)
    return merged, failures


class FederatedKeys:
    def __init__(self, storage: Storage, lists: RemoteDeviceLists, transport: KeysTransport) -> None:
        self._storage = storage
        self._lists = lists
        self._transport = transport

    async def query(
        self, requester: str, users: dict[str, list[str]], timeout_ms: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """`requester` (our user) sees their own signatures of the cached keys."""

        async def read(conn: aiosqlite.Connection) -> tuple[list[str], dict[str, Any], list[str]]:
            usable = await self._lists.usable(conn, list(users))
            found = await local_device_keys(conn, requester, {u: users[u] for u in usable})
            found.pop("user_signing_keys", None)
            room_mates = [u for u in users if u not in usable and await self._lists.shares_room(conn, u)]
            return usable, found, room_mates

        usable, cached, room_mates = await self._storage.db.read(read)
        if room_mates and await self._resync(room_mates, timeout_ms):
            usable, cached, _ = await self._storage.db.read(read)
        misses = {u: d for u, d in users.items() if u not in usable}
        if not misses:
            return cached, {}
        fetched, failures = await _ask_all(misses, timeout_ms, self._transport.query_keys, _query_fields)
        await self._lists.store_queried({
            u: (devices, parse_cross_signing(u, {
                "master_key": fetched.get("master_keys", {}).get(u),
                "self_signing_key": fetched.get("self_signing_keys", {}).get(u),
            }))
            for u, devices in fetched.get("device_keys", {}).items()
            if not misses[u]  # a whole list only
        })
        for field, by_user in fetched.items():
            cached.setdefault(field, {}).update(by_user)
        return cached, failures

    async def _resync(self, user_ids: list[str], timeout_ms: int) -> bool:
        """Resync the users' lists at once, within the timeout; True if one became current."""
        timeout_s = max(timeout_ms, 1) / 1000

        async def one(user_id: str) -> bool:
            try:
                return await asyncio.wait_for(self._lists.resync(user_id), timeout_s)
            except TimeoutError:
                return False

        return any(await asyncio.gather(*(one(u) for u in user_ids)))

    async def claim(
        self, users: dict[str, dict[str, str]], timeout_ms: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return await _ask_all(users, timeout_ms, self._transport.claim_keys, _claim_fields)
