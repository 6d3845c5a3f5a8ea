"""TransactionReceiver: idempotency, failures not remembered, one origin at a time with a
bounded queue, and other origins unaffected by a flood (fake PDU receiver, real SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.federation.transactions import TransactionReceiver
from dendrite_lite.storage import Storage


class SlowPdus:
    """Answers {event id: {}} for PDUs {"id": ...}; waits for `gate` when set."""

    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = False

    async def receive_pdus(self, origin: str, pdus: Sequence[Any]) -> dict[str, dict[str, str]]:
        self.calls.append((origin, [p["id"] for p in pdus]))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("boom")
        return {p["id"]: {} for p in pdus}


class NoEdus:
    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []

    async def receive(self, origin: str, edu: Any) -> None:
        self.received.append((origin, edu))


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "db.sqlite", readers=1)
    yield s
    await s.close()


def txn(origin: str, *ids: str, edus: list[Any] | None = None) -> dict[str, Any]:
    return {"origin": origin, "origin_server_ts": 1, "pdus": [{"id": i} for i in ids], "edus": edus or []}


def receiver(storage: Storage, pdus: SlowPdus, edus: NoEdus | None = None, **kw: Any) -> TransactionReceiver:
    return TransactionReceiver(storage, pdus, edus or NoEdus(), **kw)  # type: ignore[arg-type]


async def test_answer_is_stored_and_replayed(storage: Storage) -> None:
    pdus, edus = SlowPdus(), NoEdus()
    r = receiver(storage, pdus, edus)
    first = await r.receive("a.org", "t1", txn("a.org", "$1", edus=[{"edu_type": "m.typing"}]))
    again = await r.receive("a.org", "t1", txn("a.org", "$other"))
    assert first == again == {"pdus": {"$1": {}}}
    assert pdus.calls == [("a.org", ["$1"])] and len(edus.received) == 1
    # Remembered in the database: a new receiver (a restart) replays it too.
    assert await receiver(storage, pdus).receive("a.org", "t1", txn("a.org", "$x")) == first
    assert len(pdus.calls) == 1


async def test_a_failed_transaction_is_not_remembered(storage: Storage) -> None:
    pdus = SlowPdus()
    pdus.fail = True
    r = receiver(storage, pdus)
    with pytest.raises(RuntimeError):
        await r.receive("a.org", "t1", txn("a.org", "$1"))
    pdus.fail = False
    assert await r.receive("a.org", "t1", txn("a.org", "$1")) == {"pdus": {"$1": {}}}
    assert len(pdus.calls) == 2


async def test_flood_from_one_origin_is_bounded_and_does_not_block_others(storage: Storage) -> None:
    pdus = SlowPdus()
    pdus.gate = asyncio.Event()
    r = receiver(storage, pdus, max_pending_per_origin=3)
    flood = [asyncio.create_task(r.receive("flood.org", f"t{i}", txn("flood.org", f"${i}"))) for i in range(3)]
    await asyncio.sleep(0.05)
    assert [c for c in pdus.calls if c[0] == "flood.org"] == [("flood.org", ["$0"])]  # one at a time
    with pytest.raises(MatrixError) as refused:
        await r.receive("flood.org", "t9", txn("flood.org", "$9"))
    assert refused.value.errcode == "M_LIMIT_EXCEEDED"
    # Another origin is served while flood.org waits (its own receive blocks on the gate too,
    # but it started at once: it did not queue behind flood.org).
    other = asyncio.create_task(r.receive("calm.org", "t1", txn("calm.org", "$c")))
    await asyncio.sleep(0.05)
    assert ("calm.org", ["$c"]) in pdus.calls
    pdus.gate.set()
    answers = await asyncio.gather(*flood, other)
    assert answers == [{"pdus": {f"${i}": {}}} for i in range(3)] + [{"pdus": {"$c": {}}}]
    assert [c[1][0] for c in pdus.calls if c[0] == "flood.org"] == ["$0", "$1", "$2"]  # in order


async def test_a_retry_during_processing_waits_for_the_same_answer(storage: Storage) -> None:
    pdus = SlowPdus()
    pdus.gate = asyncio.Event()
    r = receiver(storage, pdus)
    first = asyncio.create_task(r.receive("a.org", "t1", txn("a.org", "$1")))
    await asyncio.sleep(0.02)
    first.cancel()  # the sender hung up: processing goes on
    retry = asyncio.create_task(r.receive("a.org", "t1", txn("a.org", "$1")))
    await asyncio.sleep(0.02)
    pdus.gate.set()
    assert await retry == {"pdus": {"$1": {}}}
    assert len(pdus.calls) == 1


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ([], "M_BAD_JSON"),
        ({"origin": "a.org"}, "M_BAD_JSON"),
        ({"origin": "a.org", "pdus": [{}] * 51}, "M_BAD_JSON"),
        ({"origin": "a.org", "pdus": [], "edus": [{}] * 101}, "M_BAD_JSON"),
        ({"origin": "b.org", "pdus": []}, "M_FORBIDDEN"),
    ],
)
async def test_bad_transactions_are_refused_and_not_remembered(
    storage: Storage, body: Any, errcode: str
) -> None:
    r = receiver(storage, SlowPdus())
    with pytest.raises(MatrixError) as e:
        await r.receive("a.org", "t1", body)
    assert e.value.errcode == errcode
    assert await r.receive("a.org", "t1", txn("a.org")) == {"pdus": {}}
