"""Synapse-compatible user admin API (/_synapse/admin/v1|v2/users..., deactivate,
reset_password, whois, shadow_ban, username_available) through a real server, with its effects
seen through the client API: logins, tokens, rooms and other users' /sync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import (
    PASSWORD,
    auth_header,
    login,
    running_server,
)
from tests.integration.admin_room_helpers import V1, V2, admin_call, make_admin
from tests.integration.room_helpers import User, new_user


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(
        tmp_path_factory.mktemp("admin_users"), {"registration.allow_guests": True}
    ) as s:
        yield s


@pytest.fixture(scope="module")
async def admin(srv: RunningServer) -> User:
    return await make_admin(srv, "boss")


async def call(
    user: User,
    method: str,
    path: str,
    body: Any = None,
    *,
    expect: int | None = 200,
    **params: Any,
) -> httpx.Response:
    return await admin_call(
        user, method, path, body, expect=expect, params=params or None
    )


def error(resp: httpx.Response) -> tuple[int, str]:
    return resp.status_code, resp.json()["errcode"]


async def sync_timeline(user: User, room_id: str) -> list[dict[str, Any]]:
    body = (await user.call("GET", "/sync", params={"timeout": 0})).json()
    return body["rooms"]["join"].get(room_id, {}).get("timeline", {}).get("events", [])


async def test_non_admins_get_403_and_no_token_401(
    srv: RunningServer, admin: User
) -> None:
    plain = await new_user(srv, "plain")
    for method, path in [
        ("GET", f"{V2}/users"),
        ("GET", f"{V2}/users/{admin.user_id}"),
        ("PUT", f"{V2}/users/@new:{SERVER_NAME}"),
        ("PUT", f"{V1}/users/{plain.user_id}/admin"),
        ("POST", f"{V1}/deactivate/{admin.user_id}"),
        ("POST", f"{V1}/reset_password/{admin.user_id}"),
        ("GET", f"{V1}/whois/{admin.user_id}"),
        ("GET", f"{V2}/users/{admin.user_id}/devices"),
        ("POST", f"{V1}/users/{plain.user_id}/shadow_ban"),
    ]:
        resp = await call(plain, method, path, {}, expect=None)
        assert error(resp) == (403, "M_FORBIDDEN"), (method, path)
    resp = await srv.client.get(f"{V2}/users")
    assert error(resp) == (401, "M_MISSING_TOKEN")
    # The refused attempt to make oneself admin changed nothing.
    assert (await call(admin, "GET", f"{V1}/users/{plain.user_id}/admin")).json() == {
        "admin": False
    }


async def test_list_pages_in_order_with_filters(
    srv: RunningServer, admin: User
) -> None:
    made = [await new_user(srv, "lister") for _ in range(3)]
    ids = sorted(u.user_id for u in made)
    await call(admin, "PUT", f"{V2}/users/{ids[1]}", {"displayname": "Middle One"})
    first = (await call(admin, "GET", f"{V2}/users", user_id="lister", limit=2)).json()
    assert [u["name"] for u in first["users"]] == ids[:2]
    assert first["total"] == 3 and first["next_token"] == "2"
    user = first["users"][0]
    assert set(user) >= {
        "name",
        "is_guest",
        "admin",
        "user_type",
        "deactivated",
        "erased",
        "shadow_banned",
        "displayname",
        "avatar_url",
        "creation_ts",
        "last_seen_ts",
        "locked",
    }
    assert (
        user["is_guest"] is False
        and user["admin"] is False
        and user["deactivated"] is False
    )
    assert isinstance(user["creation_ts"], int) and isinstance(
        user["last_seen_ts"], int
    )
    rest = (
        await call(
            admin, "GET", f"{V2}/users", user_id="lister", limit=2, **{"from": 2}
        )
    ).json()
    assert [u["name"] for u in rest["users"]] == ids[2:] and "next_token" not in rest

    backwards = (
        await call(admin, "GET", f"{V2}/users", user_id="lister", dir="b")
    ).json()
    assert [u["name"] for u in backwards["users"]] == ids[::-1]
    newest_first = (
        await call(
            admin,
            "GET",
            f"{V2}/users",
            user_id="lister",
            order_by="creation_ts",
            dir="b",
        )
    ).json()
    assert [u["name"] for u in newest_first["users"]] == [
        u.user_id for u in reversed(made)
    ]
    # `name` matches the display name (or the localpart), case-insensitively.
    named = (await call(admin, "GET", f"{V2}/users", name="middle")).json()
    assert [u["name"] for u in named["users"]] == [ids[1]]
    # The server name is not part of a `name` search; a LIKE wildcard is a plain character.
    assert (await call(admin, "GET", f"{V2}/users", name="localhost")).json()[
        "total"
    ] == 0
    assert (await call(admin, "GET", f"{V2}/users", user_id="l%ster")).json()[
        "total"
    ] == 0

    admins = (await call(admin, "GET", f"{V2}/users", admins="true")).json()["users"]
    assert admin.user_id in [u["name"] for u in admins] and all(
        u["admin"] for u in admins
    )
    others = (await call(admin, "GET", f"{V2}/users", admins="false")).json()["users"]
    assert admin.user_id not in [u["name"] for u in others]

    for params in (
        {"order_by": "password"},
        {"dir": "x"},
        {"from": "-1"},
        {"limit": "many"},
        {"guests": "maybe"},
    ):
        resp = await call(admin, "GET", f"{V2}/users", expect=None, **params)
        assert error(resp) == (400, "M_INVALID_PARAM"), params


async def test_deactivated_and_guests_are_listed_on_request(
    srv: RunningServer, admin: User
) -> None:
    gone = await new_user(srv, "gonelist")
    await call(admin, "POST", f"{V1}/deactivate/{gone.user_id}", {})
    default = (await call(admin, "GET", f"{V2}/users", user_id="gonelist")).json()
    assert default == {"users": [], "total": 0}
    shown = (
        await call(admin, "GET", f"{V2}/users", user_id="gonelist", deactivated="true")
    ).json()
    assert [(u["name"], u["deactivated"]) for u in shown["users"]] == [
        (gone.user_id, True)
    ]
    # v3: deactivated=true is only them, false only the others, absent everybody.
    kept = await new_user(srv, "gonelistkept")
    v3 = "/_synapse/admin/v3/users"
    for params, expected in (
        ({"deactivated": "true"}, [gone.user_id]),
        ({"deactivated": "false"}, [kept.user_id]),
        ({}, sorted([gone.user_id, kept.user_id])),
    ):
        body = (await call(admin, "GET", v3, user_id="gonelist", **params)).json()
        assert [u["name"] for u in body["users"]] == expected, params

    guest = (
        await srv.client.post(
            "/_matrix/client/v3/register", params={"kind": "guest"}, json={}
        )
    ).json()
    listed = (await call(admin, "GET", f"{V2}/users", user_id=guest["user_id"])).json()[
        "users"
    ]
    assert [(u["name"], u["is_guest"]) for u in listed] == [(guest["user_id"], True)]
    hidden = (
        await call(
            admin, "GET", f"{V2}/users", user_id=guest["user_id"], guests="false"
        )
    ).json()
    assert hidden["total"] == 0


async def test_user_details_and_lookup_errors(srv: RunningServer, admin: User) -> None:
    body = (await call(admin, "GET", f"{V2}/users/{admin.user_id}")).json()
    assert body["name"] == admin.user_id and body["admin"] is True
    assert (
        body["threepids"] == []
        and body["external_ids"] == []
        and body["erased"] is False
    )
    assert (
        body["shadow_banned"] is False
        and body["user_type"] is None
        and body["locked"] is False
    )
    missing = await call(admin, "GET", f"{V2}/users/@nobody:{SERVER_NAME}", expect=None)
    assert error(missing) == (404, "M_NOT_FOUND")
    remote = await call(
        admin, "GET", f"{V2}/users/@someone:elsewhere.example", expect=None
    )
    assert error(remote) == (400, "M_INVALID_PARAM")
    assert "local users" in remote.json()["error"]
    assert error(await call(admin, "GET", f"{V2}/users/nobody", expect=None)) == (
        400,
        "M_INVALID_PARAM",
    )


async def test_put_creates_then_modifies(srv: RunningServer, admin: User) -> None:
    user_id = f"@created:{SERVER_NAME}"
    made = await call(
        admin,
        "PUT",
        f"{V2}/users/{user_id}",
        {"password": "pw-one", "user_type": "bot"},
        expect=201,
    )
    assert made.json()["name"] == user_id and made.json()["displayname"] == "created"
    assert made.json()["user_type"] == "bot" and made.json()["admin"] is False
    session = await login(srv.client, user_id, "pw-one")
    assert session.status_code == 200, session.text
    token = session.json()["access_token"]

    changed = await call(
        admin,
        "PUT",
        f"{V2}/users/{user_id}",
        {
            "displayname": "Made By Admin",
            "avatar_url": "mxc://x/y",
            "admin": True,
            "user_type": None,
        },
    )
    assert changed.status_code == 200
    body = changed.json()
    assert (
        body["displayname"],
        body["avatar_url"],
        body["admin"],
        body["user_type"],
    ) == ("Made By Admin", "mxc://x/y", True, None)
    profile = (await srv.client.get(f"/_matrix/client/v3/profile/{user_id}")).json()
    assert profile == {"displayname": "Made By Admin", "avatar_url": "mxc://x/y"}
    # "" removes a profile field.
    cleared = (
        await call(admin, "PUT", f"{V2}/users/{user_id}", {"avatar_url": ""})
    ).json()
    assert cleared["avatar_url"] is None and cleared["displayname"] == "Made By Admin"

    # A new password without logging out keeps the session; with it (the default) it goes.
    await call(
        admin,
        "PUT",
        f"{V2}/users/{user_id}",
        {"password": "pw-two", "logout_devices": False},
    )
    whoami = await srv.client.get(
        "/_matrix/client/v3/account/whoami", headers=auth_header(token)
    )
    assert whoami.status_code == 200
    await call(admin, "PUT", f"{V2}/users/{user_id}", {"password": "pw-three"})
    whoami = await srv.client.get(
        "/_matrix/client/v3/account/whoami", headers=auth_header(token)
    )
    assert error(whoami) == (401, "M_UNKNOWN_TOKEN")
    assert (await login(srv.client, user_id, "pw-two")).status_code == 403
    assert (await login(srv.client, user_id, "pw-three")).status_code == 200

    # Deactivate through PUT, then reactivation needs a password.
    assert (
        await call(admin, "PUT", f"{V2}/users/{user_id}", {"deactivated": True})
    ).json()["deactivated"]
    assert error(await login(srv.client, user_id, "pw-three")) == (
        403,
        "M_USER_DEACTIVATED",
    )
    refused = await call(
        admin, "PUT", f"{V2}/users/{user_id}", {"deactivated": False}, expect=None
    )
    assert error(refused) == (400, "M_MISSING_PARAM")
    back = await call(
        admin,
        "PUT",
        f"{V2}/users/{user_id}",
        {"deactivated": False, "password": "pw-4"},
    )
    assert back.json()["deactivated"] is False
    assert (await login(srv.client, user_id, "pw-4")).status_code == 200


async def test_put_refuses_bad_bodies(srv: RunningServer, admin: User) -> None:
    path = f"{V2}/users/@badbody:{SERVER_NAME}"
    for body in (
        {"user_type": "wizard"},
        {"admin": "yes"},
        {"password": 5},
        {"locked": True},
        {"threepids": [{"medium": "email", "address": "a@b.c"}]},
        {"displayname": 3},
    ):
        assert error(await call(admin, "PUT", path, body, expect=None)) == (
            400,
            "M_INVALID_PARAM",
        ), body
    remote = await call(
        admin, "PUT", f"{V2}/users/@x:elsewhere.example", {}, expect=None
    )
    assert error(remote) == (400, "M_INVALID_PARAM")
    bad_name = await call(
        admin, "PUT", f"{V2}/users/@Upper Case:{SERVER_NAME}", {}, expect=None
    )
    assert error(bad_name) == (400, "M_INVALID_USERNAME")
    not_json = await admin.client.put(
        path, content=b"{", headers=auth_header(admin.token)
    )
    assert error(not_json) == (400, "M_NOT_JSON")
    # None of those made the user.
    assert error(await call(admin, "GET", path, expect=None)) == (404, "M_NOT_FOUND")
    # An admin may not demote themselves, by either API.
    me = f"{V2}/users/{admin.user_id}"
    assert error(await call(admin, "PUT", me, {"admin": False}, expect=None)) == (
        400,
        "M_INVALID_PARAM",
    )
    flag = f"{V1}/users/{admin.user_id}/admin"
    assert error(await call(admin, "PUT", flag, {"admin": False}, expect=None)) == (
        400,
        "M_INVALID_PARAM",
    )
    assert (await call(admin, "GET", flag)).json() == {"admin": True}


async def test_admin_flag(srv: RunningServer, admin: User) -> None:
    user = await new_user(srv, "promoted")
    path = f"{V1}/users/{user.user_id}/admin"
    assert (await call(admin, "GET", path)).json() == {"admin": False}
    assert (await call(admin, "PUT", path, {"admin": True})).json() == {}
    assert (await call(admin, "GET", path)).json() == {"admin": True}
    # The promoted user may now use the admin API.
    assert (await call(user, "GET", f"{V2}/users/{admin.user_id}")).json()[
        "admin"
    ] is True
    await call(admin, "PUT", path, {"admin": False})
    assert error(await call(user, "GET", f"{V2}/users", expect=None)) == (
        403,
        "M_FORBIDDEN",
    )
    assert error(await call(admin, "PUT", path, {}, expect=None)) == (
        400,
        "M_MISSING_PARAM",
    )
    missing = f"{V1}/users/@ghost:{SERVER_NAME}/admin"
    assert error(await call(admin, "GET", missing, expect=None)) == (404, "M_NOT_FOUND")
    remote = f"{V1}/users/@ghost:elsewhere.example/admin"
    assert error(await call(admin, "GET", remote, expect=None)) == (
        400,
        "M_INVALID_PARAM",
    )


async def test_deactivate_with_erase(srv: RunningServer, admin: User) -> None:
    victim, witness = await new_user(srv, "victim"), await new_user(srv, "witness")
    room_id = await witness.create_room(preset="public_chat")
    await victim.call("POST", f"/join/{room_id}", {})
    await call(
        admin, "PUT", f"{V2}/users/{victim.user_id}", {"displayname": "Victim Name"}
    )
    said = await victim.send(room_id, "words to forget")

    bad = await call(
        admin,
        "POST",
        f"{V1}/deactivate/{victim.user_id}",
        {"erase": "yes"},
        expect=None,
    )
    assert error(bad) == (400, "M_BAD_JSON")
    done = await call(
        admin, "POST", f"{V1}/deactivate/{victim.user_id}", {"erase": True}
    )
    assert done.json() == {"id_server_unbind_result": "success"}

    details = (await call(admin, "GET", f"{V2}/users/{victim.user_id}")).json()
    assert (details["deactivated"], details["erased"], details["displayname"]) == (
        True,
        True,
        None,
    )
    assert error(await victim.call("GET", "/account/whoami", expect=None)) == (
        401,
        "M_UNKNOWN_TOKEN",
    )
    # Erased: who was in the room still sees what was said; who joins later sees it redacted.
    newcomer = await new_user(srv, "newcomer")
    await newcomer.call("POST", f"/join/{room_id}", {})
    seen_by = {}
    for reader in (witness, newcomer):
        chunk = (
            await reader.call(
                "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": 50}
            )
        ).json()["chunk"]
        [event] = [e for e in chunk if e["event_id"] == said]
        seen_by[reader.user_id] = event["content"]
    assert seen_by[witness.user_id]["body"] == "words to forget"
    assert seen_by[newcomer.user_id] == {}
    members = (await witness.call("GET", f"/rooms/{room_id}/joined_members")).json()[
        "joined"
    ]
    assert victim.user_id not in members
    rooms = (
        await call(admin, "GET", f"{V1}/users/{victim.user_id}/joined_rooms")
    ).json()
    assert rooms == {"joined_rooms": [], "total": 0}

    missing = await call(
        admin, "POST", f"{V1}/deactivate/@ghost:{SERVER_NAME}", {}, expect=None
    )
    assert error(missing) == (404, "M_NOT_FOUND")
    remote = await call(
        admin, "POST", f"{V1}/deactivate/@ghost:elsewhere.example", {}, expect=None
    )
    assert error(remote) == (400, "M_INVALID_PARAM")


async def test_reset_password_logs_out_devices(srv: RunningServer, admin: User) -> None:
    user = await new_user(srv, "resetme")
    second = (await login(srv.client, user.user_id)).json()["access_token"]
    path = f"{V1}/reset_password/{user.user_id}"
    await call(
        admin, "POST", path, {"new_password": "kept-sessions", "logout_devices": False}
    )
    assert (await user.call("GET", "/account/whoami", expect=None)).status_code == 200
    assert (
        await call(admin, "POST", path, {"new_password": "new secret"})
    ).json() == {}
    for token in (user.token, second):
        whoami = await srv.client.get(
            "/_matrix/client/v3/account/whoami", headers=auth_header(token)
        )
        assert error(whoami) == (401, "M_UNKNOWN_TOKEN")
    assert (await call(admin, "GET", f"{V2}/users/{user.user_id}/devices")).json() == {
        "devices": [],
        "total": 0,
    }
    assert (await login(srv.client, user.user_id, PASSWORD)).status_code == 403
    assert (await login(srv.client, user.user_id, "new secret")).status_code == 200

    assert error(await call(admin, "POST", path, {}, expect=None)) == (
        400,
        "M_MISSING_PARAM",
    )
    ghost = f"{V1}/reset_password/@ghost:{SERVER_NAME}"
    assert error(
        await call(admin, "POST", ghost, {"new_password": "x"}, expect=None)
    ) == (404, "M_NOT_FOUND")


async def test_whois_as_the_client_api(srv: RunningServer, admin: User) -> None:
    user = await new_user(srv, "watched")
    await srv.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={**auth_header(user.token), "User-Agent": "AdminWhois/1"},
    )
    body = (await call(admin, "GET", f"{V1}/whois/{user.user_id}")).json()
    assert (
        body
        == (
            await call(admin, "GET", f"/_matrix/client/v3/admin/whois/{user.user_id}")
        ).json()
    )
    [connection] = body["devices"][user.device_id]["sessions"][0]["connections"]
    assert (
        connection["user_agent"] == "AdminWhois/1" and connection["ip"] == "127.0.0.1"
    )
    assert error(
        await call(admin, "GET", f"{V1}/whois/@ghost:{SERVER_NAME}", expect=None)
    ) == (404, "M_NOT_FOUND")
    assert error(
        await call(admin, "GET", f"{V1}/whois/@ghost:elsewhere.example", expect=None)
    ) == (400, "M_INVALID_PARAM")


async def test_devices(srv: RunningServer, admin: User) -> None:
    user = await new_user(srv, "devowner")
    await srv.client.get(
        "/_matrix/client/v3/account/whoami",
        headers={**auth_header(user.token), "User-Agent": "DeviceAgent/2"},
    )
    other = (await login(srv.client, user.user_id, device_id="SECOND")).json()
    base = f"{V2}/users/{user.user_id}/devices"
    listed = (await call(admin, "GET", base)).json()
    assert listed["total"] == 2
    by_id = {d["device_id"]: d for d in listed["devices"]}
    assert set(by_id) == {user.device_id, "SECOND"}
    first = by_id[user.device_id]
    assert first["user_id"] == user.user_id and first["dehydrated"] is False
    assert (
        first["last_seen_user_agent"] == "DeviceAgent/2"
        and first["last_seen_ip"] == "127.0.0.1"
    )

    await call(admin, "PUT", f"{base}/SECOND", {"display_name": "Named by admin"})
    shown = (await call(admin, "GET", f"{base}/SECOND")).json()
    assert shown["display_name"] == "Named by admin" and shown["device_id"] == "SECOND"
    assert error(await call(admin, "GET", f"{base}/NOPE", expect=None)) == (
        404,
        "M_NOT_FOUND",
    )
    assert error(
        await call(admin, "PUT", f"{base}/NOPE", {"display_name": "x"}, expect=None)
    ) == (404, "M_NOT_FOUND")

    await call(admin, "DELETE", f"{base}/SECOND")
    gone = await srv.client.get(
        "/_matrix/client/v3/account/whoami", headers=auth_header(other["access_token"])
    )
    assert error(gone) == (401, "M_UNKNOWN_TOKEN")
    await call(admin, "POST", base, {"device_id": "MADE"})
    assert {
        d["device_id"] for d in (await call(admin, "GET", base)).json()["devices"]
    } == {user.device_id, "MADE"}
    await call(
        admin,
        "POST",
        f"{V2}/users/{user.user_id}/delete_devices",
        {"devices": [user.device_id, "MADE", "NEVER"]},
    )
    assert (await call(admin, "GET", base)).json() == {"devices": [], "total": 0}
    assert error(await user.call("GET", "/account/whoami", expect=None)) == (
        401,
        "M_UNKNOWN_TOKEN",
    )

    missing = await call(
        admin, "POST", f"{V2}/users/{user.user_id}/delete_devices", {}, expect=None
    )
    assert error(missing) == (400, "M_MISSING_PARAM")
    ghost = f"{V2}/users/@ghost:{SERVER_NAME}/devices"
    assert error(await call(admin, "GET", ghost, expect=None)) == (404, "M_NOT_FOUND")
    remote = f"{V2}/users/@ghost:elsewhere.example/devices"
    assert error(await call(admin, "GET", remote, expect=None)) == (
        400,
        "M_INVALID_PARAM",
    )


async def test_joined_rooms(srv: RunningServer, admin: User) -> None:
    user = await new_user(srv, "roomy")
    rooms = sorted([await user.create_room(), await user.create_room()])
    left = await user.create_room()
    await user.call("POST", f"/rooms/{left}/leave", {})
    body = (await call(admin, "GET", f"{V1}/users/{user.user_id}/joined_rooms")).json()
    assert sorted(body["joined_rooms"]) == rooms and body["total"] == 2
    ghost = f"{V1}/users/@ghost:{SERVER_NAME}/joined_rooms"
    assert error(await call(admin, "GET", ghost, expect=None)) == (404, "M_NOT_FOUND")
    # Another server's user: the rooms here they are in (none).
    remote = (
        await call(admin, "GET", f"{V1}/users/@ghost:elsewhere.example/joined_rooms")
    ).json()
    assert remote == {"joined_rooms": [], "total": 0}


async def test_shadow_banned_sends_reach_nobody(
    srv: RunningServer, admin: User
) -> None:
    banned, other, third = (
        await new_user(srv, "shady"),
        await new_user(srv, "seer"),
        await new_user(srv, "third"),
    )
    room_id = await other.create_room(preset="public_chat")
    await banned.call("POST", f"/join/{room_id}", {})
    await banned.send(room_id, "before the ban")

    ban = f"{V1}/users/{banned.user_id}/shadow_ban"
    assert (await call(admin, "POST", ban)).json() == {}
    assert (await call(admin, "GET", f"{V2}/users/{banned.user_id}")).json()[
        "shadow_banned"
    ] is True

    fake = await banned.send(room_id, "nobody hears this", txn="shadow1")
    assert fake.startswith("$") and len(fake) == 44
    assert (
        await banned.send(room_id, "nobody hears this", txn="shadow1") == fake
    )  # a retry
    topic = await banned.call(
        "PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "spam"}
    )
    assert topic.json()["event_id"].startswith("$")
    assert (
        await banned.call(
            "POST", f"/rooms/{room_id}/invite", {"user_id": third.user_id}
        )
    ).json() == {}
    created = await banned.create_room(invite=[third.user_id])

    bodies = [e["content"].get("body") for e in await sync_timeline(other, room_id)]
    assert "before the ban" in bodies and "nobody hears this" not in bodies
    assert error(
        await other.call("GET", f"/rooms/{room_id}/event/{fake}", expect=None)
    ) == (404, "M_NOT_FOUND")
    assert (await other.state(room_id, "m.room.topic", expect=None)).status_code == 404
    third_sync = (await third.call("GET", "/sync", params={"timeout": 0})).json()
    assert third_sync["rooms"].get("invite", {}) == {}
    # The room of /createRoom exists, for its creator alone.
    assert created in (await banned.call("GET", "/joined_rooms")).json()["joined_rooms"]

    assert (await call(admin, "DELETE", ban)).json() == {}
    await banned.send(room_id, "heard again")
    bodies = [e["content"].get("body") for e in await sync_timeline(other, room_id)]
    assert "heard again" in bodies
    remote = await call(
        admin, "POST", f"{V1}/users/@x:elsewhere.example/shadow_ban", expect=None
    )
    assert error(remote) == (400, "M_INVALID_PARAM")
    ghost = await call(
        admin, "POST", f"{V1}/users/@ghost:{SERVER_NAME}/shadow_ban", expect=None
    )
    assert error(ghost) == (404, "M_NOT_FOUND")


async def test_username_available(srv: RunningServer, admin: User) -> None:
    path = f"{V1}/username_available"
    assert (await call(admin, "GET", path, username="freename")).json() == {
        "available": True
    }
    taken = await call(
        admin, "GET", path, username=admin.user_id[1:].split(":")[0], expect=None
    )
    assert error(taken) == (400, "M_USER_IN_USE")
    assert error(await call(admin, "GET", path, username="Bad Name!", expect=None)) == (
        400,
        "M_INVALID_USERNAME",
    )


async def test_on_the_admin_socket_nobody_is_the_requester(srv: RunningServer) -> None:
    """On the admin socket there is no token and no requesting user: creating, promoting and
    demoting work for every user, and no user id "" is looked up or demoted."""
    transport = httpx.AsyncHTTPTransport(uds=str(srv.config.admin_socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as sock:
        user_id = f"@bysocket:{SERVER_NAME}"
        made = await sock.put(
            f"{V2}/users/{user_id}", json={"password": "pw", "admin": True}
        )
        assert made.status_code == 201, made.text
        assert made.json()["admin"] is True
        demoted = await sock.put(f"{V1}/users/{user_id}/admin", json={"admin": False})
        assert demoted.status_code == 200, demoted.text
        assert (await sock.get(f"{V1}/users/{user_id}/admin")).json() == {
            "admin": False
        }
