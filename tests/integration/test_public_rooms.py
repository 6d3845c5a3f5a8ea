"""The published room directory, completed (issue 13 item 7): paging forward and back over
every listed room, filters by term and room type, our directory served over federation
(GET/POST /_matrix/federation/v1/publicRooms, signed), and `server=` for another server's
directory (an unreachable one is 502)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.federation_helpers import FED, RemoteServer
from tests.integration.sync_helpers import User, create_room, join, new_user
from tests.spec_schema import assert_matches_operation


@dataclass
class Directory:
    srv: RunningServer
    alice: User
    rooms: dict[str, str]  # name -> room id, listed
    remote: RemoteServer


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Directory]:
    """Five listed rooms with 4, 3, 2, 1 and 1 members (one a space, one found by its topic)
    and one unlisted room."""
    async with running_server(tmp_path_factory.mktemp("publicrooms")) as srv:
        alice = await new_user(srv.client, "alice")
        others = [await new_user(srv.client, f"member{i}") for i in range(3)]
        rooms: dict[str, str] = {}
        specs: list[tuple[str, dict[str, Any], int]] = [
            ("Big", {}, 3), ("Mid", {}, 2), ("Space", {"creation_content": {"type": "m.space"}}, 1),
            ("Quiet", {"topic": "knitting"}, 0), ("Tiny", {}, 0),
        ]
        for name, extra, members in specs:
            rooms[name] = await create_room(alice, preset="public_chat", visibility="public",
                                            name=name, **extra)
            for user in others[:members]:
                await join(user, rooms[name])
        await create_room(alice, preset="public_chat", name="Unlisted")
        yield Directory(srv, alice, rooms, await RemoteServer.trusted_by(srv))


def _names(world: Directory, chunk: list[dict[str, Any]]) -> list[str]:
    by_id = {v: k for k, v in world.rooms.items()}
    return [by_id[c["room_id"]] for c in chunk]


async def _post(world: Directory, body: dict[str, Any], **params: Any) -> Any:
    resp = await world.alice.client.post(
        "/_matrix/client/v3/publicRooms", json=body, params=params, headers=world.alice.headers
    )
    return resp


async def test_pages_forward_and_back(world: Directory) -> None:
    first = (await world.alice.get("/publicRooms", limit=2)).json()
    assert _names(world, first["chunk"]) == ["Big", "Mid"]
    assert first["total_room_count_estimate"] == 5 and "prev_batch" not in first
    second = (await world.alice.get("/publicRooms", limit=2, since=first["next_batch"])).json()
    assert _names(world, second["chunk"]) == ["Space", min(["Quiet", "Tiny"], key=world.rooms.__getitem__)]
    third = (await world.alice.get("/publicRooms", limit=2, since=second["next_batch"])).json()
    assert len(third["chunk"]) == 1 and "next_batch" not in third
    back = (await world.alice.get("/publicRooms", limit=2, since=second["prev_batch"])).json()
    assert back["chunk"] == first["chunk"]
    assert [c["num_joined_members"] for c in first["chunk"] + second["chunk"]] == [4, 3, 2, 1]
    resp = await world.alice.get("/publicRooms", since="garbage")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"


async def test_filters(world: Directory) -> None:
    knit = (await _post(world, {"filter": {"generic_search_term": "KNIT"}})).json()
    assert _names(world, knit["chunk"]) == ["Quiet"] and knit["total_room_count_estimate"] == 1
    spaces = (await _post(world, {"filter": {"room_types": ["m.space"]}})).json()
    assert _names(world, spaces["chunk"]) == ["Space"]
    plain = (await _post(world, {"filter": {"room_types": [None]}})).json()
    assert "Space" not in _names(world, plain["chunk"]) and len(plain["chunk"]) == 4
    both = (await _post(world, {"filter": {"room_types": [None, "m.space"]}, "limit": 10})).json()
    assert len(both["chunk"]) == 5
    # Our own server name is this server.
    ours = await _post(world, {}, server=world.srv.config.server.server_name)
    assert len(ours.json()["chunk"]) == 5


async def test_served_over_federation(world: Directory) -> None:
    remote, srv = world.remote, world.srv
    page = await remote.request(srv, "GET", f"{FED}/publicRooms?limit=2")
    assert page.status_code == 200, page.text
    assert_matches_operation("server-server/public_rooms.yaml", "/publicRooms", "get", 200, page.json())
    local = (await world.alice.get("/publicRooms", limit=2)).json()
    assert page.json() == local
    found = await remote.request(
        srv, "POST", f"{FED}/publicRooms", {"filter": {"generic_search_term": "knitting"}}
    )
    assert _names(world, found.json()["chunk"]) == ["Quiet"]
    bad = await remote.request(srv, "POST", f"{FED}/publicRooms", {"limit": "ten"})
    assert bad.status_code == 400 and bad.json()["errcode"] == "M_BAD_JSON"
    unsigned = await srv.federation.get(f"{FED}/publicRooms")
    assert unsigned.status_code == 401 and unsigned.json()["errcode"] == "M_UNAUTHORIZED"


async def test_unreachable_server(world: Directory) -> None:
    anonymous = await world.srv.client.get(
        "/_matrix/client/v3/publicRooms", params={"server": world.remote.name}
    )
    assert anonymous.status_code == 401 and anonymous.json()["errcode"] == "M_MISSING_TOKEN"
    mine = await world.srv.client.get(
        "/_matrix/client/v3/publicRooms", params={"server": world.srv.config.server.server_name}
    )
    assert mine.status_code == 200 and len(mine.json()["chunk"]) == 5
    resp = await world.alice.get("/publicRooms", server=world.remote.name)
    assert resp.status_code == 502 and resp.json()["errcode"] == "M_UNKNOWN"
    resp = await _post(world, {"filter": {"generic_search_term": "x"}}, server=world.remote.name)
    assert resp.status_code == 502 and resp.json()["errcode"] == "M_UNKNOWN"
