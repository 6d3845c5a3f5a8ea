"""Membership, alias and upgrade services against a real migrated database (no HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.errors import MatrixError
from dendrite_lite.rooms.aliases import alias_from_localpart, parse_alias
from dendrite_lite.rooms.creation import parse_create_room
from dendrite_lite.rooms.membership import MembershipService, parse_target_user
from dendrite_lite.rooms.pipeline import RoomPipeline
from dendrite_lite.rooms.upgrade import parse_upgrade
from dendrite_lite.storage import Storage
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.users.accounts import create_account

SERVER = "test"
ALICE, BOB = "@alice:test", "@bob:test"


@pytest.fixture
async def svc(tmp_path: Path):
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    pipeline = RoomPipeline(storage, server_name=SERVER, key=new_server_key(), notifier=Notifier())
    for user in (ALICE, BOB):
        await create_account(storage, user, None)
    yield MembershipService(storage, pipeline, SERVER)
    await storage.close()


@pytest.mark.parametrize("alias", ["#a:test", "#a.b-c:example.org:8448", "#ünï:test"])
def test_parse_alias_accepts(alias: str) -> None:
    assert parse_alias(alias)[0] == alias[1:].partition(":")[0]


@pytest.mark.parametrize("alias", ["a:test", "#:test", "#a", "#a:", "#a:bad server", 5, "#" + "x" * 255 + ":t"])
def test_parse_alias_rejects(alias) -> None:
    with pytest.raises(MatrixError) as e:
        parse_alias(alias)
    assert e.value.errcode == "M_INVALID_PARAM"


def test_alias_from_localpart() -> None:
    assert alias_from_localpart("room", "example.org") == "#room:example.org"
    for bad in ("", "a:b", "#a", "a b"):
        with pytest.raises(MatrixError):
            alias_from_localpart(bad, "example.org")


def test_parse_target_user_and_upgrade() -> None:
    assert parse_target_user({"user_id": BOB}) == BOB
    with pytest.raises(MatrixError) as e:
        parse_target_user({"user_id": "bob"})
    assert e.value.errcode == "M_INVALID_PARAM"
    req = parse_upgrade({"new_version": "12", "additional_creators": [BOB]})
    assert req.new_version.identifier == "12" and req.additional_creators == (BOB,)
    assert parse_upgrade({"new_version": "11", "additional_creators": [BOB]}).additional_creators == ()


async def test_members_filters_combine_as_or(svc: MembershipService) -> None:
    room_id, _ = await svc.create_room(ALICE, parse_create_room({"preset": "public_chat"}))
    await svc.invite(ALICE, room_id, BOB)
    by = lambda events: sorted((e.event.state_key, e.event.membership) for e in events)  # noqa: E731
    assert by(await svc.members(ALICE, room_id)) == [(ALICE, "join"), (BOB, "invite")]
    assert by(await svc.members(ALICE, room_id, membership="invite")) == [(BOB, "invite")]
    assert by(await svc.members(ALICE, room_id, not_membership="invite")) == [(ALICE, "join")]
    assert by(await svc.members(ALICE, room_id, membership="invite", not_membership="join")) == [
        (BOB, "invite")
    ]
    with pytest.raises(MatrixError) as e:
        await svc.members(BOB, room_id)  # invited, never joined
    assert e.value.errcode == "M_FORBIDDEN"


async def test_unban_requires_a_ban_and_forget_requires_leaving(svc: MembershipService) -> None:
    room_id, _ = await svc.create_room(ALICE, parse_create_room({"preset": "public_chat"}))
    await svc.join(BOB, room_id)
    with pytest.raises(MatrixError) as e:
        await svc.unban(ALICE, room_id, BOB)  # would otherwise kick bob
    assert e.value.errcode == "M_FORBIDDEN"
    assert await svc.joined_rooms(BOB) == [room_id]
    with pytest.raises(MatrixError) as e:
        await svc.forget(BOB, room_id)
    assert (e.value.errcode, e.value.status) == ("M_UNKNOWN", 400)
    await svc.ban(ALICE, room_id, BOB, reason="r")
    await svc.forget(BOB, room_id)
    assert await svc.joined_rooms(BOB) == []
