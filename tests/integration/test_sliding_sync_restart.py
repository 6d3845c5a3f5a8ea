"""Simplified sliding sync (MSC4186) connections live in the database: a `pos` stays good across
a restart (no full resync of the room list), an idle connection expires with M_UNKNOWN_POS, and
a device's connections go when it is deleted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.integration.account_helpers import running_server, server_storage
from tests.integration.sliding_sync_helpers import (
    all_rooms,
    bodies,
    sliding_sync,
    sliding_sync_response,
)
from tests.integration.sync_helpers import create_room, join, new_user, send


async def test_pos_survives_a_restart_and_the_connection_continues(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice = await new_user(srv.client, "alice")
        bob = await new_user(srv.client, "bob")
        room = await create_room(alice, name="kept", preset="public_chat")
        other = await create_room(alice, name="other", preset="public_chat")
        await join(bob, room)
        await join(bob, other)
        await send(alice, room, "before restart")
        body = await sliding_sync(bob, all_rooms())
        assert set(body["rooms"]) == {room, other}
        assert all(r["initial"] for r in body["rooms"].values())
        key_file = srv.config.signing_key_path
    key_file.unlink()  # the test launcher writes a fresh key each start; the database stays
    async with running_server(data) as srv:
        alice = dataclasses.replace(alice, client=srv.client)
        bob = dataclasses.replace(bob, client=srv.client)
        quiet = await sliding_sync(bob, all_rooms(), pos=body["pos"])
        # Nothing is sent again: the connection knows what the client holds.
        assert quiet["rooms"] == {}
        assert quiet["lists"] == {"all_rooms": {"count": 2}}
        await send(alice, room, "after restart")
        new = await sliding_sync(bob, all_rooms(), pos=quiet["pos"])
        assert list(new["rooms"]) == [room]
        room_body = new["rooms"][room]
        assert "initial" not in room_body
        assert bodies(room_body) == ["after restart"]
        # Alice's member event went out before the restart: not sent again.
        members = [
            e for e in room_body["required_state"] if e["type"] == "m.room.member"
        ]
        assert members == []


async def test_an_idle_connection_expires_with_m_unknown_pos(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as srv:
        alice = await new_user(srv.client, "alice")
        await create_room(alice)
        body = await sliding_sync(alice, all_rooms())
        assert (await sliding_sync(alice, all_rooms(), pos=body["pos"]))["rooms"] == {}

        async def age(conn):  # type: ignore[no-untyped-def]
            await conn.execute("UPDATE sliding_sync_connections SET last_used_ts = 0")

        await server_storage(srv).db.write(age)
        resp = await sliding_sync_response(alice, all_rooms(), pos=body["pos"])
        assert resp.status_code == 400
        assert resp.json()["errcode"] == "M_UNKNOWN_POS"
        # Starting over (no pos) gives the whole list again.
        again = await sliding_sync(alice, all_rooms())
        assert len(again["rooms"]) == 1


async def test_logging_out_deletes_the_device_connections(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as srv:
        alice = await new_user(srv.client, "alice")
        await sliding_sync(alice, all_rooms())
        await sliding_sync(alice, all_rooms(), conn_id="encryption")

        async def count(conn) -> int:  # type: ignore[no-untyped-def]
            async with conn.execute(
                "SELECT COUNT(*) FROM sliding_sync_connections"
            ) as cur:
                row = await cur.fetchone()
            return int(row[0])

        storage = server_storage(srv)
        assert await storage.db.read(count) == 2
        resp = await alice.post("/logout", {})
        assert resp.status_code == 200, resp.text
        assert await storage.db.read(count) == 0
