"""Account deactivation on a real server: the account leaves every room it is joined, invited or
knocking in (leave events other members see), its profile is cleared and its sessions revoked
(client-server-api §Account deactivation; users/account_management.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiosqlite
import pytest

from dendrite_lite.api.app import Services
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.rooms.membership import MembershipService
from dendrite_lite.storage import accounts as accounts_table
from dendrite_lite.storage import history as history_table
from dendrite_lite.users.account_management import deactivate_account
from tests.conftest import RunningServer
from tests.integration.account_helpers import V3, auth_header, running_server, uia_password
from tests.integration.room_helpers import User, new_user


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("deactivation")) as s:
        yield s


def _services(srv: RunningServer) -> Services:
    svc: Services = srv.app().extensions["dendrite_lite"]
    return svc


def _membership(srv: RunningServer) -> MembershipService:
    svc = _services(srv)
    return MembershipService(
        svc.storage, svc.pipeline, svc.config.server.server_name, svc.federated_membership
    )


async def _members(user: User, room_id: str) -> dict[str, str]:
    chunk = (await user.call("GET", f"/rooms/{room_id}/members")).json()["chunk"]
    return {e["state_key"]: e["content"]["membership"] for e in chunk}


async def _rooms_of(srv: RunningServer, owner: User, victim: User) -> dict[str, str]:
    """A room the victim joined, one it is invited to, one it knocks at, one it is banned from
    and one it created alone."""
    joined = await owner.create_room(preset="public_chat")
    await victim.call("POST", f"/join/{joined}", {})
    invited = await owner.create_room(preset="private_chat")
    await owner.call("POST", f"/rooms/{invited}/invite", {"user_id": victim.user_id})
    knocked = await owner.create_room(preset="private_chat", room_version="10")
    await owner.call("PUT", f"/rooms/{knocked}/state/m.room.join_rules/", {"join_rule": "knock"})
    await victim.call("POST", f"/knock/{knocked}", {})
    banned = await owner.create_room(preset="public_chat")
    await owner.call("POST", f"/rooms/{banned}/ban", {"user_id": victim.user_id})
    alone = await victim.create_room()
    return {"join": joined, "invite": invited, "knock": knocked, "ban": banned, "alone": alone}


async def test_deactivation_leaves_every_room_and_clears_the_profile(srv: RunningServer) -> None:
    owner, victim = await new_user(srv, "owner"), await new_user(srv, "victim")
    await victim.call("PUT", f"/profile/{victim.user_id}/displayname", {"displayname": "Vic"})
    await victim.call("PUT", f"/profile/{victim.user_id}/avatar_url", {"avatar_url": "mxc://x/y"})
    rooms = await _rooms_of(srv, owner, victim)
    before = {k: (await _members(owner, r)).get(victim.user_id) for k, r in rooms.items() if k != "alone"}
    assert before == {"join": "join", "invite": "invite", "knock": "knock", "ban": "ban"}
    since = (await owner.call("GET", "/sync", params={"timeout": 0})).json()["next_batch"]

    await deactivate_account(_services(srv).storage, victim.user_id, membership=_membership(srv))

    after = {k: (await _members(owner, r)).get(victim.user_id) for k, r in rooms.items() if k != "alone"}
    assert after == {"join": "leave", "invite": "leave", "knock": "leave", "ban": "ban"}
    # The other member's /sync shows the leave, sent by the deactivated user themselves.
    body = (await owner.call("GET", "/sync", params={"since": since, "timeout": 0})).json()
    events = body["rooms"]["join"][rooms["join"]]["timeline"]["events"]
    leaves = [e for e in events if e["type"] == "m.room.member" and e["state_key"] == victim.user_id]
    assert [(e["sender"], e["content"]) for e in leaves] == [(victim.user_id, {"membership": "leave"})]
    state = await _services(srv).storage.db.read(
        lambda c: accounts_table.select_account(c, victim.user_id)
    )
    assert state is not None and state.deactivated
    assert (state.displayname, state.avatar_url) == (None, None)
    whoami = await srv.client.get(f"{V3}/account/whoami", headers=auth_header(victim.token))
    assert whoami.status_code == 401
    # The room the user was alone in is left too (nobody is joined any more).
    alone_members = await _services(srv).storage.db.read(
        lambda c: _membership_of(c, rooms["alone"], victim.user_id)
    )
    assert alone_members == "leave"


async def _membership_of(conn: aiosqlite.Connection, room_id: str, user_id: str) -> str | None:
    found = await history_table.select_current_memberships(conn, user_id, [room_id])
    return found[room_id][0] if room_id in found else None


async def test_a_room_refusing_the_leave_does_not_stop_the_others(srv: RunningServer) -> None:
    owner, victim = await new_user(srv, "owner"), await new_user(srv, "victim")
    first = await owner.create_room(preset="public_chat")
    second = await owner.create_room(preset="public_chat")
    for room_id in (first, second):
        await victim.call("POST", f"/join/{room_id}", {})
    # The auth rules always allow leaving one's own join, so one room refuses here instead
    # (as a remote server refusing make_leave for an invite would).
    svc = _services(srv)
    real = _membership(srv)

    class Refusing(MembershipService):
        async def leave(self, user_id: str, room_id: str, *, reason: object = None) -> None:
            if room_id == first:
                raise MatrixError(Errcode.FORBIDDEN, "not today")
            await super().leave(user_id, room_id, reason=reason)

    refusing = Refusing(real.storage, real.pipeline, real.server_name, real.federation)
    await deactivate_account(svc.storage, victim.user_id, membership=refusing)
    assert (await _members(owner, first))[victim.user_id] == "join"
    assert (await _members(owner, second))[victim.user_id] == "leave"


async def test_deactivate_endpoint_leaves_rooms(srv: RunningServer) -> None:
    owner, victim = await new_user(srv, "owner"), await new_user(srv, "victim")
    room_id = await owner.create_room(preset="public_chat")
    await victim.call("POST", f"/join/{room_id}", {})
    name = victim.user_id[1:].split(":")[0]
    resp = await uia_password(srv.client, "POST", f"{V3}/account/deactivate", victim.token, name)
    assert resp.status_code == 200, resp.text
    assert (await _members(owner, room_id))[victim.user_id] == "leave"


async def test_wrong_password_answers_the_uia_state_with_the_error(srv: RunningServer) -> None:
    """SyTest "Can't deactivate account with wrong password": a failed stage is a 401 with the
    session's flows, params, session and completed stages plus errcode/error (client-server-api
    §User-interactive authentication API)."""
    victim = await new_user(srv, "victim")
    auth = {"type": "m.login.password", "password": "wrong password",
            "identifier": {"type": "m.id.user", "user": victim.user_id}}
    resp = await srv.client.post(
        f"{V3}/account/deactivate", json={"auth": auth}, headers=auth_header(victim.token)
    )
    body = resp.json()
    assert resp.status_code == 401
    assert (body["errcode"], body["completed"]) == ("M_FORBIDDEN", [])
    assert {"error", "flows", "params", "session"} <= body.keys()
    assert {"stages": ["m.login.password"]} in body["flows"]
