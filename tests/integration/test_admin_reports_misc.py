"""Admin API through a real server: an event report's details and dismissal, server_version,
Synapse's background updates switch, and our periodic jobs list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite import __version__
from tests.conftest import RunningServer, StartServer
from tests.integration.account_helpers import (
    running_server,
)
from tests.integration.admin_room_helpers import V1, admin_call, make_admin
from tests.integration.federation_helpers import RemoteServer, join_remote_user
from tests.integration.room_helpers import User, new_user

REPORTS = f"{V1}/event_reports"
JOBS = "/_dendrite_lite/admin/v1/jobs"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("admin_misc")) as s:
        yield s


@pytest.fixture(scope="module")
async def admin(srv: RunningServer) -> User:
    return await make_admin(srv)


async def _call(
    user: User, method: str, path: str, body: Any = None, expect: int = 200
) -> Any:
    return (await admin_call(user, method, path, body, expect=expect)).json()


async def test_event_report_details_and_dismissal(
    srv: RunningServer, admin: User
) -> None:
    alice, bob = await new_user(srv, "alice"), await new_user(srv, "bob")
    room = await alice.create_room(preset="public_chat", name="Town square")
    await bob.call("POST", f"/rooms/{room}/join", {})
    await alice.call(
        "PUT",
        f"/directory/room/%23square:{srv.config.server.server_name}",
        {"room_id": room},
    )
    alias = f"#square:{srv.config.server.server_name}"
    await alice.call(
        "PUT", f"/rooms/{room}/state/m.room.canonical_alias/", {"alias": alias}
    )
    event_id = await alice.send(room, "something rude")
    await bob.call(
        "POST", f"/rooms/{room}/report/{event_id}", {"reason": "spam", "score": -50}
    )
    await bob.call(
        "POST", f"/rooms/{room}/report", {"reason": "the whole room"}
    )  # not an event

    (listed,) = [
        r
        for r in (await _call(admin, "GET", REPORTS))["event_reports"]
        if r["event_id"] == event_id
    ]
    details = await _call(admin, "GET", f"{REPORTS}/{listed['id']}")
    event_json = details.pop("event_json")
    assert details == listed | {"name": "Town square", "canonical_alias": alias}
    assert (
        details["user_id"],
        details["sender"],
        details["reason"],
        details["score"],
    ) == (bob.user_id, alice.user_id, "spam", -50)
    assert event_json["content"] == {"msgtype": "m.text", "body": "something rude"}
    assert (event_json["room_id"], event_json["sender"]) == (room, alice.user_id)
    assert "signatures" in event_json and "hashes" in event_json  # the event as stored

    assert await _call(admin, "DELETE", f"{REPORTS}/{listed['id']}") == {}
    for method in ("GET", "DELETE"):
        gone = await _call(admin, method, f"{REPORTS}/{listed['id']}", expect=404)
        assert gone["errcode"] == "M_NOT_FOUND"
    remaining = (await _call(admin, "GET", REPORTS))["event_reports"]
    assert event_id not in [r["event_id"] for r in remaining]
    # The room report is not an event report: the list never showed it, nor does this.
    room_report_id = listed["id"] + 1
    missing = await _call(admin, "GET", f"{REPORTS}/{room_report_id}", expect=404)
    assert missing["errcode"] == "M_NOT_FOUND"
    for bad_id in ("abc", "9" * 25):
        bad = await _call(admin, "GET", f"{REPORTS}/{bad_id}", expect=400)
        assert bad["errcode"] == "M_INVALID_PARAM"
    huge = await _call(admin, "GET", f"{REPORTS}?limit={'9' * 25}", expect=400)
    assert huge["errcode"] == "M_INVALID_PARAM"
    denied = await _call(bob, "GET", f"{REPORTS}/{listed['id']}", expect=403)
    assert denied["errcode"] == "M_FORBIDDEN"
    denied = await _call(bob, "DELETE", f"{REPORTS}/{listed['id']}", expect=403)
    assert denied["errcode"] == "M_FORBIDDEN"


async def test_server_version(srv: RunningServer, admin: User) -> None:
    body = await _call(admin, "GET", f"{V1}/server_version")
    assert body["server_version"] == __version__ and body["server"] == "dendrite-lite"
    assert isinstance(body["python_version"], str)
    plain = await new_user(srv, "plain")
    assert (await _call(plain, "GET", f"{V1}/server_version", expect=403))[
        "errcode"
    ] == "M_FORBIDDEN"


async def test_background_updates_switch(srv: RunningServer, admin: User) -> None:
    updates = f"{V1}/background_updates"
    assert await _call(admin, "GET", f"{updates}/status") == {
        "enabled": True,
        "current_updates": {},
    }
    assert await _call(admin, "POST", f"{updates}/enabled", {"enabled": False}) == {
        "enabled": False
    }
    assert await _call(admin, "GET", f"{updates}/enabled") == {"enabled": False}
    assert (await _call(admin, "GET", f"{updates}/status"))["enabled"] is False
    missing = await _call(admin, "POST", f"{updates}/enabled", {}, expect=400)
    assert missing["errcode"] == "M_MISSING_PARAM"
    wrong = await _call(
        admin, "POST", f"{updates}/enabled", {"enabled": "yes"}, expect=400
    )
    assert wrong["errcode"] == "M_INVALID_PARAM"
    assert await _call(admin, "POST", f"{updates}/enabled", {"enabled": True}) == {
        "enabled": True
    }
    for job in (
        "populate_stats_process_rooms",
        "regenerate_directory",
    ):  # nothing to rebuild
        assert (
            await _call(admin, "POST", f"{updates}/start_job", {"job_name": job}) == {}
        )
    unknown = await _call(
        admin, "POST", f"{updates}/start_job", {"job_name": "x"}, expect=400
    )
    assert unknown["errcode"] == "M_INVALID_PARAM"
    no_name = await _call(admin, "POST", f"{updates}/start_job", {}, expect=400)
    assert no_name["errcode"] == "M_MISSING_PARAM"


async def test_jobs_show_the_outbox_retry_of_a_failing_destination(
    srv: RunningServer, admin: User
) -> None:
    jobs = {j["name"]: j for j in (await _call(admin, "GET", JOBS))["jobs"]}
    # No ACME here; remote media retention is on by default, its first pass minutes away.
    assert set(jobs) == {"federation-outbox-retry", "presence-timeouts", "remote-media-retention"}
    assert jobs["remote-media-retention"]["last_run_ts"] is None
    assert jobs["federation-outbox-retry"]["last_result"] == "ok"
    assert jobs["federation-outbox-retry"]["next_run_ts"] is None
    assert set(jobs["presence-timeouts"]) == {
        "name",
        "last_run_ts",
        "last_result",
        "next_run_ts",
    }

    # A destination on a closed loopback port: the first attempt fails and a retry is due.
    remote = await RemoteServer.trusted_by(srv)
    room = await admin.create_room(preset="public_chat")
    await join_remote_user(srv, room, remote.user("zed"))
    await admin.send(room, "hello zed")
    for _ in range(500):
        outbox = next(
            j
            for j in (await _call(admin, "GET", JOBS))["jobs"]
            if j["name"] == "federation-outbox-retry"
        )
        if outbox["last_result"] != "ok":
            break
        await asyncio.sleep(0.02)
    assert outbox["last_result"] == "1 destination(s) backing off"
    assert outbox["next_run_ts"] > outbox["last_run_ts"] > 0


async def test_jobs_show_scheduled_backups(
    start_server: StartServer, tmp_path: Path
) -> None:
    srv = await start_server(
        {
            "registration.mode": "open",
            "backup.directory": tmp_path / "backups",
            "backup.interval_hours": 0.0003,  # about a second
        }
    )
    admin = await make_admin(srv)
    for _ in range(500):
        jobs = {j["name"]: j for j in (await _call(admin, "GET", JOBS))["jobs"]}
        if jobs["scheduled-backups"]["last_result"] is not None:
            break
        await asyncio.sleep(0.02)
    backups = jobs["scheduled-backups"]
    assert backups["last_result"].startswith(f"ok: {tmp_path / 'backups'}")
    assert backups["next_run_ts"] == backups["last_run_ts"] + int(0.0003 * 3600 * 1000)


async def test_event_report_list_filters_and_direction(
    srv: RunningServer, admin: User
) -> None:
    alice, bob, carol = [await new_user(srv, n) for n in ("alice", "bob", "carol")]
    rooms = [
        await alice.create_room(preset="public_chat", name=f"Room {i}")
        for i in range(2)
    ]
    reported = []
    for room in rooms:
        for reporter in (bob, carol):
            await reporter.call("POST", f"/rooms/{room}/join", {})
            event_id = await alice.send(room, "spam")
            await reporter.call(
                "POST", f"/rooms/{room}/report/{event_id}", {"reason": "x"}
            )
            reported.append((room, reporter.user_id, event_id))
    own = await bob.send(rooms[1], "bob's own")
    await carol.call("POST", f"/rooms/{rooms[1]}/report/{own}", {})

    def ids(body: Any) -> list[str]:
        return [r["event_id"] for r in body["event_reports"]]

    by_bob = await _call(admin, "GET", f"{REPORTS}?user_id={bob.user_id}")
    assert ids(by_bob) == [reported[2][2], reported[0][2]] and by_bob["total"] == 2
    in_room = await _call(admin, "GET", f"{REPORTS}?room_id={rooms[0]}&dir=f")
    assert ids(in_room) == [reported[0][2], reported[1][2]]
    assert {(r["name"], r["canonical_alias"]) for r in in_room["event_reports"]} == {
        ("Room 0", None)
    }
    against_bob = await _call(admin, "GET", f"{REPORTS}?sender_user_id={bob.user_id}")
    assert ids(against_bob) == [own] and against_bob["total"] == 1
    paged = await _call(
        admin, "GET", f"{REPORTS}?user_id={carol.user_id}&limit=1&from=1"
    )
    assert (
        ids(paged) == [reported[3][2]]
        and paged["next_token"] == 2
        and paged["total"] == 3
    )
    bad = await _call(admin, "GET", f"{REPORTS}?dir=sideways", expect=400)
    assert bad["errcode"] == "M_INVALID_PARAM"
