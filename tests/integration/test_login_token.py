"""POST /login/get_token and m.login.token (login_token.yaml): off by default (config
login.get_token); when on, a password re-prompt each time, a token that logs in once."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import StartServer
from tests.integration.account_helpers import PASSWORD, V3, auth_header, fast_hashing_for_tests
from tests.integration.sync_helpers import User, new_user
from tests.spec_schema import assert_matches_operation

GET_TOKEN = "/_matrix/client/v1/login/get_token"
OPEN = {"registration.mode": "open", "ratelimit.enabled": False}


async def _get_token(user: User, body: dict[str, Any]) -> httpx.Response:
    return await user.client.post(GET_TOKEN, json=body, headers=user.headers)


async def _token_login(client: httpx.AsyncClient, token: Any, **extra: Any) -> httpx.Response:
    return await client.post(f"{V3}/login", json={"type": "m.login.token", "token": token, **extra})


async def _capability(user: User) -> Any:
    resp = await user.get("/capabilities")
    return resp.json()["capabilities"]["m.get_login_token"]


async def test_off_by_default(start_server: StartServer) -> None:
    with fast_hashing_for_tests():
        srv = await start_server(OPEN)
        alice = await new_user(srv.client, "alice")
    flows = (await srv.client.get(f"{V3}/login")).json()["flows"]
    assert flows == [{"type": "m.login.password"}]
    assert await _capability(alice) == {"enabled": False}
    resp = await _get_token(alice, {})
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"
    resp = await _token_login(srv.client, "anything")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN"


async def test_token_logs_in_once_after_password(start_server: StartServer) -> None:
    with fast_hashing_for_tests():
        srv = await start_server({**OPEN, "login.get_token": True})
        alice = await new_user(srv.client, "alice")
    flows = (await srv.client.get(f"{V3}/login")).json()["flows"]
    assert flows == [{"type": "m.login.password"},
                     {"type": "m.login.token", "get_login_token": True}]
    assert await _capability(alice) == {"enabled": True}

    first = await _get_token(alice, {})
    assert first.status_code == 401, first.text
    session = first.json()["session"]
    assert first.json()["flows"] == [{"stages": ["m.login.password"]}]
    wrong = {"type": "m.login.password", "session": session, "password": "wrong",
             "identifier": {"type": "m.id.user", "user": alice.user_id}}
    resp = await _get_token(alice, {"auth": wrong})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_FORBIDDEN"
    with fast_hashing_for_tests():
        resp = await _get_token(alice, {"auth": {**wrong, "password": PASSWORD}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert_matches_operation("client-server/login_token.yaml", "/login/get_token", "post", 200, body)
    assert sorted(body) == ["expires_in_ms", "login_token"] and body["expires_in_ms"] == 120_000

    # A new device signs in as alice, once.
    resp = await _token_login(srv.client, body["login_token"], initial_device_display_name="TV")
    assert resp.status_code == 200, resp.text
    login = resp.json()
    assert login["user_id"] == alice.user_id and login["device_id"] != alice.device_id
    whoami = await srv.client.get(f"{V3}/account/whoami", headers=auth_header(login["access_token"]))
    assert whoami.json()["device_id"] == login["device_id"]
    resp = await _token_login(srv.client, body["login_token"])
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"

    # The finished session authorises nothing more: the next token needs the password again.
    resp = await _get_token(alice, {"auth": {**wrong, "password": PASSWORD}})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN"
    resp = await _get_token(alice, {})
    assert resp.status_code == 401 and resp.json()["session"] != session


async def test_token_login_errors(start_server: StartServer) -> None:
    srv = await start_server({**OPEN, "login.get_token": True})
    for token, status, errcode in (("nope", 403, "M_FORBIDDEN"), (None, 400, "M_MISSING_PARAM"),
                                   (5, 400, "M_MISSING_PARAM")):
        resp = await _token_login(srv.client, token)
        assert resp.status_code == status and resp.json()["errcode"] == errcode, token
    resp = await srv.client.post(GET_TOKEN, json={})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"
