"""MSC2228 self-destructing events (rooms.event_expiry): served redacted once their
`org.matrix.self_destruct_after` passes, also when that time passed while the server was down."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import User, create_room, new_user

_FILTER = '{"types": ["m.room.message"]}'


async def _send(user: User, room: str, txn: str, destruct_after_ms: int | None) -> str:
    content = {"msgtype": "m.text", "body": "This is a message"}
    if destruct_after_ms is not None:
        content["org.matrix.self_destruct_after"] = int(time.time() * 1000) + destruct_after_ms
    resp = await user.put(f"/rooms/{room}/send/m.room.message/{txn}", content)
    assert resp.status_code == 200, resp.text
    return resp.json()["event_id"]


async def _contents(user: User, room: str) -> dict[str, dict]:
    resp = await user.get(f"/rooms/{room}/messages", dir="b", filter=_FILTER)
    assert resp.status_code == 200, resp.text
    return {e["event_id"]: e["content"] for e in resp.json()["chunk"]}


async def _until_expired(user: User, room: str, event_id: str) -> dict[str, dict]:
    for _ in range(50):
        contents = await _contents(user, room)
        if contents[event_id] == {}:
            return contents
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_id} never expired: {contents[event_id]}")


async def test_message_is_pruned_when_due(tmp_path: Path) -> None:
    """SyTest "Ephemeral messages received from clients are correctly expired"."""
    async with running_server(tmp_path / "data") as srv:
        alice = await new_user(srv.client, "alice")
        room = await create_room(alice)
        doomed = await _send(alice, room, "t1", 300)
        kept = await _send(alice, room, "t2", None)
        assert (await _contents(alice, room))[doomed]["body"] == "This is a message"
        contents = await _until_expired(alice, room, doomed)
        assert contents[kept]["body"] == "This is a message"
        resp = await alice.get(f"/rooms/{room}/event/{doomed}")
        assert resp.json()["content"] == {}
        # A state event asking for it is never pruned: that would change the room's state.
        due = int(time.time() * 1000)
        resp = await alice.put(
            f"/rooms/{room}/state/m.room.topic", {"topic": "t", "org.matrix.self_destruct_after": due}
        )
        assert resp.status_code == 200, resp.text
        await asyncio.sleep(0.3)
        resp = await alice.get(f"/rooms/{room}/state/m.room.topic")
        assert resp.json()["topic"] == "t"


async def test_schedule_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice = await new_user(srv.client, "alice")
        room = await create_room(alice)
        doomed = await _send(alice, room, "t1", 1500)
        key_file = srv.config.signing_key_path
    key_file.unlink()  # the test launcher writes a fresh key each start; the database stays
    await asyncio.sleep(1.6)  # due while the server is down
    async with running_server(data) as srv:
        alice = dataclasses.replace(alice, client=srv.client)
        await _until_expired(alice, room, doomed)
