"""A migrated database with one v12 room (alice + bob joined, carol not), for service tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.rooms.pipeline import EventSpec, PersistedEvent, RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.sync.notifier import Notifier

ALICE = "@alice:test"
BOB = "@bob:test"
CAROL = "@carol:test"


@dataclass
class RoomEnv:
    storage: Storage
    notifier: Notifier
    pipeline: RoomPipeline
    room_id: str

    async def send(self, sender: str = ALICE, content: Mapping[str, Any] | None = None) -> PersistedEvent:
        body = dict(content) if content is not None else {"msgtype": "m.text", "body": "hi"}
        return await self.pipeline.send(self.room_id, EventSpec(sender, "m.room.message", body))

    async def new_room(self, creator: str = ALICE) -> str:
        room_id, _ = await self.pipeline.create_room(
            get_room_version("12"), creator, {}, _opening(creator)
        )
        return room_id


def _opening(creator: str):  # type: ignore[no-untyped-def]
    def following(room_id: str) -> list[EventSpec]:
        return [
            EventSpec(creator, "m.room.member", {"membership": "join"}, creator),
            EventSpec(creator, "m.room.power_levels", {"users": {}, "users_default": 0}, ""),
            EventSpec(creator, "m.room.join_rules", {"join_rule": "public"}, ""),
        ]

    return following


async def open_env(tmp_path: Path) -> RoomEnv:
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    notifier = Notifier()
    pipeline = RoomPipeline(storage, server_name="test", key=new_server_key(), notifier=notifier)
    env = RoomEnv(storage, notifier, pipeline, "")
    env.room_id = await env.new_room(ALICE)
    await pipeline.send(env.room_id, EventSpec(BOB, "m.room.member", {"membership": "join"}, BOB))
    return env
