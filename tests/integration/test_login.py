"""GET/POST /login, /refresh, /logout, /logout/all and request authentication, over real HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from dendrite_lite.config import RatelimitConfig
from dendrite_lite.users.sessions import open_session
from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import (
    PASSWORD,
    V3,
    auth_header,
    login,
    register,
    running_server,
    server_storage,
)
from tests.spec_schema import assert_matches_operation

ALICE = f"@alice:{SERVER_NAME}"


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("login")) as s:
        await register(s.client, "alice")
        yield s


@pytest.fixture
def client(srv: RunningServer) -> httpx.AsyncClient:
    return srv.client


async def whoami(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(f"{V3}/account/whoami", headers=auth_header(token))


async def test_get_login_flows(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"{V3}/login")
    assert resp.status_code == 200
    assert resp.json() == {"flows": [{"type": "m.login.password"}]}
    assert_matches_operation("client-server/login.yaml", "/login", "get", 200, resp.json())


@pytest.mark.parametrize(
    "who",
    [
        {"identifier": {"type": "m.id.user", "user": "alice"}},
        {"identifier": {"type": "m.id.user", "user": ALICE}},
        {"identifier": {"type": "m.id.user", "user": "ALICE"}},
        {"user": "alice"},
        {"user": ALICE},
    ],
)
async def test_login_identifier_forms(client: httpx.AsyncClient, who: dict) -> None:
    resp = await client.post(f"{V3}/login", json={"type": "m.login.password", "password": PASSWORD, **who})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user_id"] == ALICE and body["home_server"] == SERVER_NAME
    assert body["well_known"] == {"m.homeserver": {"base_url": f"https://{SERVER_NAME}"}}
    assert "refresh_token" not in body and "expires_in_ms" not in body
    assert_matches_operation("client-server/login.yaml", "/login", "post", 200, body)
    me = await whoami(client, body["access_token"])
    assert me.json() == {"user_id": ALICE, "device_id": body["device_id"], "is_guest": False}


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        ({"type": "m.login.password", "user": "alice", "password": "wrong"}, 403, "M_FORBIDDEN"),
        ({"type": "m.login.password", "user": "nobody", "password": PASSWORD}, 403, "M_FORBIDDEN"),
        ({"type": "m.login.password", "user": "@alice:elsewhere.example", "password": PASSWORD}, 403, "M_FORBIDDEN"),
        ({"type": "m.login.password", "identifier": {"type": "m.id.thirdparty", "medium": "email",
          "address": "alice@example.org"}, "password": PASSWORD}, 403, "M_FORBIDDEN"),
        ({"type": "m.login.password", "medium": "email", "address": "alice@example.org",
          "password": PASSWORD}, 403, "M_FORBIDDEN"),
        ({"type": "m.login.password", "identifier": {"type": "m.id.thirdparty"},
          "password": PASSWORD}, 400, "M_MISSING_PARAM"),
        ({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}}, 400, "M_MISSING_PARAM"),
        ({"type": "m.login.password", "password": PASSWORD}, 400, "M_MISSING_PARAM"),
        ({"type": "m.login.token", "token": "x"}, 400, "M_UNKNOWN"),
        ({"user": "alice", "password": PASSWORD}, 400, "M_UNKNOWN"),
        ({"type": "m.login.password", "user": "alice", "password": PASSWORD,
          "refresh_token": "yes"}, 400, "M_INVALID_PARAM"),
    ],
)
async def test_login_errors(client: httpx.AsyncClient, body: dict, status: int, errcode: str) -> None:
    resp = await client.post(f"{V3}/login", json=body)
    assert (resp.status_code, resp.json()["errcode"]) == (status, errcode), resp.text
    if status in (400, 403):
        assert_matches_operation("client-server/login.yaml", "/login", "post", status, resp.json())


async def test_login_not_json(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{V3}/login", content=b"not json")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_NOT_JSON")


async def test_device_id_reuse_revokes_old_token_keeps_name(client: httpx.AsyncClient) -> None:
    first = await login(client, "alice", device_id="REUSED", initial_device_display_name="Phone")
    second = await login(client, "alice", device_id="REUSED", initial_device_display_name="Other")
    assert first.json()["device_id"] == second.json()["device_id"] == "REUSED"
    old = await whoami(client, first.json()["access_token"])
    assert (old.status_code, old.json()["errcode"], old.json()["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
    token = second.json()["access_token"]
    assert (await whoami(client, token)).json()["device_id"] == "REUSED"
    device = await client.get(f"{V3}/devices/REUSED", headers=auth_header(token))
    assert device.json()["display_name"] == "Phone"


async def test_missing_and_bad_tokens(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"{V3}/account/whoami")
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    # The query parameter is no longer supported (spec v1.20): it counts as no token at all.
    good = (await login(client, "alice")).json()["access_token"]
    resp = await client.get(f"{V3}/account/whoami", params={"access_token": good})
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    resp = await client.get(f"{V3}/account/whoami", headers={"Authorization": f"Basic {good}"})
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    resp = await whoami(client, "dla_not_a_token")
    assert resp.status_code == 401
    assert resp.json() == {"errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token",
                           "soft_logout": False}
    assert_matches_operation("client-server/whoami.yaml", "/account/whoami", "get", 401, resp.json())
    # The scheme is case-insensitive.
    resp = await client.get(f"{V3}/account/whoami", headers={"Authorization": f"bearer {good}"})
    assert resp.status_code == 200
    assert_matches_operation("client-server/whoami.yaml", "/account/whoami", "get", 200, resp.json())


async def test_refresh_flow(client: httpx.AsyncClient) -> None:
    resp = await login(client, "alice", refresh_token=True)
    body = resp.json()
    assert body["expires_in_ms"] == 5 * 60 * 1000 and body["refresh_token"].startswith("dlr_")
    assert_matches_operation("client-server/login.yaml", "/login", "post", 200, body)
    refreshed = await client.post(f"{V3}/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert set(new) == {"access_token", "refresh_token", "expires_in_ms"}
    assert_matches_operation("client-server/refresh.yaml", "/refresh", "post", 200, new)
    # Until the new token is used, both the old access and refresh tokens still work.
    assert (await whoami(client, body["access_token"])).status_code == 200
    me = await whoami(client, new["access_token"])
    assert me.json()["device_id"] == body["device_id"]
    # First use of the new access token revoked the old pair.
    assert (await whoami(client, body["access_token"])).status_code == 401
    again = await client.post(f"{V3}/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 401
    assert again.json()["errcode"] == "M_UNKNOWN_TOKEN" and again.json()["soft_logout"] is False
    assert_matches_operation("client-server/refresh.yaml", "/refresh", "post", 401, again.json())
    missing = await client.post(f"{V3}/refresh", json={})
    assert (missing.status_code, missing.json()["errcode"]) == (400, "M_MISSING_PARAM")


async def test_logout_deletes_the_device(client: httpx.AsyncClient) -> None:
    keep = (await login(client, "alice")).json()
    gone = (await login(client, "alice")).json()
    resp = await client.post(f"{V3}/logout", headers=auth_header(gone["access_token"]))
    assert (resp.status_code, resp.json()) == (200, {})
    assert (await whoami(client, gone["access_token"])).status_code == 401
    devices = await client.get(f"{V3}/devices", headers=auth_header(keep["access_token"]))
    ids = {d["device_id"] for d in devices.json()["devices"]}
    assert keep["device_id"] in ids and gone["device_id"] not in ids
    resp = await client.post(f"{V3}/logout")
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_logout_all(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with running_server(tmp_path_factory.mktemp("logout_all")) as s:
        first = await register(s.client, "bob")
        second = (await login(s.client, "bob")).json()
        resp = await s.client.post(f"{V3}/logout/all", headers=auth_header(second["access_token"]))
        assert (resp.status_code, resp.json()) == (200, {})
        for session in (first, second):
            assert (await whoami(s.client, session["access_token"])).status_code == 401
        third = (await login(s.client, "bob")).json()
        devices = await s.client.get(f"{V3}/devices", headers=auth_header(third["access_token"]))
        assert [d["device_id"] for d in devices.json()["devices"]] == [third["device_id"]]


async def test_login_rate_limits(tmp_path_factory: pytest.TempPathFactory) -> None:
    limits = dataclasses.replace(RatelimitConfig(), login_per_second=0.001, login_burst=2)
    async with running_server(tmp_path_factory.mktemp("rl"), {"ratelimit": limits}) as s:
        await register(s.client, "carol")
        await register(s.client, "dave")
        # Per IP (the proxy's X-Forwarded-For, since the connection comes from loopback).
        ip1 = {"X-Forwarded-For": "192.0.2.1"}
        for user in ("carol", "dave"):
            ok = await s.client.post(f"{V3}/login", headers=ip1, json={
                "type": "m.login.password", "user": user, "password": PASSWORD})
            assert ok.status_code == 200
        limited = await s.client.post(f"{V3}/login", headers=ip1, json={
            "type": "m.login.password", "user": "dave", "password": PASSWORD})
        assert (limited.status_code, limited.json()["errcode"]) == (429, "M_LIMIT_EXCEEDED")
        assert limited.json()["retry_after_ms"] > 0
        assert int(limited.headers["Retry-After"]) == -(-limited.json()["retry_after_ms"] // 1000)
        assert_matches_operation("client-server/login.yaml", "/login", "post", 429, limited.json())
        # Per account: carol from fresh addresses, wrong password then right one.
        for n, pw in enumerate(["wrong", PASSWORD]):
            resp = await s.client.post(f"{V3}/login", headers={"X-Forwarded-For": f"192.0.2.{10 + n}"},
                                       json={"type": "m.login.password", "user": "carol", "password": pw})
            assert resp.status_code == (403 if pw == "wrong" else 429), resp.text


async def test_expired_access_token_is_soft_logout(srv: RunningServer, client: httpx.AsyncClient) -> None:
    session = await open_session(server_storage(srv), ALICE, with_refresh=True, lifetime_ms=1)
    resp = await whoami(client, session.access_token)
    assert resp.status_code == 401
    assert resp.json() == {"errcode": "M_UNKNOWN_TOKEN", "error": "Access token has expired",
                           "soft_logout": True}
    # The refresh token still gets the client a working token on the same device.
    assert session.refresh_token is not None
    new = await client.post(f"{V3}/refresh", json={"refresh_token": session.refresh_token})
    assert new.status_code == 200
    me = await whoami(client, new.json()["access_token"])
    assert me.json()["device_id"] == session.device_id
