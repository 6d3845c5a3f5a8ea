"""POST /rooms/{roomId}/upgrade over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.room_helpers import SERVER_NAME, new_user
from tests.spec_schema import assert_matches_operation

CS = "client-server/"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("upgrade")) as s:
        yield s


@pytest.mark.parametrize(("old", "new"), [("10", "12"), ("12", "11"), ("11", "12")])
async def test_upgrade_copies_state_and_moves_aliases(srv: RunningServer, old: str, new: str) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    alias_name = f"up{old}to{new}"
    alias = f"#{alias_name}:{SERVER_NAME}"
    room_id = await alice.create_room(
        room_version=old, preset="public_chat", name="Old", topic="T", room_alias_name=alias_name,
        visibility="public",
        initial_state=[{"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
    )
    await bob.call("POST", f"/join/{room_id}", {})
    resp = await bob.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": new}, expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await alice.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": new})
    assert_matches_operation(CS + "room_upgrades.yaml", "/rooms/{roomId}/upgrade", "post", 200, resp.json())
    new_room = resp.json()["replacement_room"]
    create = (await alice.state(new_room, "m.room.create")).json()
    assert create["room_version"] == new and create["predecessor"]["room_id"] == room_id
    for event_type, content in (
        ("m.room.name", {"name": "Old"}),
        ("m.room.join_rules", {"join_rule": "public"}),
        ("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}),
        ("m.room.canonical_alias", {"alias": alias}),
        ("m.room.history_visibility", {"history_visibility": "shared"}),
    ):
        assert (await alice.state(new_room, event_type)).json() == content, event_type
    assert (await alice.state(new_room, "m.room.topic")).json()["topic"] == "T"
    # public_chat has no m.room.guest_access (absent = forbidden); the new room says so outright.
    await alice.state(room_id, "m.room.guest_access", expect=404)
    guests = (await alice.state(new_room, "m.room.guest_access")).json()
    assert guests == {"guest_access": "forbidden"}
    tomb = (await bob.state(room_id, "m.room.tombstone")).json()
    assert tomb["replacement_room"] == new_room
    assert (await alice.state(room_id, "m.room.canonical_alias")).json() == {}
    got = await bob.call("GET", "/directory/room/" + alias.replace("#", "%23"))
    assert got.json()["room_id"] == new_room
    # The old room no longer lets ordinary members talk; the new one does once they join.
    resp = await bob.call("PUT", f"/rooms/{room_id}/send/m.room.message/x{old}{new}", {"body": "x"}, expect=403)
    await bob.call("POST", f"/join/{new_room}", {})
    await bob.send(new_room, "hello new room")
    # Upgrading twice is refused.
    resp = await alice.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": new}, expect=400)
    assert resp.json()["errcode"] == "M_BAD_STATE"
    public = (await srv.client.get("/_matrix/client/v3/publicRooms")).json()["chunk"]
    assert new_room in [c["room_id"] for c in public] and room_id not in [c["room_id"] for c in public]


async def test_upgrade_keeps_guest_access(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room(preset="private_chat")
    resp = await alice.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": "12"})
    new_room = resp.json()["replacement_room"]
    guests = (await alice.state(new_room, "m.room.guest_access")).json()
    assert guests == {"guest_access": "can_join"}


async def test_upgrade_errors(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room()
    resp = await alice.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": "99"}, expect=400)
    assert resp.json()["errcode"] == "M_UNSUPPORTED_ROOM_VERSION"
    resp = await alice.call("POST", f"/rooms/{room_id}/upgrade", {}, expect=400)
    assert resp.json()["errcode"] == "M_MISSING_PARAM"
    resp = await alice.call("POST", "/rooms/!nope:x/upgrade", {"new_version": "12"}, expect=404)
    outsider = await new_user(srv, "eve")
    resp = await outsider.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": "12"}, expect=403)


async def test_upgrade_links_the_tombstone_and_keeps_bans_federation_tags_and_direct(
    srv: RunningServer,
) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room_id = await alice.create_room(room_version="10", creation_content={"m.federate": False})
    await alice.call("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id})
    await bob.call("POST", f"/join/{room_id}", {})
    ban = {"membership": "ban", "reason": "spam"}
    await alice.call("PUT", f"/rooms/{room_id}/state/m.room.member/@spammer:elsewhere.example", ban)
    await bob.call("PUT", f"/user/{bob.user_id}/rooms/{room_id}/tags/u.work", {"order": 0.5})
    direct = {"@carol:elsewhere.example": ["!other:x", room_id]}
    await alice.call("PUT", f"/user/{alice.user_id}/account_data/m.direct", direct)
    new_room = (await alice.call("POST", f"/rooms/{room_id}/upgrade", {"new_version": "11"})).json()[
        "replacement_room"
    ]
    create = (await alice.state(new_room, "m.room.create")).json()
    tombstone = await alice.call("GET", f"/rooms/{room_id}/state")
    tomb_event = next(e for e in tombstone.json() if e["type"] == "m.room.tombstone")
    # Synapse's link (SyTest checks it): the predecessor's event is the old room's tombstone.
    assert create["predecessor"] == {"room_id": room_id, "event_id": tomb_event["event_id"]}
    assert create["m.federate"] is False
    banned = await alice.state(new_room, "m.room.member", "@spammer:elsewhere.example")
    assert banned.json() == ban
    tags = (await bob.call("GET", f"/user/{bob.user_id}/rooms/{new_room}/tags")).json()
    assert tags == {"tags": {"u.work": {"order": 0.5}}}
    got = (await alice.call("GET", f"/user/{alice.user_id}/account_data/m.direct")).json()
    assert got == {"@carol:elsewhere.example": ["!other:x", room_id, new_room]}
