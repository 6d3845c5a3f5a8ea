"""whoami, POST /account/password and POST /account/deactivate (UIA), over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import (
    PASSWORD,
    V3,
    auth_header,
    login,
    register,
    running_server,
    uia_password,
)
from tests.spec_schema import assert_matches_operation


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("account")) as s:
        yield s


@pytest.fixture
def client(srv: RunningServer) -> httpx.AsyncClient:
    return srv.client


async def status(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get(f"{V3}/account/whoami", headers=auth_header(token))).status_code


async def test_change_password_logs_out_other_devices(client: httpx.AsyncClient) -> None:
    me = await register(client, "pat")
    other = (await login(client, "pat")).json()
    path = f"{V3}/account/password"
    first = await client.post(path, json={"new_password": "new pw"}, headers=auth_header(me["access_token"]))
    assert first.status_code == 401
    assert_matches_operation("client-server/password_management.yaml", "/account/password", "post", 401, first.json())
    resp = await uia_password(client, "POST", path, me["access_token"], "pat", {"new_password": "new pw"})
    assert (resp.status_code, resp.json()) == (200, {})
    assert await status(client, me["access_token"]) == 200
    assert await status(client, other["access_token"]) == 401
    assert (await login(client, "pat")).status_code == 403
    assert (await login(client, "pat", "new pw")).status_code == 200


async def test_change_password_keeping_devices(client: httpx.AsyncClient) -> None:
    me = await register(client, "quinn")
    other = (await login(client, "quinn")).json()
    resp = await uia_password(client, "POST", f"{V3}/account/password", me["access_token"], "quinn",
                              {"new_password": "pw2", "logout_devices": False})
    assert resp.status_code == 200
    assert await status(client, other["access_token"]) == 200


async def test_change_password_wrong_password_and_no_token(client: httpx.AsyncClient) -> None:
    me = await register(client, "ruth")
    resp = await uia_password(client, "POST", f"{V3}/account/password", me["access_token"], "ruth",
                              {"new_password": "x"}, password="wrong")
    assert resp.status_code == 401
    body = resp.json()
    assert body["errcode"] == "M_FORBIDDEN" and body["flows"] == [{"stages": ["m.login.password"]}]
    assert_matches_operation("client-server/password_management.yaml", "/account/password", "post", 401, body)
    assert (await login(client, "ruth")).status_code == 200  # unchanged
    resp = await client.post(f"{V3}/account/password", json={"new_password": "x"})
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_uia_as_another_user_is_forbidden(client: httpx.AsyncClient) -> None:
    await register(client, "sam")
    me = await register(client, "tom")
    resp = await uia_password(client, "POST", f"{V3}/account/password", me["access_token"], "sam",
                              {"new_password": "x"})
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_session_of_one_operation_cannot_authorise_another(client: httpx.AsyncClient) -> None:
    me = await register(client, "uma")
    token = me["access_token"]
    first = await client.post(f"{V3}/account/deactivate", json={}, headers=auth_header(token))
    auth = {"type": "m.login.password", "session": first.json()["session"],
            "identifier": {"type": "m.id.user", "user": "uma"}, "password": PASSWORD}
    resp = await client.post(f"{V3}/account/password", json={"new_password": "x", "auth": auth},
                             headers=auth_header(token))
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
    assert await status(client, token) == 200


async def test_deactivate(client: httpx.AsyncClient) -> None:
    me = await register(client, "vic")
    other = (await login(client, "vic")).json()
    resp = await uia_password(client, "POST", f"{V3}/account/deactivate", me["access_token"], "vic")
    assert (resp.status_code, resp.json()) == (200, {"id_server_unbind_result": "success"})
    assert_matches_operation("client-server/account_deactivation.yaml", "/account/deactivate", "post", 200, resp.json())
    for token in (me["access_token"], other["access_token"]):
        assert await status(client, token) == 401
    resp = await login(client, "vic")
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_USER_DEACTIVATED")
    assert (await login(client, "vic", "wrong")).json()["errcode"] == "M_FORBIDDEN"
    # The user id is never handed out again.
    again = await client.post(f"{V3}/register", json={"username": "vic", "password": PASSWORD})
    assert (again.status_code, again.json()["errcode"]) == (400, "M_USER_IN_USE")


async def test_whoami_schema(client: httpx.AsyncClient) -> None:
    me = await register(client, "wes")
    resp = await client.get(f"{V3}/account/whoami", headers=auth_header(me["access_token"]))
    body = resp.json()
    assert body == {"user_id": f"@wes:{SERVER_NAME}", "device_id": me["device_id"], "is_guest": False}
    assert_matches_operation("client-server/whoami.yaml", "/account/whoami", "get", 200, body)
