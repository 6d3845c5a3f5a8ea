"""A real client on MSC4140 delayed events: matrix-js-sdk under Node, used the way MatrixRTC
(Element Call) uses them, against our server (tests/interop/js_sliding_sync/delayed_events.mjs).
It schedules its call membership's end, joins the call, keeps restarting the delay (still in
the call), then stops, as a crashed client does, and the membership must end by itself; then a
delayed message sent at once, one cancelled, and one over the maximum delay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import PASSWORD, running_server
from tests.integration.room_helpers import new_user
from tests.interop.test_matrix_js_sdk_sliding_sync import (
    PACKAGE,
    NodeClient,
    _node,
    _stop,
)

pytestmark = pytest.mark.interop

MAX_DELAY_S = 60


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    overrides = {"calls.max_event_delay_s": MAX_DELAY_S}
    async with running_server(tmp_path_factory.mktemp("js-delayed"), overrides) as s:
        yield s


def _is(name: str) -> Any:
    return lambda line: line["event"] == name


async def test_js_sdk_call_membership_ends_by_itself(srv: RunningServer) -> None:
    alice = await new_user(srv, "jsdelay")
    room = await alice.create_room(preset="private_chat", name="Call")
    proc = await asyncio.create_subprocess_exec(
        _node(), str(PACKAGE / "delayed_events.mjs"), srv.listening.client_url,
        alice.user_id, PASSWORD, room, str(MAX_DELAY_S * 1000),
        cwd=PACKAGE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    client = NodeClient(proc)
    try:
        login = await client.next_matching(_is("logged_in"), "a login")
        joined = await client.next_matching(_is("joined"), "the call joined")
        state_key = f"_{alice.user_id}_{login['device_id']}"
        assert joined["state_key"] == state_key and joined["delay_id"].startswith("syd_")

        beat = await client.next_matching(_is("heartbeat"), "the heartbeat")
        assert beat["beats"] >= 3
        assert beat["application"] == "m.call"  # restarted in time: still in the call

        [listed] = (await client.next_matching(_is("listed"), "the listing"))["delayed_events"]
        assert listed["delay_id"] == joined["delay_id"]
        assert listed["type"] == "org.matrix.msc3401.call.member"
        assert listed["state_key"] == state_key and listed["delay"] == 1500
        assert listed["content"] == {} and isinstance(listed["running_since"], int)

        left = await client.next_matching(_is("left"), "the membership ending")
        assert left["content"] == {}, left
        resp = await alice.state(room, "org.matrix.msc3401.call.member", state_key)
        assert resp.status_code == 200 and resp.json() == {}

        end = await client.next_matching(_is("messages"), "the delayed messages")
        assert end["bodies"][0] == "sent now" and "cancelled" not in end["bodies"]
        assert end["unknown"] == {"status": 404, "errcode": "M_NOT_FOUND"}
        assert end["too_long"] == {
            "status": 400, "errcode": "M_MAX_DELAY_EXCEEDED", "max_delay": MAX_DELAY_S * 1000
        }
        assert end["pending"] == 0
        await client.next_matching(_is("done"), "the end")
    finally:
        await _stop(client)
    assert proc.returncode == 0
