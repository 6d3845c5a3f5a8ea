"""createRoom: the events a new room starts with, their order and content."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.errors import MatrixError
from dendrite_lite.rooms.creation import create_room, parse_create_room
from dendrite_lite.rooms.pipeline import RoomPipeline
from dendrite_lite.storage import Storage
from dendrite_lite.storage import rooms as rooms_table
from dendrite_lite.storage import state as st
from dendrite_lite.sync.notifier import Notifier

ALICE = "@alice:test"
BOB = "@bob:test"


@pytest.fixture
async def pipeline(tmp_path: Path):
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    yield RoomPipeline(storage, server_name="test", key=new_server_key(), notifier=Notifier())
    await storage.close()


async def _create(pipeline, body, alias=None):
    return await create_room(
        pipeline, server_name="test", creator=ALICE, request=parse_create_room(body), alias=alias
    )


async def test_public_chat_order_and_content(pipeline) -> None:
    room_id, events = await _create(
        pipeline,
        {"preset": "public_chat", "name": "Pub", "topic": "Beer", "invite": [BOB],
         "initial_state": [{"type": "m.room.name", "content": {"name": "overridden"}},
                           {"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]},
        alias="#pub:test",
    )
    assert [(p.event.type, p.event.state_key) for p in events] == [
        ("m.room.create", ""),
        ("m.room.member", ALICE),
        ("m.room.power_levels", ""),
        ("m.room.canonical_alias", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.name", ""),
        ("m.room.encryption", ""),
        ("m.room.topic", ""),
        ("m.room.member", BOB),
    ]
    by_type = {p.event.type: p.event for p in events}
    assert by_type["m.room.name"].content == {"name": "Pub"}  # name overrides initial_state
    assert by_type["m.room.join_rules"].content == {"join_rule": "public"}
    assert "m.room.guest_access" not in by_type  # absent means forbidden, as Synapse sends it
    assert by_type["m.room.create"].content["room_version"] == "12"
    assert "creator" not in by_type["m.room.create"].content  # v11+: the sender is the creator
    pl = by_type["m.room.power_levels"].content
    assert pl["users"] == {} and pl["events"]["m.room.tombstone"] == 150 > pl["state_default"]
    assert room_id.startswith("!") and ":" not in room_id  # v12 room ids carry no server name
    assert events[-1].event.content == {"membership": "invite"}


@pytest.mark.parametrize(
    "preset, join_rule, guest_access",
    [
        ("public_chat", "public", None),
        ("private_chat", "invite", "can_join"),
        ("trusted_private_chat", "invite", "can_join"),
    ],
)
async def test_state_set_per_preset(pipeline, preset, join_rule, guest_access) -> None:
    """The exact state a preset gives a room (create_room.yaml's preset table, as Synapse sends
    it): public_chat has no m.room.guest_access event, the private presets have can_join."""
    _, events = await _create(pipeline, {"preset": preset})
    state = {(p.event.type, p.event.state_key): p.event.content for p in events}
    expected = {
        ("m.room.create", ""), ("m.room.member", ALICE), ("m.room.power_levels", ""),
        ("m.room.join_rules", ""), ("m.room.history_visibility", ""),
    }
    if guest_access is not None:
        expected.add(("m.room.guest_access", ""))
    assert set(state) == expected and len(events) == len(expected)
    assert state[("m.room.join_rules", "")] == {"join_rule": join_rule}
    assert state[("m.room.history_visibility", "")] == {"history_visibility": "shared"}
    if guest_access is not None:
        assert state[("m.room.guest_access", "")] == {"guest_access": guest_access}


async def test_private_chat_v10_lists_creator_and_is_direct(pipeline) -> None:
    room_id, events = await _create(
        pipeline, {"room_version": "10", "invite": [BOB], "is_direct": True}
    )
    by_type = {(p.event.type, p.event.state_key): p.event for p in events}
    assert room_id.endswith(":test")
    assert by_type[("m.room.create", "")].content["creator"] == ALICE
    assert by_type[("m.room.power_levels", "")].content["users"] == {ALICE: 100}
    assert by_type[("m.room.join_rules", "")].content == {"join_rule": "invite"}
    assert by_type[("m.room.member", BOB)].content == {"membership": "invite", "is_direct": True}


async def test_trusted_private_chat_v12_adds_additional_creators(pipeline) -> None:
    _, events = await _create(pipeline, {"preset": "trusted_private_chat", "invite": [BOB]})
    assert events[0].event.content["additional_creators"] == [BOB]


async def test_visibility_public_lists_room(pipeline) -> None:
    room_id, _ = await _create(pipeline, {"visibility": "public"})
    storage = pipeline._storage
    assert await storage.db.read(lambda c: rooms_table.select_public_room_ids(c)) == [room_id]
    state = await storage.db.read(lambda c: st.select_current_state(c, room_id))
    assert ("m.room.join_rules", "") in state


@pytest.mark.parametrize(
    "body, errcode",
    [
        ({"room_version": "99"}, "M_UNSUPPORTED_ROOM_VERSION"),
        ({"preset": "party"}, "M_BAD_JSON"),
        ({"invite": ["bob"]}, "M_BAD_JSON"),
        ({"initial_state": [{"type": "m.room.name"}]}, "M_BAD_JSON"),
        ({"name": 5}, "M_BAD_JSON"),
    ],
)
def test_bad_requests(body, errcode) -> None:
    with pytest.raises(MatrixError) as exc:
        parse_create_room(body)
    assert exc.value.errcode == errcode and exc.value.status == 400


async def test_state_the_creator_may_not_send_is_invalid_room_state(pipeline) -> None:
    with pytest.raises(MatrixError) as exc:
        await _create(
            pipeline,
            {"room_version": "10", "power_level_content_override": {"users": {ALICE: 0}},
             "name": "no power"},
        )
    assert exc.value.errcode == "M_INVALID_ROOM_STATE" and exc.value.status == 400
