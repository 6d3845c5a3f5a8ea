"""synadm (the Synapse admin CLI from PyPI) drives our user admin API as a real client: its
`user` commands list, search, show, create and change users, reset passwords, deactivate and
erase, show whois sessions and room memberships, prune devices and shadow-ban, each checked
against what the server then does (logins, tokens, /sync)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import auth_header, login, running_server
from tests.integration.room_helpers import User, new_user
from tests.interop.synadm_runner import Synadm


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("synadm_users")) as s:
        yield s



async def whoami_status(srv: RunningServer, token: str) -> int:
    return (
        await srv.client.get(
            "/_matrix/client/v3/account/whoami", headers=auth_header(token)
        )
    ).status_code


async def test_list_and_search(srv: RunningServer, synadm: Synadm) -> None:
    made = sorted([(await new_user(srv, "listed")).user_id for _ in range(3)])
    page = await synadm.ok("user", "list", "-n", "listed", "-l", "2")
    assert [u["name"] for u in page["users"]] == made[:2]
    assert page["total"] == 3 and page["next_token"] == "2"
    rest = await synadm.ok("user", "list", "-n", "listed", "-l", "2", "-f", "2")
    assert [u["name"] for u in rest["users"]] == made[2:] and "next_token" not in rest
    backwards = await synadm.ok("user", "list", "-n", "listed", "--reverse")
    assert [u["name"] for u in backwards["users"]] == made[::-1]
    by_creation = await synadm.ok(
        "user", "list", "-n", "listed", "--sort-by", "creation_ts"
    )
    assert [u["name"] for u in by_creation["users"]] == made
    found = await synadm.ok("user", "search", made[1].split(":")[0][1:])
    assert [u["name"] for u in found["users"]] == [made[1]]
    # -i takes a whole user id (synadm completes a localpart with the server name).
    exact = await synadm.ok("user", "list", "-i", made[0].split(":")[0][1:])
    assert [u["name"] for u in exact["users"]] == [made[0]]
    non_admins = await synadm.ok("user", "list", "-A")
    assert all(not u["admin"] for u in non_admins["users"]) and non_admins["total"] >= 3


async def test_details(synadm: Synadm, admin: User) -> None:
    details = await synadm.ok("user", "details", admin.user_id)
    assert details["name"] == admin.user_id and details["admin"] is True
    assert details["deactivated"] is False and details["threepids"] == []
    # A localpart alone is completed with the configured homeserver name.
    assert (
        await synadm.ok("user", "details", admin.user_id[1:].split(":")[0])
    ) == details
    missing = await synadm.ok("user", "details", "nobody-here")
    assert missing["errcode"] == "M_NOT_FOUND"


async def test_modify_creates_a_user_who_can_log_in(
    srv: RunningServer, synadm: Synadm
) -> None:
    result = await synadm.run(
        "user",
        "modify",
        "fromsynadm",
        "-P",
        "synadm secret",
        "-n",
        "From Synadm",
        "--user-type",
        "bot",
    )
    assert result.returncode == 0, result
    # synadm shows the details before (none yet: 404) and the created user after.
    before, created = result.outputs
    assert before["errcode"] == "M_NOT_FOUND"
    assert created["name"] == f"@fromsynadm:{SERVER_NAME}"
    assert (created["displayname"], created["user_type"], created["admin"]) == (
        "From Synadm",
        "bot",
        False,
    )
    session = await login(srv.client, "fromsynadm", "synadm secret")
    assert session.status_code == 200, session.text

    changed = await synadm.ok(
        "user", "modify", "fromsynadm", "-a", "--user-type", "regular"
    )
    assert changed["admin"] is True and changed["user_type"] is None
    demoted = await synadm.ok("user", "modify", "fromsynadm", "-u")
    assert demoted["admin"] is False


async def test_password_reset_logs_out(srv: RunningServer, synadm: Synadm) -> None:
    user = await new_user(srv, "pwreset")
    assert (
        await synadm.ok("user", "password", user.user_id, "-p", "kept sessions", "-n")
        == {}
    )
    assert await whoami_status(srv, user.token) == 200
    assert (
        await synadm.ok("user", "password", user.user_id, "-p", "fresh password") == {}
    )
    assert await whoami_status(srv, user.token) == 401
    assert (await login(srv.client, user.user_id, "kept sessions")).status_code == 403
    assert (await login(srv.client, user.user_id, "fresh password")).status_code == 200


async def test_deactivate_and_erase(srv: RunningServer, synadm: Synadm) -> None:
    user, friend = await new_user(srv, "leaving"), await new_user(srv, "staying")
    room_id = await friend.create_room(preset="public_chat", room_alias_name="farewell")
    await user.call("POST", f"/join/{room_id}", {})
    membership = await synadm.ok("user", "membership", user.user_id, "--ids")
    assert membership == {"joined_rooms": [room_id], "total": 1}
    # By alias (the default): synadm asks the client API (r0) for the aliases of each room, as
    # a server admin who is not in it.
    by_alias = await synadm.ok("user", "membership", user.user_id)
    assert by_alias == {"joined_rooms": [f"#farewell:{SERVER_NAME}"], "total": 1}

    assert await synadm.ok("user", "deactivate", user.user_id, "-e") == {
        "id_server_unbind_result": "success"
    }
    details = await synadm.ok("user", "details", user.user_id)
    assert details["deactivated"] is True and details["erased"] is True
    assert await whoami_status(srv, user.token) == 401
    assert await synadm.ok("user", "membership", user.user_id, "--ids") == {
        "joined_rooms": [],
        "total": 0,
    }
    listed = await synadm.ok("user", "list", "-n", "leaving", "-d")
    assert [u["name"] for u in listed["users"]] == [user.user_id]
    assert (await synadm.ok("user", "list", "-n", "leaving"))["total"] == 0


async def test_whois_shows_synadm_as_the_admins_user_agent(
    synadm: Synadm, admin: User
) -> None:
    body = await synadm.ok("user", "whois", admin.user_id)
    assert body["user_id"] == admin.user_id
    [connection] = body["devices"][admin.device_id]["sessions"][0]["connections"]
    assert (
        connection["user_agent"].startswith("synadm/")
        and connection["ip"] == "127.0.0.1"
    )


async def test_prune_devices(srv: RunningServer, synadm: Synadm) -> None:
    user = await new_user(srv, "pruned")
    spare = (await login(srv.client, user.user_id, device_id="SPARE")).json()
    listed = await synadm.ok(
        "user",
        "prune-devices",
        user.user_id,
        "-i",
        "SPARE",
        "-d",
        "0",
        "--ts",
        "-l",
    )
    assert [d["device_id"] for d in listed] == ["SPARE"] and listed[0][
        "user_id"
    ] == user.user_id
    assert await whoami_status(srv, spare["access_token"]) == 200  # -l only lists
    await synadm.ok(
        "user", "prune-devices", user.user_id, "-i", "SPARE", "-d", "0", "--ts"
    )
    assert await whoami_status(srv, spare["access_token"]) == 401
    assert await whoami_status(srv, user.token) == 200


async def test_shadow_ban(srv: RunningServer, synadm: Synadm) -> None:
    banned, other = await new_user(srv, "muted"), await new_user(srv, "listener")
    room_id = await other.create_room(preset="public_chat")
    await banned.call("POST", f"/join/{room_id}", {})
    assert await synadm.ok("user", "shadow-ban", banned.user_id) == {}
    assert (await synadm.ok("user", "details", banned.user_id))["shadow_banned"] is True
    fake = await banned.send(room_id, "into the void")
    assert fake.startswith("$")
    event = await other.call("GET", f"/rooms/{room_id}/event/{fake}", expect=None)
    assert event.status_code == 404
    assert await synadm.ok("user", "shadow-ban", banned.user_id, "-u") == {}
    real = await banned.send(room_id, "heard")
    assert (await other.call("GET", f"/rooms/{room_id}/event/{real}")).json()[
        "content"
    ]["body"] == "heard"


async def test_a_non_admin_token_is_refused(srv: RunningServer, tmp_path: Path) -> None:
    plain = await new_user(srv, "notadmin")
    synadm = Synadm.for_server(
        tmp_path, str(srv.client.base_url), plain.token, server_name=SERVER_NAME
    )
    result = await synadm.run("user", "list")
    assert result.json["errcode"] == "M_FORBIDDEN"


async def test_over_the_admin_socket_without_a_token(
    srv: RunningServer, tmp_path: Path
) -> None:
    """synadm's unix-socket mode: opening the admin socket is the authentication. (synadm
    0.49.2 prefixes its socket URL again on every request, so only its one-request commands
    work this way.)"""
    user = await new_user(srv, "viasocket")
    synadm = Synadm.for_server(
        tmp_path,
        str(srv.config.admin_socket_path),
        "no-token-needed",
        server_name=SERVER_NAME,
        protocol="unix",
    )
    listed = await synadm.ok("user", "list", "-n", "viasocket")
    assert [u["name"] for u in listed["users"]] == [user.user_id]
    assert (await synadm.ok("user", "details", user.user_id))["name"] == user.user_id
    assert (
        await synadm.ok("user", "password", user.user_id, "-p", "set over the socket")
        == {}
    )
    assert (
        await login(srv.client, user.user_id, "set over the socket")
    ).status_code == 200
