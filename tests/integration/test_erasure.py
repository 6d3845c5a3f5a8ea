"""A user who deactivated with erase=true: their events are shown redacted to users who were
not in the room when they were sent, and whole to those who were (Synapse's rule; SyTest "Only
original members of the room can see messages from erased users")."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import RunningServer
from tests.integration.account_helpers import V3, running_server, uia_password
from tests.integration.room_helpers import User, new_user


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("erasure")) as s:
        yield s


async def _seen(user: User, room_id: str, event_id: str) -> dict:
    chunk = (await user.call("GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "20"})).json()["chunk"]
    timeline = (await user.call("GET", "/sync", params={"timeout": "0"})).json()["rooms"]["join"][room_id]
    from_sync = [e for e in timeline["timeline"]["events"] if e["event_id"] == event_id]
    (event,) = [e for e in chunk if e["event_id"] == event_id]
    assert from_sync == [] or from_sync[0]["content"] == event["content"]
    return event["content"]


@pytest.mark.parametrize("erase", [True, False])
async def test_only_original_members_see_an_erased_users_messages(srv: RunningServer, erase: bool) -> None:
    alice, bob, carol = await new_user(srv, "alice"), await new_user(srv, "bob"), await new_user(srv, "carol")
    room_id = await alice.create_room(preset="public_chat")
    await bob.call("POST", f"/join/{room_id}", {})
    message = await alice.send(room_id, "body1")
    await carol.call("POST", f"/join/{room_id}", {})
    assert (await _seen(carol, room_id, message))["body"] == "body1"
    name = alice.user_id[1:].split(":")[0]
    resp = await uia_password(srv.client, "POST", f"{V3}/account/deactivate", alice.token, name, {"erase": erase})
    assert resp.status_code == 200, resp.text
    assert (await _seen(bob, room_id, message))["body"] == "body1"
    assert await _seen(carol, room_id, message) == ({} if erase else {"msgtype": "m.text", "body": "body1"})
