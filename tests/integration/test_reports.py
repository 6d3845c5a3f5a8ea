"""Reporting content (report_content.md): event reports only from joined users, room and user
reports from anyone; 404s for unknown rooms, events and local users; rows kept for the admin."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dendrite_lite.api.app import Services
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage.reports import ContentReport
from tests.conftest import RunningServer
from tests.integration.account_helpers import running_server
from tests.integration.sync_helpers import User, create_room, join, new_user, send

_n = itertools.count(1)


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("reports")) as s:
        yield s


async def _user(srv: RunningServer, name: str) -> User:
    return await new_user(srv.client, f"rep{next(_n)}{name}")


async def _newest(srv: RunningServer) -> ContentReport:
    svc: Services = srv.app().extensions["dendrite_lite"]
    return (await svc.reports.reports(limit=1))[0]


def _check(resp: Any, status: int, errcode: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    if errcode is not None:
        assert resp.json()["errcode"] == errcode
    else:
        assert resp.json() == {}


async def test_event_report(srv: RunningServer) -> None:
    alice, bob, carol = [await _user(srv, n) for n in ("alice", "bob", "carol")]
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    event_id = await send(alice, room, "rude")
    _check(await bob.post(f"/rooms/{room}/report/{event_id}", {"reason": "spam", "score": -100}), 200)
    report = await _newest(srv)
    assert (report.reporter, report.room_id, report.event_id, report.target_user_id,
            report.reason, report.score) == (bob.user_id, room, event_id, alice.user_id, "spam", -100)
    _check(await bob.post(f"/rooms/{room}/report/{event_id}", {}), 200)
    assert (await _newest(srv)).reason is None
    # Not joined (never, or no longer): the same 404 as an unknown event.
    _check(await carol.post(f"/rooms/{room}/report/{event_id}", {}), 404, "M_NOT_FOUND")
    await bob.post(f"/rooms/{room}/leave", {})
    _check(await bob.post(f"/rooms/{room}/report/{event_id}", {}), 404, "M_NOT_FOUND")
    _check(await alice.post(f"/rooms/{room}/report/$nope", {}), 404, "M_NOT_FOUND")
    other = await create_room(alice)
    _check(await alice.post(f"/rooms/{other}/report/{event_id}", {}), 404, "M_NOT_FOUND")
    for bad in ({"reason": 5}, {"score": 1}, {"score": "x"}, {"score": True}):
        _check(await alice.post(f"/rooms/{room}/report/{event_id}", bad), 400, "M_INVALID_PARAM")


async def test_room_report_needs_no_membership(srv: RunningServer) -> None:
    alice, mallory = await _user(srv, "alice"), await _user(srv, "mallory")
    room = await create_room(alice)  # private: mallory cannot join it
    _check(await mallory.post(f"/rooms/{room}/report", {"reason": "bad room"}), 200)
    report = await _newest(srv)
    assert (report.reporter, report.room_id, report.event_id, report.reason) == (
        mallory.user_id, room, None, "bad room"
    )
    _check(await mallory.post("/rooms/!unknown:test.localhost/report", {}), 404, "M_NOT_FOUND")


async def test_user_report(srv: RunningServer) -> None:
    alice, bob = await _user(srv, "alice"), await _user(srv, "bob")
    _check(await alice.post(f"/users/{bob.user_id}/report", {"reason": ""}), 200)
    report = await _newest(srv)
    assert (report.reporter, report.target_user_id, report.room_id, report.reason) == (
        alice.user_id, bob.user_id, None, ""
    )
    _check(await alice.post("/users/@ghost:test.localhost/report", {}), 404, "M_NOT_FOUND")
    _check(await alice.post("/users/@someone:elsewhere.example/report", {}), 200)
    _check(await alice.post("/users/nobody/report", {}), 400, "M_INVALID_PARAM")
    resp = await srv.client.post(f"/_matrix/client/v3/users/{bob.user_id}/report", json={})
    _check(resp, 401, "M_MISSING_TOKEN")


async def test_admin_lists_event_reports(srv: RunningServer) -> None:
    admin, alice, bob = [await _user(srv, n) for n in ("admin", "alice", "bob")]
    svc: Services = srv.app().extensions["dendrite_lite"]
    await svc.storage.db.write(lambda c: accounts_table.update_account_admin(c, admin.user_id, True))
    room = await create_room(alice, preset="public_chat")
    await join(bob, room)
    events = [await send(alice, room, f"bad {i}") for i in range(3)]
    for i, event_id in enumerate(events):
        _check(await bob.post(f"/rooms/{room}/report/{event_id}", {"reason": f"r{i}"}), 200)
    _check(await bob.post(f"/rooms/{room}/report", {"reason": "whole room"}), 200)

    url = "/_synapse/admin/v1/event_reports"
    first = await srv.client.get(url, params={"limit": 2}, headers=admin.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] >= 3 and body["next_token"] == 2
    newest = body["event_reports"][0]
    assert {k: newest[k] for k in ("room_id", "event_id", "user_id", "sender", "reason", "score")} == {
        "room_id": room, "event_id": events[2], "user_id": bob.user_id, "sender": alice.user_id,
        "reason": "r2", "score": None,
    }
    assert [r["event_id"] for r in body["event_reports"]] == [events[2], events[1]]
    second = (await srv.client.get(url, params={"from": 2, "limit": 1}, headers=admin.headers)).json()
    assert [r["event_id"] for r in second["event_reports"]] == [events[0]]
    resp = await srv.client.get(url, headers=bob.headers)
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    resp = await srv.client.get(url, params={"from": -1}, headers=admin.headers)
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"
