"""synadm (the Synapse admin CLI from PyPI) drives our room admin API as a real client: its
`room` commands list and search rooms, show details, members, state and power levels, block,
make a user room admin, join a user, delete rooms (v1 and v2 with their status) and purge the
empty ones, and `history` purges a room's history; each checked against what the server then
does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.admin_room_helpers import make_admin
from tests.integration.room_helpers import new_user
from tests.interop.synadm_runner import Synadm


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("synadm_rooms")) as s:
        yield s


@pytest.fixture(scope="module")
async def synadm(
    srv: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> Synadm:
    """synadm as a server admin of `srv`."""
    admin = await make_admin(srv, "roomadmin")
    url = str(srv.client.base_url)
    directory = tmp_path_factory.mktemp("synadm")
    return Synadm.for_server(directory, url, admin.token, server_name=SERVER_NAME)


async def test_list_search_details_members_state(
    srv: RunningServer, synadm: Synadm
) -> None:
    owner, guest = await new_user(srv, "sowner"), await new_user(srv, "sguest")
    rooms = {}
    for name in ("syn-b", "syn-a", "syn-c"):
        rooms[name] = await owner.create_room(name=name, preset="public_chat")
    await guest.call("POST", f"/rooms/{rooms['syn-c']}/join", {})
    listed = await synadm.ok("room", "list", "-n", "syn-", "-l", "2")
    assert [r["name"] for r in listed["rooms"]] == ["syn-a", "syn-b"]
    assert (listed["total_rooms"], listed["next_batch"]) == (3, 2)
    rest = await synadm.ok("room", "list", "-n", "syn-", "-l", "2", "-f", "2")
    assert [r["name"] for r in rest["rooms"]] == ["syn-c"]
    reverse = await synadm.ok("room", "search", "syn-", "-r")
    assert [r["name"] for r in reverse["rooms"]] == ["syn-c", "syn-b", "syn-a"]
    by_size = await synadm.ok("room", "list", "-n", "syn-", "-s", "joined_members")
    assert by_size["rooms"][0]["name"] == "syn-c"
    details = await synadm.ok("room", "details", rooms["syn-c"])
    assert (details["name"], details["joined_members"], details["creator"]) == (
        "syn-c",
        2,
        owner.user_id,
    )
    members = await synadm.ok("room", "members", rooms["syn-c"])
    assert members == {"members": sorted([owner.user_id, guest.user_id]), "total": 2}
    state = await synadm.ok("room", "state", rooms["syn-c"])
    assert {"m.room.create", "m.room.name"} <= {e["type"] for e in state["state"]}
    levels = await synadm.ok("room", "power-levels", "-i", rooms["syn-a"])
    assert levels["rooms"][0]["room_id"] == rooms["syn-a"]
    missing = await synadm.run("room", "details", f"!nope:{SERVER_NAME}")
    assert "not found" in (missing.stdout + missing.stderr).lower()


async def test_block_and_make_admin(srv: RunningServer, synadm: Synadm) -> None:
    owner, other = await new_user(srv, "bowner"), await new_user(srv, "bother")
    room_id = await owner.create_room(preset="private_chat")
    assert await synadm.ok("room", "block", room_id) == {"block": True}
    status = await synadm.ok("room", "block-status", room_id)
    assert status["block"] is True
    # Blocked: the owner cannot invite anyone in.
    resp = await owner.call(
        "POST", f"/rooms/{room_id}/invite", {"user_id": other.user_id}, expect=403
    )
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    assert await synadm.ok("room", "block", "-u", room_id) == {"block": False}
    await synadm.ok("room", "make-admin", room_id, "-u", other.user_id)
    # `room join` (the Edit Room Membership API) puts a user straight in.
    joiner = await new_user(srv, "bjoiner")
    assert await synadm.ok("room", "join", room_id, joiner.user_id) == {
        "room_id": room_id
    }
    assert room_id in (await joiner.call("GET", "/joined_rooms")).json()["joined_rooms"]
    await other.call("POST", f"/rooms/{room_id}/join", {})
    levels = (await other.state(room_id, "m.room.power_levels")).json()
    assert levels["users"][other.user_id] == 100


async def test_delete_v1_and_v2(srv: RunningServer, synadm: Synadm) -> None:
    owner, notice = await new_user(srv, "downer"), await new_user(srv, "dnotice")
    kept = await owner.create_room(name="syn-deleted-v1")
    result = await synadm.ok(
        "room",
        "delete",
        kept,
        "--v1",
        "-u",
        notice.user_id,
        "-b",
        "--no-purge",
        "-n",
        "Moved",
        "-m",
        "See you",
    )
    assert result["kicked_users"] == [owner.user_id]
    assert (await owner.state(result["new_room_id"], "m.room.name")).json() == {
        "name": "Moved"
    }
    assert (await synadm.ok("room", "block-status", kept))["block"] is True
    purged = await owner.create_room(name="syn-deleted-v2")
    started = await synadm.ok("room", "delete", purged)
    delete_id = started["delete_id"]
    for _ in range(100):
        status = await synadm.ok("room", "delete-status", "-d", delete_id)
        if status["status"] != "active":
            break
    assert status["status"] == "complete" and status["room_id"] == purged
    by_room = await synadm.ok("room", "delete-status", "-r", purged)
    assert by_room["results"][0]["delete_id"] == delete_id
    assert (await synadm.ok("room", "search", "syn-deleted-v2"))["total_rooms"] == 0


async def test_history_purge(srv: RunningServer, synadm: Synadm) -> None:
    owner = await new_user(srv, "howner")
    room_id = await owner.create_room(name="syn-history")
    sent = [await owner.send(room_id, f"h{i}") for i in range(4)]
    started = await synadm.ok(
        "history", "purge", room_id, "-i", sent[2], "--delete-local"
    )
    for _ in range(100):
        status = await synadm.ok("history", "purge-status", started["purge_id"])
        if status["status"] != "active":
            break
    assert status == {"status": "complete"}
    resp = await owner.call(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": 50}
    )
    bodies = [
        e["content"]["body"]
        for e in resp.json()["chunk"]
        if e["type"] == "m.room.message"
    ]
    assert bodies == ["h3", "h2"]


async def test_purge_empty_rooms(srv: RunningServer, synadm: Synadm) -> None:
    """Last in the module: it deletes every room no local user is in."""
    owner = await new_user(srv, "eowner")
    room_id = await owner.create_room(name="syn-empty")
    await owner.call("POST", f"/rooms/{room_id}/leave", {})
    dry = await synadm.run("room", "purge-empty", "--dry-run")
    assert dry.returncode == 0 and room_id in dry.stdout, dry
    assert (await synadm.ok("room", "search", "syn-empty"))["total_rooms"] == 1
    # v2 (synadm's --v1 here sends purge=false: its room_delete takes "no_purge").
    done = await synadm.run("room", "purge-empty")
    assert done.returncode == 0 and "delete_id" in done.stdout, done
    for _ in range(100):
        if (await synadm.ok("room", "search", "syn-empty"))["total_rooms"] == 0:
            break
    else:
        raise AssertionError("the empty room was not purged")
