"""GET /v1/rooms/{roomId}/hierarchy (modules/spaces.md): depth-first walk in the spec's child
order, only rooms the user may see, loops cut, max_depth, suggested_only, pagination, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.federation_helpers import FED, RemoteServer, join_remote_user
from tests.integration.sync_helpers import User, create_room, join, new_user
from tests.spec_schema import assert_matches_operation

V1 = "/_matrix/client/v1"
SERVER = "test.localhost"


@dataclass
class Tree:
    srv: RunningServer
    alice: User
    bob: User
    carol: User
    ids: dict[str, str]


async def _child(owner: User, space: str, child: str, **content: Any) -> None:
    body = {"via": [SERVER], **content}
    resp = await owner.put(f"/rooms/{space}/state/m.space.child/{child}", body)
    assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
async def tree(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Tree]:
    """space S: S2 (order "a"; a space holding D and, looping, S), A (order "b", suggested),
    then C (restricted to S members) and B (private) by time; E's link was removed."""
    async with running_server(tmp_path_factory.mktemp("hierarchy")) as srv:
        client = srv.client
        alice, bob, carol = [await new_user(client, n) for n in ("alice", "bob", "carol")]
        space = {"type": "m.space"}
        ids: dict[str, str] = {}
        ids["S"] = await create_room(alice, preset="public_chat", name="Space", creation_content=space)
        ids["S2"] = await create_room(alice, preset="public_chat", name="Sub", creation_content=space)
        ids["A"] = await create_room(alice, preset="public_chat", name="A", topic="about A")
        ids["B"] = await create_room(alice, preset="private_chat", name="B")
        ids["C"] = await create_room(alice, name="C", initial_state=[{
            "type": "m.room.join_rules", "state_key": "",
            "content": {"join_rule": "restricted",
                        "allow": [{"type": "m.room_membership", "room_id": ids["S"]}]},
        }])
        ids["D"] = await create_room(alice, preset="public_chat", name="D")
        ids["E"] = await create_room(alice, preset="public_chat", name="E")
        await _child(alice, ids["S"], ids["C"])
        await _child(alice, ids["S"], ids["B"])
        await _child(alice, ids["S"], ids["A"], order="b", suggested=True)
        await _child(alice, ids["S"], ids["S2"], order="a")
        await _child(alice, ids["S"], ids["E"])
        resp = await alice.put(f"/rooms/{ids['S']}/state/m.space.child/{ids['E']}", {})
        assert resp.status_code == 200, resp.text
        await _child(alice, ids["S2"], ids["D"])
        await _child(alice, ids["S2"], ids["S"])
        await join(bob, ids["S"])
        yield Tree(srv, alice, bob, carol, ids)


async def _get(user: User, room_id: str, **params: Any) -> httpx.Response:
    return await user.client.get(
        f"{V1}/rooms/{room_id}/hierarchy", params=params, headers=user.headers
    )


async def _names(user: User, tree: Tree, **params: Any) -> list[str]:
    resp = await _get(user, tree.ids["S"], **params)
    assert resp.status_code == 200, resp.text
    names = {v: k for k, v in tree.ids.items()}
    return [names[r["room_id"]] for r in resp.json()["rooms"]]


async def test_walk_order_and_visibility(tree: Tree) -> None:
    # bob (joined to S) sees C through the restricted rule but not the private B.
    assert await _names(tree.bob, tree) == ["S", "S2", "D", "A", "C"]
    # alice is in every room.
    assert await _names(tree.alice, tree) == ["S", "S2", "D", "A", "C", "B"]
    # carol is in no room: the restricted C is hidden too.
    assert await _names(tree.carol, tree) == ["S", "S2", "D", "A"]


async def test_summaries(tree: Tree) -> None:
    whole = (await _get(tree.bob, tree.ids["S"])).json()
    assert_matches_operation(
        "client-server/space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "get", 200, whole
    )
    rooms = whole["rooms"]
    space, a, c = rooms[0], rooms[3], rooms[4]
    assert [e["state_key"] for e in space["children_state"]] == [
        tree.ids["S2"], tree.ids["A"], tree.ids["C"], tree.ids["B"]
    ]
    child = space["children_state"][1]
    assert sorted(child) == ["content", "origin_server_ts", "sender", "state_key", "type"]
    assert child["content"] == {"via": [SERVER], "order": "b", "suggested": True}
    assert space["room_type"] == "m.space" and space["num_joined_members"] == 2
    assert a == {
        "room_id": tree.ids["A"], "name": "A", "topic": "about A", "num_joined_members": 1,
        "world_readable": False, "guest_can_join": False, "join_rule": "public",
        "room_version": a["room_version"], "children_state": [],
    }
    assert c["join_rule"] == "restricted" and c["allowed_room_ids"] == [tree.ids["S"]]


async def test_max_depth_and_suggested_only(tree: Tree) -> None:
    assert await _names(tree.bob, tree, max_depth=0) == ["S"]
    assert await _names(tree.bob, tree, max_depth=1) == ["S", "S2", "A", "C"]
    assert await _names(tree.bob, tree, suggested_only="true") == ["S", "A"]


async def test_pagination(tree: Tree) -> None:
    first = (await _get(tree.bob, tree.ids["S"], limit=2)).json()
    assert len(first["rooms"]) == 2
    second = (await _get(tree.bob, tree.ids["S"], limit=2, **{"from": first["next_batch"]})).json()
    third = (await _get(tree.bob, tree.ids["S"], limit=2, **{"from": second["next_batch"]})).json()
    assert "next_batch" not in third
    pages = first["rooms"] + second["rooms"] + third["rooms"]
    assert [r["room_id"] for r in pages] == [
        tree.ids[n] for n in ("S", "S2", "D", "A", "C")
    ]
    changed = await _get(tree.bob, tree.ids["S"], limit=2, max_depth=1, **{"from": first["next_batch"]})
    assert changed.status_code == 400 and changed.json()["errcode"] == "M_INVALID_PARAM"


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": "x"}, {"max_depth": -1}, {"from": "junk"},
               {"suggested_only": "maybe"}],
)
async def test_bad_params(tree: Tree, params: dict[str, Any]) -> None:
    resp = await _get(tree.bob, tree.ids["S"], **params)
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM", resp.text


async def test_forbidden(tree: Tree) -> None:
    for room_id in (tree.ids["B"], "!unknown:test.localhost"):
        resp = await _get(tree.bob, room_id)
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN", room_id
    resp = await tree.bob.client.get(f"{V1}/rooms/{tree.ids['S']}/hierarchy")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"


async def test_served_to_other_servers(tree: Tree) -> None:
    """F: P (public), Q (private), R (restricted to F members), a child held nowhere."""
    alice, srv = tree.alice, tree.srv
    remote = await RemoteServer.trusted_by(srv)
    space = {"type": "m.space"}
    f = await create_room(alice, preset="public_chat", name="Fed", creation_content=space)
    p = await create_room(alice, preset="public_chat", name="P")
    q = await create_room(alice, preset="private_chat", name="Q")
    r = await create_room(alice, name="R", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": f}]},
    }])
    for child, extra in ((p, {"suggested": True}), (q, {}), (r, {}), ("!nowhere:elsewhere.example", {})):
        await _child(alice, f, child, **extra)

    async def ask(room_id: str, query: str = "") -> httpx.Response:
        return await remote.request(srv, "GET", f"{FED}/hierarchy/{quote(room_id, safe='')}{query}")

    body = (await ask(f)).json()
    assert_matches_operation(
        "server-server/space_hierarchy.yaml", "/hierarchy/{roomId}", "get", 200, body
    )
    assert body["room"]["room_id"] == f and body["room"]["room_type"] == "m.space"
    assert [e["state_key"] for e in body["room"]["children_state"]] == [
        p, q, r, "!nowhere:elsewhere.example"
    ]
    assert [c["room_id"] for c in body["children"]] == [p]
    assert body["children"][0]["name"] == "P" and body["children"][0]["children_state"] == []
    assert body["inaccessible_children"] == [q, r]
    suggested = (await ask(f, "?suggested_only=true")).json()
    assert [c["room_id"] for c in suggested["children"]] == [p]
    assert suggested["inaccessible_children"] == []
    # Once one of its users is in F, the remote server may see R too.
    await join_remote_user(srv, f, remote.user("zoe"))
    assert [c["room_id"] for c in (await ask(f)).json()["children"]] == [p, r]
    for hidden in (q, "!unknown:test.localhost"):
        resp = await ask(hidden)
        assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    unsigned = await srv.federation.get(f"{FED}/hierarchy/{quote(f, safe='')}")
    assert unsigned.status_code == 401

    # Our user's walk: the child held nowhere is asked of its via server, which cannot be
    # reached: it is left out, the rest is listed.
    await _child(alice, f, "!far:elsewhere.example", via=[remote.name])
    listed = (await _get(alice, f)).json()["rooms"]
    assert [room["room_id"] for room in listed] == [f, p, q, r]
