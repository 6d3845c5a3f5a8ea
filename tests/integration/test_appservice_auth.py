"""Application service -> homeserver: as_token authentication, identity assertion (?user_id=,
?device_id=), m.login.application_service registration and login, exclusive namespaces against
normal users, ts massaging, rate limits, and the AS room list (application-service-api
§Client-Server API Extensions)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import V3, auth_header, register, running_server
from tests.integration.appservice_fake import write_registration
from tests.integration.room_helpers import User, new_user

AS = "bridge"
OTHER = "other"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    regs = tmp_path_factory.mktemp("regs")
    main = write_registration(
        regs, AS,
        namespaces={
            "users": [{"regex": rf"@br_.*:{SERVER_NAME}", "exclusive": True},
                      {"regex": rf"@shared_.*:{SERVER_NAME}", "exclusive": False}],
            "aliases": [{"regex": rf"#br_.*:{SERVER_NAME}", "exclusive": True}],
            "rooms": [],
        },
        rate_limited=False,
    )
    other = write_registration(
        regs, OTHER, namespaces={"users": [{"regex": "@ot_.*", "exclusive": True}]},
        rate_limited=True, **{"io.element.msc4190": True},
    )
    overrides = {
        "appservices.registration_files": (main, other),
        # Only the AS that says so is exempt from the send limit.
        "ratelimit.enabled": True, "ratelimit.send_per_second": 0.001, "ratelimit.send_burst": 2,
        "ratelimit.register_per_second": 0, "ratelimit.login_per_second": 0,
    }
    async with running_server(tmp_path_factory.mktemp("as-auth"), overrides) as server:
        server.as_tokens = {  # type: ignore[attr-defined]
            name: yaml.safe_load(path.read_text())["as_token"] for name, path in ((AS, main), (OTHER, other))
        }
        yield server


def _as(srv: RunningServer, name: str = AS) -> dict[str, str]:
    return auth_header(srv.as_tokens[name])  # type: ignore[attr-defined]


async def _as_call(
    srv: RunningServer, method: str, path: str, body: Any = None, *, name: str = AS, **params: str
) -> Any:
    url = path if path.startswith("/_matrix") else f"{V3}{path}"
    return await srv.client.request(method, url, json=body, headers=_as(srv, name), params=params)


async def _register_ghost(srv: RunningServer, localpart: str, **extra: Any) -> Any:
    body = {"type": "m.login.application_service", "username": localpart, **extra}
    return await _as_call(srv, "POST", "/register", body)


async def test_as_token_acts_as_the_sender_user(srv: RunningServer) -> None:
    resp = await _as_call(srv, "GET", "/account/whoami")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"user_id": f"@{AS}bot:{SERVER_NAME}", "is_guest": False}  # no device


async def test_register_ghost_and_act_as_it(srv: RunningServer) -> None:
    resp = await _register_ghost(srv, "br_alice", inhibit_login=True)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"user_id": f"@br_alice:{SERVER_NAME}"}
    whoami = await _as_call(srv, "GET", "/account/whoami", user_id=f"@br_alice:{SERVER_NAME}")
    assert whoami.status_code == 200, whoami.text
    assert whoami.json()["user_id"] == f"@br_alice:{SERVER_NAME}"
    # The same username again is taken.
    again = await _register_ghost(srv, "br_alice", inhibit_login=True)
    assert (again.status_code, again.json()["errcode"]) == (400, "M_USER_IN_USE")


async def test_register_ghost_with_login_gives_a_session(srv: RunningServer) -> None:
    resp = await _register_ghost(srv, "shared_bob")
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    whoami = await srv.client.get(f"{V3}/account/whoami", headers=auth_header(token))
    assert whoami.json()["user_id"] == f"@shared_bob:{SERVER_NAME}"


async def test_as_cannot_register_or_assert_outside_its_namespace(srv: RunningServer) -> None:
    resp = await _register_ghost(srv, "someone_else", inhibit_login=True)
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_EXCLUSIVE")
    # Another AS's exclusive user is outside this one's namespace too.
    resp = await _register_ghost(srv, "ot_x", inhibit_login=True)
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_EXCLUSIVE")
    user = await new_user(srv, "plain")
    whoami = await _as_call(srv, "GET", "/account/whoami", user_id=user.user_id)
    assert (whoami.status_code, whoami.json()["errcode"]) == (403, "M_EXCLUSIVE")


async def test_assert_unregistered_user_is_forbidden(srv: RunningServer) -> None:
    whoami = await _as_call(srv, "GET", "/account/whoami", user_id=f"@br_nobody:{SERVER_NAME}")
    assert (whoami.status_code, whoami.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_register_needs_a_valid_as_token(srv: RunningServer) -> None:
    body = {"type": "m.login.application_service", "username": "br_x", "inhibit_login": True}
    missing = await srv.client.post(f"{V3}/register", json=body)
    assert (missing.status_code, missing.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    wrong = await srv.client.post(f"{V3}/register", json=body, headers=auth_header("nope"))
    assert (wrong.status_code, wrong.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_normal_users_cannot_register_in_an_exclusive_namespace(srv: RunningServer) -> None:
    resp = await srv.client.post(f"{V3}/register", json={"username": "br_mallory", "password": "x" * 12})
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_EXCLUSIVE")
    available = await srv.client.get(f"{V3}/register/available", params={"username": "br_mallory"})
    assert (available.status_code, available.json()["errcode"]) == (400, "M_EXCLUSIVE")
    free = await srv.client.get(f"{V3}/register/available", params={"username": "shared_zoe"})
    assert free.json() == {"available": True}
    # A non-exclusive namespace stays open to everyone.
    body = await register(srv.client, "shared_carol")
    assert body["user_id"] == f"@shared_carol:{SERVER_NAME}"


async def test_login_as_ghost(srv: RunningServer) -> None:
    assert (await _register_ghost(srv, "br_dave", inhibit_login=True)).status_code == 200
    body = {"type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": "br_dave"}}
    resp = await _as_call(srv, "POST", "/login", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["user_id"] == f"@br_dave:{SERVER_NAME}"
    outside = await _as_call(srv, "POST", "/login", {**body, "identifier": {"type": "m.id.user", "user": "plainx"}})
    assert (outside.status_code, outside.json()["errcode"]) == (400, "M_EXCLUSIVE")
    no_token = await srv.client.post(f"{V3}/login", json=body)
    assert (no_token.status_code, no_token.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    flows = (await srv.client.get(f"{V3}/login")).json()["flows"]
    assert {"type": "m.login.application_service"} in flows


async def test_device_id_assertion(srv: RunningServer) -> None:
    resp = await _register_ghost(srv, "br_erin", device_id="ERINDEV")
    assert resp.status_code == 200, resp.text
    ok = await _as_call(srv, "GET", "/account/whoami", user_id=f"@br_erin:{SERVER_NAME}", device_id="ERINDEV")
    assert ok.status_code == 200, ok.text
    assert ok.json()["device_id"] == "ERINDEV"
    unknown = await _as_call(srv, "GET", "/account/whoami", user_id=f"@br_erin:{SERVER_NAME}", device_id="NOPE")
    assert (unknown.status_code, unknown.json()["errcode"]) == (400, "M_UNKNOWN_DEVICE")


async def test_ts_massaging_on_send_and_state(srv: RunningServer) -> None:
    ghost = f"@br_frank:{SERVER_NAME}"
    assert (await _register_ghost(srv, "br_frank", inhibit_login=True)).status_code == 200
    room = (await _as_call(srv, "POST", "/createRoom", {}, user_id=ghost)).json()["room_id"]
    sent = await _as_call(srv, "PUT", f"/rooms/{room}/send/m.room.message/t1",
                          {"msgtype": "m.text", "body": "old"}, user_id=ghost, ts="1234567890123")
    assert sent.status_code == 200, sent.text
    event = await _as_call(srv, "GET", f"/rooms/{room}/event/{sent.json()['event_id']}", user_id=ghost)
    assert event.json()["origin_server_ts"] == 1234567890123
    state = await _as_call(srv, "PUT", f"/rooms/{room}/state/m.room.topic/", {"topic": "t"},
                           user_id=ghost, ts="1000")
    got = await _as_call(srv, "GET", f"/rooms/{room}/state/m.room.topic/", user_id=ghost, format="event")
    assert got.json()["event_id"] == state.json()["event_id"]
    assert got.json()["origin_server_ts"] == 1000
    bad = await _as_call(srv, "PUT", f"/rooms/{room}/send/m.room.message/t2",
                         {"msgtype": "m.text", "body": "x"}, user_id=ghost, ts="-5")
    assert (bad.status_code, bad.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_users_ts_is_ignored(srv: RunningServer) -> None:
    user = await new_user(srv, "tsuser")
    room = await user.create_room()
    resp = await user.call("PUT", f"/rooms/{room}/send/m.room.message/t1?ts=1000", {"msgtype": "m.text", "body": "x"})
    event = await user.call("GET", f"/rooms/{room}/event/{resp.json()['event_id']}")
    assert event.json()["origin_server_ts"] > 1000


async def test_rate_limits_off_only_for_an_as_that_says_so(srv: RunningServer) -> None:
    room = (await _as_call(srv, "POST", "/createRoom", {})).json()["room_id"]
    for i in range(6):  # burst 2, so a limited sender would get 429 on the third
        resp = await _as_call(srv, "PUT", f"/rooms/{room}/send/m.room.message/r{i}", {"msgtype": "m.text", "body": str(i)})
        assert resp.status_code == 200, resp.text
    other_room = (await _as_call(srv, "POST", "/createRoom", {}, name=OTHER)).json()["room_id"]
    codes = [
        (await _as_call(srv, "PUT", f"/rooms/{other_room}/send/m.room.message/r{i}",
                        {"msgtype": "m.text", "body": str(i)}, name=OTHER)).status_code
        for i in range(4)
    ]
    assert 429 in codes


async def test_aliases_in_an_exclusive_namespace(srv: RunningServer) -> None:
    user = await new_user(srv, "aliaser")
    room = await user.create_room()
    mine = await user.call("PUT", f"/directory/room/%23br_x:{SERVER_NAME}", {"room_id": room}, expect=None)
    assert (mine.status_code, mine.json()["errcode"]) == (400, "M_EXCLUSIVE")
    # The AS makes it, in a room it is not in.
    made = await _as_call(srv, "PUT", f"/directory/room/%23br_x:{SERVER_NAME}", {"room_id": room})
    assert made.status_code == 200, made.text
    outside = await _as_call(srv, "PUT", f"/directory/room/%23elsewhere:{SERVER_NAME}", {"room_id": room})
    assert (outside.status_code, outside.json()["errcode"]) == (400, "M_EXCLUSIVE")
    resolved = await srv.client.get(f"{V3}/directory/room/%23br_x:{SERVER_NAME}")
    assert resolved.json()["room_id"] == room


async def test_appservice_room_list_is_separate(srv: RunningServer) -> None:
    user: User = await new_user(srv, "lister")
    room = await user.create_room(preset="public_chat")
    refused = await user.call("PUT", f"/directory/list/appservice/net/{room}", {"visibility": "public"}, expect=None)
    assert refused.status_code == 403
    put = await _as_call(srv, "PUT", f"/directory/list/appservice/net/{room}", {"visibility": "public"})
    assert put.status_code == 200, put.text

    async def listed(body: dict[str, Any]) -> list[str]:
        resp = await user.call("POST", "/publicRooms", body)
        return [c["room_id"] for c in resp.json()["chunk"]]

    assert room not in await listed({})
    assert room in await listed({"third_party_instance_id": f"{AS}|net"})
    assert room not in await listed({"third_party_instance_id": f"{AS}|othernet"})
    assert room in await listed({"include_all_networks": True})
    gone = await _as_call(srv, "DELETE", f"/directory/list/appservice/net/{room}")
    assert gone.status_code == 200
    assert room not in await listed({"third_party_instance_id": f"{AS}|net"})


async def test_as_deactivates_its_user_without_uia(srv: RunningServer) -> None:
    ghost = f"@br_gone:{SERVER_NAME}"
    assert (await _register_ghost(srv, "br_gone", inhibit_login=True)).status_code == 200
    resp = await _as_call(srv, "POST", "/account/deactivate", {}, user_id=ghost)
    assert resp.status_code == 200, resp.text
    after = await _as_call(srv, "GET", "/account/whoami", user_id=ghost)
    assert (after.status_code, after.json()["errcode"]) == (403, "M_FORBIDDEN")
    # A user's own request still needs their password.
    user = await new_user(srv, "keeper")
    asked = await user.call("POST", "/account/deactivate", {}, expect=None)
    assert asked.status_code == 401 and "flows" in asked.json()


async def test_as_sets_its_puppets_profile(srv: RunningServer) -> None:
    ghost = f"@br_henry:{SERVER_NAME}"
    assert (await _register_ghost(srv, "br_henry", inhibit_login=True)).status_code == 200
    url = "http://somewhere/my-pic.jpg"
    resp = await _as_call(srv, "PUT", f"/profile/{ghost}/avatar_url", {"avatar_url": url}, user_id=ghost)
    assert resp.status_code == 200, resp.text
    got = await srv.client.get(f"{V3}/profile/{ghost}/avatar_url", headers=_as(srv))
    assert got.json() == {"avatar_url": url}
    # Users keep the spec's rule; and an AS cannot change users outside its namespace.
    user = await new_user(srv, "avatarer")
    refused = await user.call("PUT", f"/profile/{user.user_id}/avatar_url", {"avatar_url": url}, expect=None)
    assert refused.status_code == 400
    other = await _as_call(srv, "PUT", f"/profile/{user.user_id}/displayname", {"displayname": "x"}, user_id=user.user_id)
    assert other.status_code == 403


async def test_as_manages_its_users_devices(srv: RunningServer) -> None:
    """MSC4190 (spec v1.17): the AS creates a device for its user with PUT /devices/{id},
    acts with it through ?device_id=, and deletes it without UIA."""
    ghost = f"@br_ivy:{SERVER_NAME}"
    assert (await _register_ghost(srv, "br_ivy", inhibit_login=True)).status_code == 200
    made = await _as_call(srv, "PUT", "/devices/IVYPHONE", {"display_name": "Ivy's phone"}, user_id=ghost)
    assert made.status_code == 201, made.text
    again = await _as_call(srv, "PUT", "/devices/IVYPHONE", {"display_name": "renamed"}, user_id=ghost)
    assert again.status_code == 200
    listed = await _as_call(srv, "GET", "/devices", user_id=ghost)
    assert [(d["device_id"], d["display_name"]) for d in listed.json()["devices"]] == [("IVYPHONE", "renamed")]
    whoami = await _as_call(srv, "GET", "/account/whoami", user_id=ghost, device_id="IVYPHONE")
    assert whoami.json()["device_id"] == "IVYPHONE"
    keys = await _as_call(srv, "POST", "/keys/upload", {"one_time_keys": {"signed_curve25519:AAAA": {"key": "k"}}},
                          user_id=ghost, device_id="IVYPHONE")
    assert keys.status_code == 200, keys.text
    deviceless = await _as_call(srv, "POST", "/keys/upload", {}, user_id=ghost)
    assert (deviceless.status_code, deviceless.json()["errcode"]) == (400, "M_UNKNOWN_DEVICE")
    gone = await _as_call(srv, "DELETE", "/devices/IVYPHONE", {}, user_id=ghost)
    assert gone.status_code == 200, gone.text
    assert (await _as_call(srv, "GET", "/devices", user_id=ghost)).json()["devices"] == []
    # A user still cannot create a device this way.
    user = await new_user(srv, "deviceless")
    refused = await user.call("PUT", "/devices/NEWDEV", {"display_name": "x"}, expect=None)
    assert refused.status_code == 404


async def test_an_msc4190_as_cannot_log_its_users_in(srv: RunningServer) -> None:
    body = {"type": "m.login.application_service", "username": "ot_jim"}
    refused = await _as_call(srv, "POST", "/register", body, name=OTHER)
    assert (refused.status_code, refused.json()["errcode"]) == (400, "M_APPSERVICE_LOGIN_UNSUPPORTED")
    made = await _as_call(srv, "POST", "/register", {**body, "inhibit_login": True}, name=OTHER)
    assert made.status_code == 200, made.text
    login = {"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": "ot_jim"}}
    no_login = await _as_call(srv, "POST", "/login", login, name=OTHER)
    assert (no_login.status_code, no_login.json()["errcode"]) == (400, "M_APPSERVICE_LOGIN_UNSUPPORTED")
