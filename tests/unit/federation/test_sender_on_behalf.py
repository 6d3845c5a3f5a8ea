"""FederationSender.on_behalf_of: a membership event a remote server sent through our send_join
goes to every other server with joined members, never back to its origin nor to us."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dendrite_lite.events.event import Event
from tests.unit.federation.sender_env import REMOTE1, eventually, open_env


async def test_a_remote_join_is_forwarded_to_the_other_servers_only(tmp_path: Path) -> None:
    forward: list[Any] = []

    async def hook(room_id: str, events: Sequence[Event]) -> Any:
        return await forward[0](room_id, events) if forward else None

    # Our pipeline stands in for the ingest (it runs persist hooks the same way).
    env = await open_env(tmp_path, remotes=(REMOTE1, "@r2:remote2", "@r3:remote3"), extra_persist=[hook])
    try:
        forward.append(env.sender.on_behalf_of("remote2"))
        assert await forward[0](env.room_id, []) is None
        newcomer = "@new:remote2"
        await env.member(newcomer, newcomer, "join")
        said = await env.say("ours")  # our own event: queued by the usual hook only
        assert await env.pending("remote1") == 2 and await env.pending("remote3") == 2
        assert await env.pending("remote2") == 1  # our message, not its own join
        await env.sender.start()

        def pdus(destination: str) -> list[Any]:
            return [p for t in env.transport.delivered(destination) for p in t.body["pdus"]]

        await eventually(lambda: len(pdus("remote3")) == 2 and len(pdus("remote2")) == 1)
        assert [p["sender"] for p in pdus("remote3")] == [newcomer, said.event.sender]
        assert pdus("remote3")[0]["state_key"] == newcomer
        assert pdus("remote3")[0]["content"]["membership"] == "join"
        assert [p["sender"] for p in pdus("remote1")] == [newcomer, said.event.sender]
        assert [p["sender"] for p in pdus("remote2")] == [said.event.sender]
    finally:
        await env.close()
