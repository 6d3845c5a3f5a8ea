"""FederatedKeys (e2ee/remote_keys.py) over a fake transport: every server is asked at once and
within the request's timeout, each failure is its own server's, and answers are filtered to
what was asked of that server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.e2ee.device_lists import DeviceListService
from dendrite_lite.e2ee.remote_device_lists import RemoteDeviceLists
from dendrite_lite.e2ee.remote_keys import FederatedKeys
from dendrite_lite.storage import Storage
from dendrite_lite.sync.notifier import Notifier


class Refused(Exception):
    status = 403


def device(user_id: str, device_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "device_id": device_id, "keys": {}, "algorithms": [], "signatures": {}}


class FakeServers:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def query_keys(self, destination: str, device_keys: dict[str, Any], timeout_s: float) -> Any:
        self.asked.append(destination)
        if destination == "slow":
            await asyncio.sleep(5)
        if destination == "refusing":
            raise Refused("HTTP 403 M_FORBIDDEN")
        return {
            "device_keys": {
                "@a:fast": {"A1": device("@a:fast", "A1"), "A2": device("@a:fast", "OTHER")},
                "@intruder:elsewhere": {"X": device("@intruder:elsewhere", "X")},
            },
            "master_keys": {"@a:fast": {"user_id": "@someone:else", "keys": {}}},
        }

    async def claim_keys(self, destination: str, one_time_keys: dict[str, Any], timeout_s: float) -> Any:
        return {"one_time_keys": {"@a:fast": {"A1": {"signed_curve25519:k": {"key": "k"}}, "A9": {"x": 1}}}}


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "db.sqlite", readers=2)
    yield s
    await s.close()


def keys(storage: Storage, servers: FakeServers) -> FederatedKeys:
    lists = RemoteDeviceLists(storage, DeviceListService(storage, Notifier()), server_name="ours")
    return FederatedKeys(storage, lists, servers)


async def test_servers_are_asked_at_once_and_fail_on_their_own(storage: Storage) -> None:
    servers = FakeServers()
    users = {"@a:fast": [], "@b:slow": [], "@c:refusing": []}
    started = time.monotonic()
    found, failures = await keys(storage, servers).query("@me:ours", users, timeout_ms=300)
    assert time.monotonic() - started < 2  # the slow server's 5 s are cut at the timeout
    assert sorted(servers.asked) == ["fast", "refusing", "slow"]
    assert failures == {
        "slow": {"status": 504, "message": "timed out"},
        "refusing": {"status": 403, "message": "HTTP 403 M_FORBIDDEN"},
    }
    # Only what the fast server may speak for: its user, devices naming themselves, keys of
    # the right user.
    assert found["device_keys"] == {"@a:fast": {"A1": device("@a:fast", "A1")}}
    assert found.get("master_keys", {}) == {}


async def test_claimed_keys_are_those_asked_for(storage: Storage) -> None:
    found, failures = await keys(storage, FakeServers()).claim({"@a:fast": {"A1": "signed_curve25519"}}, 1000)
    assert failures == {}
    assert found == {"one_time_keys": {"@a:fast": {"A1": {"signed_curve25519:k": {"key": "k"}}}}}
