"""Room aliases, canonical alias validation and the published room directory over real HTTP."""

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
    async with running_server(tmp_path_factory.mktemp("aliases")) as s:
        yield s


def _url(alias: str) -> str:
    return "/directory/room/" + alias.replace("#", "%23")


async def test_alias_lifecycle(srv: RunningServer) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room_id = await alice.create_room(preset="public_chat")
    alias = f"#life:{SERVER_NAME}"
    resp = await alice.call("PUT", _url(alias), {"room_id": room_id})
    assert_matches_operation(CS + "directory.yaml", "/directory/room/{roomAlias}", "put", 200, resp.json())
    taken = await alice.call("PUT", _url(alias), {"room_id": room_id}, expect=409)
    assert taken.json()["errcode"] == "M_UNKNOWN"
    got = await bob.call("GET", _url(alias))
    assert_matches_operation(CS + "directory.yaml", "/directory/room/{roomAlias}", "get", 200, got.json())
    assert got.json()["room_id"] == room_id
    # Bob is not joined: may not list the room's aliases (the room is not world_readable).
    resp = await bob.call("GET", f"/rooms/{room_id}/aliases", expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    await bob.call("POST", f"/join/{room_id}", {})
    listed = await bob.call("GET", f"/rooms/{room_id}/aliases")
    assert_matches_operation(CS + "directory.yaml", "/rooms/{roomId}/aliases", "get", 200, listed.json())
    assert listed.json() == {"aliases": [alias]}
    # Bob neither created it nor may edit the canonical alias: no deleting.
    resp = await bob.call("DELETE", _url(alias), expect=403)
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.call("DELETE", _url(alias))
    resp = await bob.call("GET", _url(alias), expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await alice.call("DELETE", _url(alias), expect=404)


async def test_alias_errors(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room()
    for bad in ("nohash:x", "#nocolon", "#a:bad_server!"):
        resp = await alice.call("PUT", _url(bad), {"room_id": room_id}, expect=400)
        assert resp.json()["errcode"] == "M_INVALID_PARAM", bad
    resp = await alice.call("PUT", _url("#x:other.example"), {"room_id": room_id}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    resp = await alice.call("PUT", _url(f"#x:{SERVER_NAME}"), {"room_id": "!nope:x"}, expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await alice.call("PUT", _url(f"#x:{SERVER_NAME}"), {}, expect=400)
    assert resp.json()["errcode"] == "M_MISSING_PARAM"
    outsider = await new_user(srv, "eve")
    resp = await outsider.call("PUT", _url(f"#x:{SERVER_NAME}"), {"room_id": room_id}, expect=403)
    resp = await alice.call("GET", _url("#far:other.example"), expect=404)
    assert resp.json()["errcode"] == "M_NOT_FOUND"


async def test_canonical_alias_must_point_to_the_room(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    room_id = await alice.create_room()
    other = await alice.create_room()
    mine, theirs = f"#mine:{SERVER_NAME}", f"#theirs:{SERVER_NAME}"
    await alice.call("PUT", _url(mine), {"room_id": room_id})
    await alice.call("PUT", _url(theirs), {"room_id": other})
    path = f"/rooms/{room_id}/state/m.room.canonical_alias"
    resp = await alice.call("PUT", path, {"alias": theirs}, expect=400)
    assert resp.json()["errcode"] == "M_BAD_ALIAS"
    resp = await alice.call("PUT", path, {"alias": mine, "alt_aliases": [f"#ghost:{SERVER_NAME}"]}, expect=400)
    assert resp.json()["errcode"] == "M_BAD_ALIAS"
    resp = await alice.call("PUT", path, {"alias": "not an alias"}, expect=400)
    assert resp.json()["errcode"] == "M_INVALID_PARAM"
    await alice.call("PUT", path, {"alias": mine, "alt_aliases": [mine]})
    # Deleting the alias also takes it out of the canonical alias event.
    await alice.call("DELETE", _url(mine))
    assert (await alice.state(room_id, "m.room.canonical_alias")).json() == {"alt_aliases": []}


async def test_public_room_directory(srv: RunningServer) -> None:
    alice = await new_user(srv, "alice")
    public = await alice.create_room(visibility="public", name="Zebra Club", topic="stripes")
    hidden = await alice.create_room(name="Zebra Secret")
    resp = await alice.client.get("/_matrix/client/v3/publicRooms")
    assert resp.status_code == 200
    assert_matches_operation(CS + "list_public_rooms.yaml", "/publicRooms", "get", 200, resp.json())
    ids = [c["room_id"] for c in resp.json()["chunk"]]
    assert public in ids and hidden not in ids
    chunk = next(c for c in resp.json()["chunk"] if c["room_id"] == public)
    assert chunk["name"] == "Zebra Club" and chunk["num_joined_members"] == 1
    assert chunk["join_rule"] == "public" and chunk["world_readable"] is False
    found = await alice.call("POST", "/publicRooms", {"filter": {"generic_search_term": "zebra"}})
    assert [c["room_id"] for c in found.json()["chunk"]] == [public]
    vis = await alice.call("GET", f"/directory/list/room/{hidden}")
    assert vis.json() == {"visibility": "private"}
    await alice.call("PUT", f"/directory/list/room/{hidden}", {"visibility": "public"})
    found = await alice.call("POST", "/publicRooms", {"filter": {"generic_search_term": "ZEBRA"}, "limit": 1})
    assert len(found.json()["chunk"]) == 1 and found.json()["next_batch"] == "o1"
    page2 = await alice.call("POST", "/publicRooms", {"filter": {"generic_search_term": "zebra"}, "since": "o1"})
    assert {found.json()["chunk"][0]["room_id"], page2.json()["chunk"][0]["room_id"]} == {public, hidden}
    bob = await new_user(srv, "bob")
    resp = await bob.call("PUT", f"/directory/list/room/{hidden}", {"visibility": "private"}, expect=403)
    resp = await alice.call("GET", "/directory/list/room/!nope:x", expect=404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"since": 1}, "since"),
        ({"limit": "10"}, "limit"),
        ({"limit": True}, "limit"),
        ({"filter": []}, "filter"),
        ({"filter": {"generic_search_term": ["zebra"]}}, "filter.generic_search_term"),
        ({"filter": {"room_types": [1]}}, "filter.room_types"),
        ({"include_all_networks": "yes"}, "include_all_networks"),
        ({"third_party_instance_id": {}}, "third_party_instance_id"),
    ],
)
async def test_public_rooms_body_fields_are_type_checked(
    srv: RunningServer, body: dict[str, object], field: str
) -> None:
    alice = await new_user(srv, "typed")
    resp = await alice.call("POST", "/publicRooms", body, expect=400)
    assert resp.json()["errcode"] == "M_BAD_JSON"
    assert resp.json()["error"].startswith(field + " ")
