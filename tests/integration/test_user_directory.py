"""POST /user_directory/search (users.yaml): users sharing a room with the searcher or joined to
public or world_readable rooms, case-insensitive word prefixes of user ID and display name,
ranked, limited; profile and membership changes show at the next search."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.module_server import server_client
from tests.integration.sync_helpers import User, create_room, join, new_user
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    async for c in server_client(tmp_path_factory, "userdir"):
        yield c


async def _user(client: httpx.AsyncClient, name: str, display: str | None = None) -> User:
    user = await new_user(client, name)
    if display is not None:
        resp = await user.put(f"/profile/{user.user_id}/displayname", {"displayname": display})
        assert resp.status_code == 200, resp.text
    return user


async def _search(user: User, term: Any, **extra: Any) -> dict[str, Any]:
    resp = await user.post("/user_directory/search", {"search_term": term, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _ids(user: User, term: str) -> list[str]:
    return [r["user_id"] for r in (await _search(user, term))["results"]]


async def test_visibility_ranking_and_changes(client: httpx.AsyncClient) -> None:
    me = await _user(client, "seeker")
    friend = await _user(client, "alice", "Alice Smith")
    stranger = await _user(client, "alicia")  # its localpart is its display name
    hidden = await _user(client, "alina", "Alina")
    reader = await _user(client, "alison", "Alison")
    host = await _user(client, "host")
    private = await create_room(me, preset="private_chat", invite=[friend.user_id])
    await join(friend, private)
    public = await create_room(host, preset="public_chat")
    await join(stranger, public)
    secret = await create_room(host, preset="private_chat", invite=[hidden.user_id])
    await join(hidden, secret)
    readable = await create_room(host, preset="private_chat", invite=[reader.user_id],
                                 initial_state=[{"type": "m.room.history_visibility",
                                                 "state_key": "", "content": {
                                                     "history_visibility": "world_readable"}}])
    await join(reader, readable)

    body = await _search(me, "ALI")
    assert_matches_operation("client-server/users.yaml", "/user_directory/search", "post", 200, body)
    assert body == {"limited": False, "results": [
        {"user_id": friend.user_id, "display_name": "Alice Smith"},
        {"user_id": stranger.user_id, "display_name": "alicia"},
        {"user_id": reader.user_id, "display_name": "Alison"},
    ]}
    assert await _ids(me, "smi al") == [friend.user_id]
    assert await _ids(me, "lice") == []  # prefixes of words, not substrings
    limited = await _search(me, "ali", limit=1)
    assert limited == {"limited": True, "results": body["results"][:1]}

    # A new display name is searchable at once, the old one is gone.
    resp = await friend.put(f"/profile/{friend.user_id}/displayname", {"displayname": "Zed"})
    assert resp.status_code == 200, resp.text
    assert await _ids(me, "zed") == [friend.user_id]
    assert await _ids(me, "smith") == []
    # Leaving the public room hides alicia; a room turning invite-only hides its members.
    resp = await stranger.post(f"/rooms/{public}/leave", {})
    assert resp.status_code == 200, resp.text
    assert stranger.user_id not in await _ids(me, "alicia")
    await join(stranger, public)
    assert await _ids(me, "alicia") == [stranger.user_id]
    resp = await host.put(f"/rooms/{public}/state/m.room.join_rules/", {"join_rule": "invite"})
    assert resp.status_code == 200, resp.text
    assert await _ids(me, "alicia") == []


async def test_empty_term_and_errors(client: httpx.AsyncClient) -> None:
    me = await _user(client, "errs")
    assert await _search(me, "  ") == {"results": [], "limited": False}
    for body, errcode in (({}, "M_MISSING_PARAM"), ({"search_term": 5}, "M_INVALID_PARAM"),
                          ({"search_term": "a", "limit": -1}, "M_INVALID_PARAM"),
                          ({"search_term": "a", "limit": "x"}, "M_INVALID_PARAM")):
        resp = await me.post("/user_directory/search", body)
        assert resp.status_code == 400 and resp.json()["errcode"] == errcode, body
    resp = await client.post("/_matrix/client/v3/user_directory/search", json={"search_term": "a"})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"


async def test_searcher_finds_themselves_only_through_a_public_room(
    client: httpx.AsyncClient,
) -> None:
    """SyTest "Users appear/disappear from directory when join_rules are changed" (and the
    history_visibility twins): alone with one other user in a private room, a user does not
    "share a room" with themselves."""
    creator = await _user(client, "kestrel")
    me = await _user(client, "osprey", "Osprey Unique")
    room = await create_room(creator, preset="private_chat", invite=[me.user_id])
    await join(me, room)
    assert await _ids(me, "osprey unique") == []
    assert await _ids(creator, "osprey unique") == [me.user_id]
    for state_type, public, private in (
        ("m.room.join_rules", {"join_rule": "public"}, {"join_rule": "invite"}),
        ("m.room.history_visibility", {"history_visibility": "world_readable"},
         {"history_visibility": "shared"}),
    ):
        resp = await creator.put(f"/rooms/{room}/state/{state_type}/", public)
        assert resp.status_code == 200, resp.text
        assert await _ids(me, "osprey unique") == [me.user_id]
        resp = await creator.put(f"/rooms/{room}/state/{state_type}/", private)
        assert resp.status_code == 200, resp.text
        assert await _ids(me, "osprey unique") == []
