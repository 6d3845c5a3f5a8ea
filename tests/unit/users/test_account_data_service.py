"""AccountDataService and PushRulesService against a real migrated database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.storage import Storage
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.users.account_data import AccountDataService
from dendrite_lite.users.push_rules import PushRulesService

ALICE = "@alice:test"
BOB = "@bob:test"
ROOM = "!room:test"


@pytest.fixture
async def env(tmp_path: Path):
    storage = await Storage.open(tmp_path / "db.sqlite", readers=2)
    notifier = Notifier()
    svc = await AccountDataService.open(storage, notifier)
    yield storage, notifier, svc
    await storage.close()


async def test_set_get_and_stream(env) -> None:
    _, notifier, svc = env
    assert svc.current_position() == 0
    with notifier.listen(ALICE) as alice, notifier.listen(BOB) as bob:
        await svc.set(ALICE, ALICE, None, "org.example.a", {"x": 1})
        assert await alice.wait(0) and not await bob.wait(0)
    p1 = svc.current_position()
    await svc.set(ALICE, ALICE, ROOM, "org.example.r", {"y": 2})
    await svc.set(ALICE, ALICE, None, "org.example.a", {"x": 3})
    p3 = svc.current_position()
    assert p3 == p1 + 2
    assert await svc.get(ALICE, ALICE, None, "org.example.a") == {"x": 3}
    assert await svc.get(ALICE, ALICE, ROOM, "org.example.r") == {"y": 2}
    # Global and room data of the same type are separate (no inheritance).
    with pytest.raises(MatrixError) as exc:
        await svc.get(ALICE, ALICE, ROOM, "org.example.a")
    assert (exc.value.status, exc.value.errcode) == (404, "M_NOT_FOUND")

    glob, rooms = await svc.changes_since(ALICE, p1, p3)
    assert glob == {"org.example.a": {"x": 3}} and rooms == {ROOM: {"org.example.r": {"y": 2}}}
    glob, rooms = await svc.changes_since(ALICE, p3, p3)
    assert glob == {} and rooms == {}
    # An initial sync always carries the push rules.
    glob, _ = await svc.changes_since(ALICE, 0, p3)
    assert set(glob) == {"org.example.a", "m.push_rules"}
    assert glob["m.push_rules"]["global"]["override"][0]["rule_id"] == ".m.rule.master"
    bob_global, bob_rooms = await svc.changes_since(BOB, 0, p3)
    assert list(bob_global) == ["m.push_rules"] and bob_rooms == {}


async def test_position_survives_restart(env, tmp_path: Path) -> None:
    storage, notifier, svc = env
    await svc.set(ALICE, ALICE, None, "a", {})
    await svc.set(ALICE, ALICE, None, "b", {})
    again = await AccountDataService.open(storage, notifier)
    assert again.current_position() == svc.current_position() == 2


@pytest.mark.parametrize("data_type", ["m.fully_read", "m.push_rules"])
@pytest.mark.parametrize("room", [None, ROOM])
async def test_server_managed_types_are_refused(env, data_type: str, room: str | None) -> None:
    _, _, svc = env
    with pytest.raises(MatrixError) as exc:
        await svc.set(ALICE, ALICE, room, data_type, {"event_id": "$x"})
    assert (exc.value.status, exc.value.errcode) == (405, "M_BAD_JSON")
    assert svc.current_position() == 0


async def test_only_own_data_and_valid_room_ids(env) -> None:
    _, _, svc = env
    for call in (
        svc.set(BOB, ALICE, None, "a", {}),
        svc.get(BOB, ALICE, None, "a"),
        svc.tags(BOB, ALICE, ROOM),
        svc.add_tag(BOB, ALICE, ROOM, "u.x", {}),
    ):
        with pytest.raises(MatrixError) as exc:
            await call
        assert (exc.value.status, exc.value.errcode) == (403, "M_FORBIDDEN")
    with pytest.raises(MatrixError) as exc:
        await svc.get(ALICE, ALICE, "@notaroom:test", "a")
    assert (exc.value.status, exc.value.errcode) == (400, "M_INVALID_PARAM")


async def test_tags(env) -> None:
    _, _, svc = env
    assert await svc.tags(ALICE, ALICE, ROOM) == {"tags": {}}
    await svc.add_tag(ALICE, ALICE, ROOM, "m.favourite", {"order": 0.25})
    await svc.add_tag(ALICE, ALICE, ROOM, "u.work", {})
    assert await svc.tags(ALICE, ALICE, ROOM) == {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}
    assert await svc.get(ALICE, ALICE, ROOM, "m.tag") == {
        "tags": {"m.favourite": {"order": 0.25}, "u.work": {}}
    }
    pos = svc.current_position()
    await svc.remove_tag(ALICE, ALICE, ROOM, "u.nothere")  # no change, no new position
    assert svc.current_position() == pos
    await svc.remove_tag(ALICE, ALICE, ROOM, "m.favourite")
    _, rooms = await svc.changes_since(ALICE, pos, svc.current_position())
    assert rooms == {ROOM: {"m.tag": {"tags": {"u.work": {}}}}}
    with pytest.raises(MatrixError) as exc:
        await svc.add_tag(ALICE, ALICE, ROOM, "x" * 256, {})
    assert exc.value.errcode == "M_INVALID_PARAM"
    with pytest.raises(MatrixError) as exc:
        await svc.add_tag(ALICE, ALICE, ROOM, "u.a", {"order": "high"})
    assert exc.value.errcode == "M_BAD_JSON"


async def test_concurrent_tag_edits_are_not_lost(env) -> None:
    _, _, svc = env
    await asyncio.gather(*(svc.add_tag(ALICE, ALICE, ROOM, f"u.t{i}", {}) for i in range(20)))
    assert len((await svc.tags(ALICE, ALICE, ROOM))["tags"]) == 20


async def test_push_rules_service(env) -> None:
    _, notifier, svc = env
    rules = PushRulesService(svc)
    default = await rules.all_rules(ALICE)
    assert [r["rule_id"] for r in default["global"]["content"]] == [".m.rule.contains_user_name"]
    with notifier.listen(ALICE) as alice:
        await rules.put_rule(ALICE, "content", "cake", {"pattern": "cake*", "actions": ["notify"]})
        assert await alice.wait(0)
    await rules.put_rule(ALICE, "content", "pie", {"pattern": "pie", "actions": []}, after="cake")
    assert [r["rule_id"] for r in (await rules.all_rules(ALICE))["global"]["content"]] == ["cake", "pie", ".m.rule.contains_user_name"]
    await rules.set_enabled(ALICE, "content", "cake", False)
    assert await rules.get_attribute(ALICE, "content", "cake", "enabled") == {"enabled": False}
    await rules.set_actions(ALICE, "override", ".m.rule.master", ["notify"])
    master = await rules.get_rule(ALICE, "override", ".m.rule.master")
    assert master["actions"] == ["notify"] and master["default"] is True
    await rules.delete_rule(ALICE, "content", "pie")
    with pytest.raises(MatrixError) as exc:
        await rules.get_rule(ALICE, "content", "pie")
    assert exc.value.status == 404
    # A failed edit writes nothing.
    pos = svc.current_position()
    with pytest.raises(MatrixError):
        await rules.delete_rule(ALICE, "content", "nope")
    assert svc.current_position() == pos
    # The account data API and /sync show the full ruleset, not the stored document.
    full = await svc.get(ALICE, ALICE, None, "m.push_rules")
    assert full == await rules.all_rules(ALICE)
    glob, _ = await svc.changes_since(ALICE, pos - 1, pos)
    assert glob["m.push_rules"] == full
    # Bob's rules are untouched.
    bob = (await rules.all_rules(BOB))["global"]
    assert [r["rule_id"] for r in bob["content"]] == [".m.rule.contains_user_name"]
    assert bob["override"][0]["actions"] == []
