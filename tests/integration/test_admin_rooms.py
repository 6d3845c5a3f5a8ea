"""Synapse's admin rooms API (docs/admin_api/rooms.md) through a real server: the room list
(shape, search, order, paging), a room's details, members, state and messages, blocking and
its effect on joins and invites, make_room_admin, and room deletion (v1 and v2) with what the
members see afterwards."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.admin_room_helpers import (
    V1,
    V2,
    admin_call,
    make_admin,
    wait_for_status,
)
from tests.integration.room_helpers import User, new_user

LISTED_KEYS = {
    "room_id",
    "name",
    "canonical_alias",
    "joined_members",
    "joined_local_members",
    "version",
    "creator",
    "encryption",
    "federatable",
    "public",
    "join_rules",
    "guest_access",
    "history_visibility",
    "state_events",
    "room_type",
}


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("admin_rooms")) as s:
        yield s


@pytest.fixture(scope="module")
async def admin(srv: RunningServer) -> User:
    return await make_admin(srv)


@pytest.fixture(scope="module")
async def listed(srv: RunningServer) -> dict[str, Any]:
    """Three rooms named zq-*: a public one with an alias and two members, an encrypted one
    that does not federate, a space."""
    owner = await new_user(srv, "owner")
    guest = await new_user(srv, "guest")
    public = await owner.create_room(
        name="zq-Bravo",
        preset="public_chat",
        room_alias_name="zqbravo",
        visibility="public",
    )
    await guest.call("POST", f"/rooms/{public}/join", {})
    secret = await owner.create_room(
        name="zq-alpha",
        creation_content={"m.federate": False},
        initial_state=[
            {
                "type": "m.room.encryption",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            }
        ],
    )
    space = await owner.create_room(
        name="zq-charlie", creation_content={"type": "m.space"}
    )
    return {
        "owner": owner,
        "guest": guest,
        "public": public,
        "secret": secret,
        "space": space,
    }


async def _list(admin: User, **params: Any) -> dict[str, Any]:
    resp = await admin_call(
        admin, "GET", f"{V1}/rooms", params={"search_term": "zq-", **params}
    )
    return resp.json()  # type: ignore[no-any-return]


async def test_room_list_shape_search_and_order(
    admin: User, listed: dict[str, Any]
) -> None:
    body = await _list(admin)
    assert (body["offset"], body["total_rooms"]) == (0, 3)
    assert "next_batch" not in body and "prev_batch" not in body
    rooms = body["rooms"]
    assert [r["name"] for r in rooms] == [
        "zq-alpha",
        "zq-Bravo",
        "zq-charlie",
    ]  # any case
    assert all(set(r) == LISTED_KEYS for r in rooms)
    alpha, bravo, charlie = rooms
    assert bravo == {
        "room_id": listed["public"],
        "name": "zq-Bravo",
        "canonical_alias": f"#zqbravo:{SERVER_NAME}",
        "joined_members": 2,
        "joined_local_members": 2,
        "version": bravo["version"],
        "creator": listed["owner"].user_id,
        "encryption": None,
        "federatable": True,
        "public": True,
        "join_rules": "public",
        "guest_access": bravo["guest_access"],
        "history_visibility": "shared",
        "state_events": bravo["state_events"],
        "room_type": None,
    }
    assert (alpha["encryption"], alpha["federatable"], alpha["public"]) == (
        "m.megolm.v1.aes-sha2",
        False,
        False,
    )
    assert charlie["room_type"] == "m.space"
    assert [r["name"] for r in (await _list(admin, dir="b"))["rooms"]] == [
        "zq-charlie",
        "zq-Bravo",
        "zq-alpha",
    ]
    by_size = await _list(admin, order_by="joined_members")
    assert by_size["rooms"][0]["room_id"] == listed["public"]
    by_events = [
        r["state_events"]
        for r in (await _list(admin, order_by="state_events"))["rooms"]
    ]
    assert by_events == sorted(by_events, reverse=True)
    # The search matches the name, the alias's localpart, or the whole room id.
    assert [
        r["room_id"] for r in (await _list(admin, search_term="ZQBRAV"))["rooms"]
    ] == [listed["public"]]
    assert (await _list(admin, search_term=listed["space"]))["total_rooms"] == 1
    assert (await _list(admin, public_rooms="true"))["total_rooms"] == 1


async def test_room_list_paging(admin: User, listed: dict[str, Any]) -> None:
    first = await _list(admin, limit=2)
    assert [r["name"] for r in first["rooms"]] == ["zq-alpha", "zq-Bravo"]
    assert (first["next_batch"], first["total_rooms"]) == (2, 3)
    second = await _list(admin, limit=2, **{"from": first["next_batch"]})
    assert [r["name"] for r in second["rooms"]] == ["zq-charlie"]
    assert (second["offset"], second["prev_batch"]) == (2, 0)
    assert "next_batch" not in second


async def test_room_list_errors(
    srv: RunningServer, admin: User, listed: dict[str, Any]
) -> None:
    for params, errcode in [
        ({"order_by": "size_of_ego"}, "M_INVALID_PARAM"),
        ({"dir": "up"}, "M_INVALID_PARAM"),
        ({"limit": "many"}, "M_INVALID_PARAM"),
        ({"from": "-1"}, "M_INVALID_PARAM"),
        ({"limit": str(2**64)}, "M_INVALID_PARAM"),
    ]:
        resp = await admin_call(admin, "GET", f"{V1}/rooms", params=params, expect=400)
        assert resp.json()["errcode"] == errcode, params
    denied = await admin_call(listed["owner"], "GET", f"{V1}/rooms", expect=403)
    assert denied.json()["errcode"] == "M_FORBIDDEN"
    unknown = "!unknown:" + SERVER_NAME
    for path in ("", "/members", "/state", "/messages"):
        resp = await admin_call(admin, "GET", f"{V1}/rooms/{unknown}{path}", expect=404)
        assert resp.json()["errcode"] == "M_NOT_FOUND", path
        denied = await admin_call(
            listed["owner"], "GET", f"{V1}/rooms/{listed['public']}{path}", expect=403
        )
        assert denied.json()["errcode"] == "M_FORBIDDEN"


async def test_room_details_members_state(admin: User, listed: dict[str, Any]) -> None:
    room_id = listed["public"]
    details = (await admin_call(admin, "GET", f"{V1}/rooms/{room_id}")).json()
    assert set(details) == LISTED_KEYS | {
        "topic",
        "avatar",
        "joined_local_devices",
        "forgotten",
    }
    assert (details["joined_local_devices"], details["forgotten"]) == (2, False)
    members = (await admin_call(admin, "GET", f"{V1}/rooms/{room_id}/members")).json()
    assert members == {
        "members": sorted([listed["owner"].user_id, listed["guest"].user_id]),
        "total": 2,
    }
    state = (await admin_call(admin, "GET", f"{V1}/rooms/{room_id}/state")).json()[
        "state"
    ]
    assert {"m.room.create", "m.room.name", "m.room.power_levels"} <= {
        e["type"] for e in state
    }
    assert len(state) == details["state_events"]
    # A redacted topic is no topic.
    topic = await listed["owner"].call(
        "PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "rude"}
    )
    await listed["owner"].call(
        "PUT", f"/rooms/{room_id}/redact/{topic.json()['event_id']}/r1", {}
    )
    details = (await admin_call(admin, "GET", f"{V1}/rooms/{room_id}")).json()
    assert details["topic"] is None and details["name"] == "zq-Bravo"
    only = (
        await admin_call(
            admin,
            "GET",
            f"{V1}/rooms/{room_id}/state",
            params={"type": "m.room.member"},
        )
    ).json()["state"]
    assert sorted(e["state_key"] for e in only) == members["members"]


async def test_room_messages_of_any_room(admin: User, listed: dict[str, Any]) -> None:
    owner, room_id = listed["owner"], listed["secret"]
    for i in range(3):
        await owner.send(room_id, f"note {i}")
    newest = (
        await admin_call(
            admin,
            "GET",
            f"{V1}/rooms/{room_id}/messages",
            params={"dir": "b", "limit": 2},
        )
    ).json()
    assert [e["content"]["body"] for e in newest["chunk"]] == ["note 2", "note 1"]
    older = (
        await admin_call(
            admin,
            "GET",
            f"{V1}/rooms/{room_id}/messages",
            params={"dir": "b", "limit": 2, "from": newest["end"]},
        )
    ).json()
    assert older["chunk"][0]["content"]["body"] == "note 0"
    # An event's context: the events around it and the room's state.
    middle = older["chunk"][0]["event_id"]
    ctx = (
        await admin_call(
            admin, "GET", f"{V1}/rooms/{room_id}/context/{middle}", params={"limit": 2}
        )
    ).json()
    assert ctx["event"]["content"]["body"] == "note 0"
    assert [e["content"]["body"] for e in ctx["events_after"]] == ["note 1"]
    assert len(ctx["events_before"]) == 1
    assert "m.room.encryption" in {e["type"] for e in ctx["state"]}
    lost = await admin_call(
        admin, "GET", f"{V1}/rooms/{room_id}/context/$nope", expect=404
    )
    assert lost.json()["errcode"] == "M_NOT_FOUND"
    # The event nearest a time, either way.
    first = newest["chunk"][-1]
    path = f"{V1}/rooms/{room_id}/timestamp_to_event"
    after = (
        await admin_call(admin, "GET", path, params={"ts": first["origin_server_ts"]})
    ).json()
    assert after["origin_server_ts"] >= first["origin_server_ts"]
    later = first["origin_server_ts"] + 10**9
    last = (
        await admin_call(admin, "GET", path, params={"ts": later, "dir": "b"})
    ).json()
    assert last["event_id"] == newest["chunk"][0]["event_id"]
    none = await admin_call(admin, "GET", path, params={"ts": later}, expect=404)
    assert none.json()["errcode"] == "M_NOT_FOUND"
    bad = await admin_call(admin, "GET", path, params={"ts": 1, "dir": "x"}, expect=400)
    assert bad.json()["errcode"] == "M_INVALID_PARAM"
    only_messages = json.dumps({"types": ["m.room.message"]})
    forwards = (
        await admin_call(
            admin,
            "GET",
            f"{V1}/rooms/{room_id}/messages",
            params={"filter": only_messages, "limit": 50},
        )
    ).json()
    assert [e["content"]["body"] for e in forwards["chunk"]] == [
        "note 0",
        "note 1",
        "note 2",
    ]


async def test_block_refuses_joins_and_invites(srv: RunningServer, admin: User) -> None:
    owner = await new_user(srv, "blockowner")
    other = await new_user(srv, "blockother")
    room_id = await owner.create_room(preset="public_chat")
    path = f"{V1}/rooms/{room_id}/block"
    assert (await admin_call(admin, "GET", path)).json() == {"block": False}
    assert (await admin_call(admin, "PUT", path, {"block": True})).json() == {
        "block": True
    }
    assert (await admin_call(admin, "GET", path)).json() == {
        "block": True,
        "user_id": admin.user_id,
    }
    join = await other.call("POST", f"/rooms/{room_id}/join", {}, expect=403)
    assert join.json()["errcode"] == "M_FORBIDDEN"
    invite = await owner.call(
        "POST", f"/rooms/{room_id}/invite", {"user_id": other.user_id}, expect=403
    )
    assert invite.json()["errcode"] == "M_FORBIDDEN"
    assert (await admin_call(admin, "PUT", path, {"block": False})).json() == {
        "block": False
    }
    knocked = await owner.create_room(
        initial_state=[{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]
    )
    await admin_call(admin, "PUT", f"{V1}/rooms/{knocked}/block", {"block": True})
    knock = await other.call("POST", f"/knock/{knocked}", {}, expect=403)
    assert knock.json()["errcode"] == "M_FORBIDDEN"
    await admin_call(admin, "PUT", f"{V1}/rooms/{knocked}/block", {"block": False})
    await other.call("POST", f"/knock/{knocked}", {})
    await other.call("POST", f"/rooms/{room_id}/join", {})
    # A room not known yet may be blocked ahead of anyone joining it.
    ahead = f"{V1}/rooms/!later:elsewhere.example/block"
    await admin_call(admin, "PUT", ahead, {"block": True})
    assert (await admin_call(admin, "GET", ahead)).json()["block"] is True
    bad = await admin_call(admin, "PUT", path, {"block": "yes"}, expect=400)
    assert bad.json()["errcode"] == "M_BAD_JSON"
    await admin_call(owner, "PUT", path, {"block": True}, expect=403)


async def test_make_room_admin(srv: RunningServer, admin: User) -> None:
    owner = await new_user(srv, "pl")
    helper = await new_user(srv, "helper")
    room_id = await owner.create_room(preset="private_chat")
    path = f"{V1}/rooms/{room_id}/make_room_admin"
    assert (
        await admin_call(admin, "POST", path, {"user_id": helper.user_id})
    ).json() == {}
    # Not free to join the room: invited first, then given the owner's power (a creator's,
    # unbounded in room version 12, becomes 100).
    await helper.call("POST", f"/rooms/{room_id}/join", {})
    levels = (await helper.state(room_id, "m.room.power_levels")).json()
    assert levels["users"][helper.user_id] == 100
    await helper.call(
        "PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "mine now"}
    )
    for body, status, errcode in [
        ({"user_id": "@someone:elsewhere.example"}, 400, "M_INVALID_PARAM"),
        ({"user_id": helper.user_id, "x": 1}, 200, None),
    ]:
        resp = await admin_call(admin, "POST", path, body, expect=status)
        assert errcode is None or resp.json()["errcode"] == errcode
    missing = await admin_call(
        admin,
        "POST",
        f"{V1}/rooms/!gone:{SERVER_NAME}/make_room_admin",
        {"user_id": helper.user_id},
        expect=404,
    )
    assert missing.json()["errcode"] == "M_NOT_FOUND"


async def _sync(user: User, since: str | None = None) -> dict[str, Any]:
    params = {"timeout": "0", **({"since": since} if since else {})}
    return (await user.call("GET", "/sync", params=params)).json()  # type: ignore[no-any-return]


async def test_delete_room_moves_members_and_aliases(
    srv: RunningServer, admin: User
) -> None:
    owner = await new_user(srv, "doomed")
    member = await new_user(srv, "member")
    notice = await new_user(srv, "notice")
    room_id = await owner.create_room(
        preset="public_chat", room_alias_name="doomed", visibility="public"
    )
    await member.call("POST", f"/rooms/{room_id}/join", {})
    since = (await _sync(member))["next_batch"]
    body = {
        "new_room_user_id": notice.user_id,
        "room_name": "Gone",
        "message": "Bye",
        "block": True,
        "purge": False,
    }
    result = (await admin_call(admin, "DELETE", f"{V1}/rooms/{room_id}", body)).json()
    assert sorted(result["kicked_users"]) == sorted([owner.user_id, member.user_id])
    assert result["failed_to_kick_users"] == []
    assert result["local_aliases"] == [f"#doomed:{SERVER_NAME}"]
    new_room = result["new_room_id"]
    # The member sees the leave, and is in the notice room, unable to speak.
    left = (await _sync(member, since))["rooms"]["leave"][room_id]["timeline"]["events"]
    assert (
        left[-1]["type"] == "m.room.member"
        and left[-1]["content"]["membership"] == "leave"
    )
    assert (await member.state(new_room, "m.room.name")).json() == {"name": "Gone"}
    speak = await member.call(
        "PUT",
        f"/rooms/{new_room}/send/m.room.message/t1",
        {"msgtype": "m.text", "body": "hi"},
        expect=403,
    )
    assert speak.json()["errcode"] == "M_FORBIDDEN"
    # The alias points at the notice room; the old room is blocked and out of the directory.
    alias = (
        await member.call("GET", f"/directory/room/%23doomed:{SERVER_NAME}")
    ).json()
    assert alias["room_id"] == new_room
    rejoin = await member.call("POST", f"/rooms/{room_id}/join", {}, expect=403)
    assert rejoin.json()["errcode"] == "M_FORBIDDEN"
    public = (await member.call("GET", "/publicRooms")).json()["chunk"]
    assert room_id not in {r["room_id"] for r in public}
    details = (await admin_call(admin, "GET", f"{V1}/rooms/{room_id}")).json()
    assert (details["joined_members"], details["public"]) == (0, False)


async def test_delete_room_with_purge_v2(srv: RunningServer, admin: User) -> None:
    owner = await new_user(srv, "purgeowner")
    room_id = await owner.create_room(name="zz-purged")
    await owner.send(room_id, "gone soon")
    started = await admin_call(admin, "DELETE", f"{V2}/rooms/{room_id}", {})
    delete_id = started.json()["delete_id"]
    status = await wait_for_status(admin, f"{V2}/rooms/delete_status/{delete_id}")
    assert status == {
        "delete_id": delete_id,
        "room_id": room_id,
        "status": "complete",
        "shutdown_room": {
            "kicked_users": [owner.user_id],
            "failed_to_kick_users": [],
            "local_aliases": [],
            "new_room_id": None,
        },
    }
    by_room = (
        await admin_call(admin, "GET", f"{V2}/rooms/{room_id}/delete_status")
    ).json()
    assert by_room == {"results": [status]}
    # Nothing of the room is held any more.
    await admin_call(admin, "GET", f"{V1}/rooms/{room_id}", expect=404)
    assert (
        await admin_call(
            admin, "GET", f"{V1}/rooms", params={"search_term": "zz-purged"}
        )
    ).json()["total_rooms"] == 0
    assert (
        room_id not in (await owner.call("GET", "/joined_rooms")).json()["joined_rooms"]
    )
    # Unknown rooms: v2 404; v1 400 unless it only blocks the room.
    unknown = f"!never:{SERVER_NAME}"
    await admin_call(admin, "DELETE", f"{V2}/rooms/{unknown}", {}, expect=404)
    bad = await admin_call(admin, "DELETE", f"{V1}/rooms/{unknown}", {}, expect=400)
    assert bad.json()["errcode"] == "M_INVALID_PARAM"
    blocked = await admin_call(
        admin, "DELETE", f"{V1}/rooms/{unknown}", {"block": True}
    )
    assert blocked.json()["kicked_users"] == []
    assert (await admin_call(admin, "GET", f"{V1}/rooms/{unknown}/block")).json()[
        "block"
    ] is True
    await admin_call(admin, "GET", f"{V2}/rooms/delete_status/nope", expect=404)
    wrong = await admin_call(
        admin, "DELETE", f"{V1}/rooms/{unknown}", {"purge": "yes"}, expect=400
    )
    assert wrong.json()["errcode"] == "M_BAD_JSON"
    await admin_call(owner, "DELETE", f"{V1}/rooms/{unknown}", {}, expect=403)


async def test_on_the_admin_socket_nobody_is_the_requester(srv: RunningServer) -> None:
    """No token and no requesting user on the admin socket: a block names no blocker, and
    make_room_admin needs the user to promote (there is no caller to default to)."""
    owner, helper = await new_user(srv, "sockowner"), await new_user(srv, "sockhelper")
    room_id = await owner.create_room(preset="public_chat")
    transport = httpx.AsyncHTTPTransport(uds=str(srv.config.admin_socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as sock:
        block = f"{V1}/rooms/{room_id}/block"
        assert (await sock.put(block, json={"block": True})).json() == {"block": True}
        assert (await sock.get(block)).json() == {"block": True}
        await sock.put(block, json={"block": False})
        path = f"{V1}/rooms/{room_id}/make_room_admin"
        missing = await sock.post(path, json={})
        assert (missing.status_code, missing.json()["errcode"]) == (
            400,
            "M_MISSING_PARAM",
        )
        made = await sock.post(path, json={"user_id": helper.user_id})
        assert made.status_code == 200, made.text
        listed = (await sock.get(f"{V1}/rooms", params={"search_term": room_id})).json()
        assert [r["room_id"] for r in listed["rooms"]] == [room_id]
    await helper.call("POST", f"/rooms/{room_id}/join", {})
    levels = (await helper.state(room_id, "m.room.power_levels")).json()
    assert levels["users"][helper.user_id] == 100


async def test_join_a_user_to_a_room(srv: RunningServer, admin: User) -> None:
    owner, joiner = await new_user(srv, "jowner"), await new_user(srv, "joiner")
    public = await owner.create_room(preset="public_chat", room_alias_name="joinable")
    private = await owner.create_room(preset="private_chat")
    path = f"{V1}/join"
    # By alias into a public room; into a private one after an invite by its owner (the
    # server admin is not in it).
    got = await admin_call(
        admin, "POST", f"{path}/%23joinable:{SERVER_NAME}", {"user_id": joiner.user_id}
    )
    assert got.json() == {"room_id": public}
    assert (
        await admin_call(
            admin, "POST", f"{path}/{private}", {"user_id": joiner.user_id}
        )
    ).json() == {"room_id": private}
    joined = (await joiner.call("GET", "/joined_rooms")).json()["joined_rooms"]
    assert {public, private} <= set(joined)
    member = (await owner.state(private, "m.room.member", joiner.user_id)).json()
    assert member["membership"] == "join"
    for body, status, errcode in [
        ({"user_id": f"@ghost:{SERVER_NAME}"}, 404, "M_NOT_FOUND"),
        ({"user_id": "@x:elsewhere.example"}, 400, "M_INVALID_PARAM"),
        ({}, 400, "M_MISSING_PARAM"),
    ]:
        resp = await admin_call(admin, "POST", f"{path}/{private}", body, expect=status)
        assert resp.json()["errcode"] == errcode, body
    await admin_call(
        owner, "POST", f"{path}/{private}", {"user_id": owner.user_id}, expect=403
    )
