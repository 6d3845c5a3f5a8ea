"""Sync tokens stay valid across a server restart, including the in-memory typing stream."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dendrite_lite.sync.tokens import parse_sync_token
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import bodies, create_room, join, new_user, send, sync


async def test_tokens_survive_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as srv:
        alice = await new_user(srv.client, "alice")
        bob = await new_user(srv.client, "bob")
        room = await create_room(alice, preset="public_chat")
        await join(bob, room)
        await send(alice, room, "before restart")
        # Typing moves the in-memory typing stream forward; the token carries its position.
        for _ in range(3):
            resp = await alice.put(
                f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
            )
            assert resp.status_code == 200, resp.text
            await alice.put(f"/rooms/{room}/typing/{alice.user_id}", {"typing": False})
        token = (await sync(bob))["next_batch"]
        assert parse_sync_token(token).typing > 0
        key_file = srv.config.signing_key_path
    key_file.unlink()  # the test launcher writes a fresh key each start; the database stays
    async with running_server(data) as srv:
        alice = dataclasses.replace(alice, client=srv.client)
        bob = dataclasses.replace(bob, client=srv.client)
        empty = await sync(bob, since=token)
        assert empty["rooms"]["join"] == {}
        await send(alice, room, "after restart")
        resp = await alice.put(f"/rooms/{room}/typing/{alice.user_id}", {"typing": True})
        assert resp.status_code == 200, resp.text
        body = await sync(bob, since=token)
        joined = body["rooms"]["join"][room]
        assert bodies(joined["timeline"]["events"]) == ["after restart"]
        typing = [e for e in joined["ephemeral"]["events"] if e["type"] == "m.typing"]
        assert typing == [{"type": "m.typing", "content": {"user_ids": [alice.user_id]}}]
