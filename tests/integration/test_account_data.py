"""Account data and room tags over HTTP (account-data.yaml, tags.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.user_data_helpers import World, assert_error, open_world, q
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async for w in open_world(tmp_path_factory.mktemp("account_data")):
        yield w


async def test_global_account_data_roundtrip(world: World) -> None:
    alice = q(world.ids["alice"])
    path = f"/user/{alice}/account_data/org.example.config"
    assert_error(await world.call("alice", "GET", path), 404, "M_NOT_FOUND")
    resp = await world.call("alice", "PUT", path, {"theme": "dark"})
    assert resp.status_code == 200 and resp.json() == {}
    assert_matches_operation("client-server/account-data.yaml", "/user/{userId}/account_data/{type}", "put", 200, resp.json())
    resp = await world.call("alice", "GET", path)
    assert resp.status_code == 200 and resp.json() == {"theme": "dark"}
    await world.call("alice", "PUT", path, {"theme": "light"})
    assert (await world.call("alice", "GET", path)).json() == {"theme": "light"}
    # Only your own.
    assert_error(await world.call("bob", "GET", path), 403, "M_FORBIDDEN")
    assert_error(await world.call("bob", "PUT", path, {"x": 1}), 403, "M_FORBIDDEN")


async def test_room_account_data_roundtrip(world: World) -> None:
    alice, room = q(world.ids["alice"]), q(world.room_id)
    path = f"/user/{alice}/rooms/{room}/account_data/org.example.room"
    assert_error(await world.call("alice", "GET", path), 404, "M_NOT_FOUND")
    assert (await world.call("alice", "PUT", path, {"a": [1, 2]})).status_code == 200
    assert (await world.call("alice", "GET", path)).json() == {"a": [1, 2]}
    # No inheritance between room and global data of the same type.
    assert_error(await world.call("alice", "GET", f"/user/{alice}/account_data/org.example.room"), 404, "M_NOT_FOUND")
    bad_room = f"/user/{alice}/rooms/{q('@notaroom:x')}/account_data/t"
    assert_error(await world.call("alice", "GET", bad_room), 400, "M_INVALID_PARAM")
    assert_error(await world.call("alice", "PUT", bad_room, {}), 400, "M_INVALID_PARAM")
    assert_error(await world.call("bob", "PUT", path, {}), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("data_type", ["m.fully_read", "m.push_rules"])
async def test_server_managed_types_refused(world: World, data_type: str) -> None:
    alice, room = q(world.ids["alice"]), q(world.room_id)
    for path in (f"/user/{alice}/account_data/{data_type}", f"/user/{alice}/rooms/{room}/account_data/{data_type}"):
        resp = await world.call("alice", "PUT", path, {"event_id": "$x"})
        assert_error(resp, 405, "M_BAD_JSON")
        assert_matches_operation("client-server/account-data.yaml", "/user/{userId}/account_data/{type}", "put", 405, resp.json())


async def test_push_rules_readable_as_account_data(world: World) -> None:
    resp = await world.call("alice", "GET", f"/user/{q(world.ids['alice'])}/account_data/m.push_rules")
    assert resp.status_code == 200
    assert resp.json() == (await world.call("alice", "GET", "/pushrules/")).json()


async def test_bad_bodies(world: World) -> None:
    path = f"/user/{q(world.ids['alice'])}/account_data/org.example.x"
    resp = await world.client.put(
        f"/_matrix/client/v3{path}", content=b"not json",
        headers={"Authorization": f"Bearer {world.tokens['alice']}"},
    )
    assert_error(resp, 400, "M_NOT_JSON")
    assert_error(await world.call("alice", "PUT", path, [1, 2]), 400, "M_BAD_JSON")
    assert_error(await world.client.get(f"/_matrix/client/v3{path}"), 401, "M_MISSING_TOKEN")


async def test_tags(world: World) -> None:
    alice, room = q(world.ids["alice"]), q(world.room_id)
    base = f"/user/{alice}/rooms/{room}/tags"
    resp = await world.call("alice", "GET", base)
    assert resp.status_code == 200 and resp.json() == {"tags": {}}
    assert (await world.call("alice", "PUT", f"{base}/m.favourite", {"order": 0.1})).status_code == 200
    assert (await world.call("alice", "PUT", f"{base}/u.Work", {})).status_code == 200
    resp = await world.call("alice", "GET", base)
    assert resp.json() == {"tags": {"m.favourite": {"order": 0.1}, "u.Work": {}}}
    assert_matches_operation("client-server/tags.yaml", "/user/{userId}/rooms/{roomId}/tags", "get", 200, resp.json())
    # Tags are the m.tag room account data.
    tag_data = await world.call("alice", "GET", f"/user/{alice}/rooms/{room}/account_data/m.tag")
    assert tag_data.json() == resp.json()
    resp = await world.call("alice", "DELETE", f"{base}/m.favourite")
    assert resp.status_code == 200 and resp.json() == {}
    assert (await world.call("alice", "DELETE", f"{base}/u.never")).status_code == 200
    assert (await world.call("alice", "GET", base)).json() == {"tags": {"u.Work": {}}}
    assert_error(await world.call("bob", "GET", base), 403, "M_FORBIDDEN")
    assert_error(await world.call("bob", "PUT", f"{base}/u.x", {}), 403, "M_FORBIDDEN")
    assert_error(await world.call("bob", "DELETE", f"{base}/u.Work"), 403, "M_FORBIDDEN")
    assert_error(await world.call("alice", "PUT", f"{base}/{'t' * 256}", {}), 400, "M_INVALID_PARAM")
    assert_error(await world.call("alice", "PUT", f"{base}/u.y", {"order": "first"}), 400, "M_BAD_JSON")


async def test_account_data_wakes_only_its_user(world: World) -> None:
    notifier = world.services.notifier
    with notifier.listen(world.ids["alice"]) as alice, notifier.listen(world.ids["bob"]) as bob:
        await world.call("alice", "PUT", f"/user/{q(world.ids['alice'])}/account_data/org.example.w", {"n": 1})
        assert await alice.wait(1) and not await bob.wait(0)
    account_data = world.services.account_data
    pos = account_data.current_position()
    glob, rooms = await account_data.changes_since(world.ids["alice"], pos - 1, pos)
    assert glob == {"org.example.w": {"n": 1}} and rooms == {}
