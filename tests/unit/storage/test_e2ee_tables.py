"""The end-to-end encryption tables (migration 0014) through their functions, on a real database."""

from __future__ import annotations

from dendrite_lite.storage import Storage
from dendrite_lite.storage import device_lists as lists
from dendrite_lite.storage import e2e_keys as keys
from dendrite_lite.storage import to_device as inbox

ALICE = "@alice:example.org"


async def _write(storage: Storage, fn, *args):
    return await storage.db.write(lambda conn: fn(conn, *args))


async def _read(storage: Storage, fn, *args):
    return await storage.db.read(lambda conn: fn(conn, *args))


async def test_inbox_position_never_goes_back(storage: Storage) -> None:
    """A sync token holds the position; deleting the newest messages must not lower it, or the
    next message would reuse a position a client already acknowledged."""
    assert await _read(storage, inbox.select_inbox_position) == 0
    await _write(storage, inbox.insert_messages, [(ALICE, "D", {"n": 1}), (ALICE, "D", {"n": 2})])
    assert await _read(storage, inbox.select_inbox_position) == 2
    await _write(storage, inbox.delete_acknowledged, ALICE, "D", 2)
    assert await _read(storage, inbox.select_inbox_position) == 2
    await _write(storage, inbox.insert_messages, [(ALICE, "D", {"n": 3})])
    delivery = await _read(storage, inbox.select_messages, ALICE, "D", 2, 10, 100)
    assert (delivery.events, delivery.last_position) == ([{"n": 3}], 3)


async def test_device_list_position_never_goes_back(storage: Storage) -> None:
    first = await _write(storage, lists.insert_device_list_change, ALICE, "D")
    second = await _write(storage, lists.insert_device_list_change, ALICE, None)
    assert (first, second) == (1, 2)
    await storage.db.write(lambda conn: conn.execute("DELETE FROM device_list_changes"))
    assert await _read(storage, lists.select_device_list_position) == 2
    assert await _read(storage, lists.select_changed_users, 0, 2) == set()


async def test_one_time_keys_claimed_once_in_upload_order(storage: Storage) -> None:
    await _write(storage, keys.insert_one_time_keys, ALICE, "D", [("alg", "b", "first"), ("alg", "a", "second")])
    await _write(storage, keys.insert_one_time_keys, ALICE, "D", [("other", "c", "other")])
    assert await _read(storage, keys.count_one_time_keys, ALICE, "D") == {"alg": 2, "other": 1}
    claimed = [await _write(storage, keys.claim_key, ALICE, "D", "alg") for _ in range(3)]
    assert claimed == [keys.ClaimedKey("alg:b", "first"), keys.ClaimedKey("alg:a", "second"), None]


async def test_fallback_key_used_mark(storage: Storage) -> None:
    await _write(storage, keys.upsert_fallback_key, ALICE, "D", "alg", "f1", {"key": "k1"})
    assert await _read(storage, keys.select_unused_fallback_algorithms, ALICE, "D") == ["alg"]
    for _ in range(2):  # handed out again and again
        assert await _write(storage, keys.claim_key, ALICE, "D", "alg") == keys.ClaimedKey("alg:f1", {"key": "k1"})
    assert await _read(storage, keys.select_unused_fallback_algorithms, ALICE, "D") == []
    await _write(storage, keys.upsert_fallback_key, ALICE, "D", "alg", "f1", {"key": "k1"})
    assert await _read(storage, keys.select_unused_fallback_algorithms, ALICE, "D") == []
    await _write(storage, keys.upsert_fallback_key, ALICE, "D", "alg", "f2", {"key": "k2"})
    assert await _read(storage, keys.select_unused_fallback_algorithms, ALICE, "D") == ["alg"]


async def test_device_keys_upsert_reports_change_and_delete_reports_keys(storage: Storage) -> None:
    device = {"user_id": ALICE, "device_id": "D", "keys": {"ed25519:D": "x"}}
    assert await _write(storage, keys.upsert_device_keys, ALICE, "D", device) is True
    assert await _write(storage, keys.upsert_device_keys, ALICE, "D", dict(device)) is False
    assert [d.keys for d in await _read(storage, keys.select_device_keys, ALICE, ["D"])] == [device]
    assert await _write(storage, keys.delete_device_e2e_keys, ALICE, "D") is True
    assert await _write(storage, keys.delete_device_e2e_keys, ALICE, "D") is False
