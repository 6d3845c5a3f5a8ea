"""POST /register (UIA, modes, guests, username rules), /register/available, registration token
validity, register rate limit, and Synapse-compatible shared-secret registration, over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dendrite_lite.config import RatelimitConfig
from dendrite_lite.users.accounts import get_account
from dendrite_lite.users.registration_tokens import create_token
from dendrite_lite.users.sessions import now_ms
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

SYNAPSE_PYTHON = Path(__file__).resolve().parents[2] / ".venv-synapse" / "bin" / "python"


def check(resp: httpx.Response, path: str = "/register", method: str = "post",
          file: str = "client-server/registration.yaml") -> dict:
    assert_matches_operation(file, path, method, resp.status_code, resp.json())
    return resp.json()


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("register")) as s:
        yield s


@pytest.fixture
def client(srv: RunningServer) -> httpx.AsyncClient:
    return srv.client


async def test_first_request_gets_flows_without_errcode(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{V3}/register", json={})
    assert resp.status_code == 401
    body = check(resp)
    assert set(body) == {"flows", "params", "session"}
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]


async def test_register_with_dummy_then_use_the_session(client: httpx.AsyncClient) -> None:
    body = await register(client, "Erin", device_id="ERINDEV", initial_device_display_name="Erin's laptop")
    assert body["user_id"] == f"@erin:{SERVER_NAME}" and body["device_id"] == "ERINDEV"
    assert body["home_server"] == SERVER_NAME
    assert_matches_operation("client-server/registration.yaml", "/register", "post", 200, body)
    me = await client.get(f"{V3}/account/whoami", headers=auth_header(body["access_token"]))
    assert me.json() == {"user_id": body["user_id"], "device_id": "ERINDEV", "is_guest": False}
    dev = await client.get(f"{V3}/devices/ERINDEV", headers=auth_header(body["access_token"]))
    assert dev.json()["display_name"] == "Erin's laptop"
    assert (await login(client, "erin")).status_code == 200


async def test_session_remembers_first_body(client: httpx.AsyncClient) -> None:
    first = await client.post(f"{V3}/register", json={"username": "frank", "password": PASSWORD})
    session = first.json()["session"]
    resp = await client.post(f"{V3}/register", json={"auth": {"type": "m.login.dummy", "session": session}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["user_id"] == f"@frank:{SERVER_NAME}"
    # The finished session cannot register anyone else: a repeat (a client that lost the
    # answer) gets the same user, logged in again, as Synapse answers.
    again = await client.post(f"{V3}/register", json={
        "username": "frank2", "password": PASSWORD, "auth": {"type": "m.login.dummy", "session": session}})
    assert again.status_code == 200, again.text
    assert again.json()["user_id"] == f"@frank:{SERVER_NAME}"
    assert again.json()["access_token"] != resp.json()["access_token"]
    who = await client.get(f"{V3}/account/whoami", headers={"Authorization": f"Bearer {again.json()['access_token']}"})
    assert who.json()["user_id"] == f"@frank:{SERVER_NAME}"
    avail = await client.get(f"{V3}/register/available", params={"username": "frank2"})
    assert avail.status_code == 200


async def test_wrong_stage_is_refused_with_flows(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{V3}/register", json={
        "username": "gina", "password": PASSWORD, "auth": {"type": "m.login.password", "password": "x"}})
    assert resp.status_code == 401
    body = check(resp)
    assert body["errcode"] == "M_FORBIDDEN" and body["flows"] == [{"stages": ["m.login.dummy"]}]


async def test_dummy_without_prior_session_completes_at_once(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{V3}/register", json={
        "username": "hank", "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    ("username", "errcode"),
    [("bad user", "M_INVALID_USERNAME"), ("ümlaut", "M_INVALID_USERNAME"), ("a" * 300, "M_INVALID_USERNAME"),
     ("a:", "M_INVALID_USERNAME"), (":", "M_INVALID_USERNAME"),
     ("taken", "M_USER_IN_USE"), ("TAKEN", "M_USER_IN_USE")],
)
async def test_username_errors_before_uia(client: httpx.AsyncClient, username: str, errcode: str) -> None:
    if errcode == "M_USER_IN_USE":
        await client.post(f"{V3}/register", json={
            "username": "taken", "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
    resp = await client.post(f"{V3}/register", json={"username": username, "password": PASSWORD})
    assert (resp.status_code, check(resp)["errcode"]) == (400, errcode)
    avail = await client.get(f"{V3}/register/available", params={"username": username})
    assert (avail.status_code, avail.json()["errcode"]) == (400, errcode)
    check(avail, "/register/available", "get")


async def test_available(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"{V3}/register/available", params={"username": "nobody_yet"})
    assert resp.status_code == 200 and check(resp, "/register/available", "get") == {"available": True}
    resp = await client.get(f"{V3}/register/available")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_MISSING_PARAM")


async def test_inhibit_login_and_refresh_token(client: httpx.AsyncClient) -> None:
    body = await register(client, "ivy", inhibit_login=True)
    assert set(body) == {"user_id", "home_server"}
    body = await register(client, "jack", refresh_token=True)
    assert body["refresh_token"] and body["expires_in_ms"] > 0
    assert_matches_operation("client-server/registration.yaml", "/register", "post", 200, body)


async def test_generated_username(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{V3}/register", json={"password": PASSWORD, "auth": {"type": "m.login.dummy"}})
    localpart = resp.json()["user_id"][1:].split(":")[0]
    assert resp.status_code == 200 and localpart.isdigit()


async def test_missing_password(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{V3}/register", json={"username": "kim", "auth": {"type": "m.login.dummy"}})
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_MISSING_PARAM")


async def test_guests_refused_by_default(client: httpx.AsyncClient) -> None:
    resp = await client.post(f"{V3}/register", params={"kind": "guest"}, json={})
    assert (resp.status_code, check(resp)["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")
    resp = await client.post(f"{V3}/register", params={"kind": "robot"}, json={})
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_token_validity_refused_when_not_token_mode(client: httpx.AsyncClient) -> None:
    path = "/_matrix/client/v1/register/m.login.registration_token/validity"
    resp = await client.get(path, params={"token": "x"})
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_closed_registration(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with running_server(tmp_path_factory.mktemp("closed"), {"registration.mode": "closed"}) as s:
        resp = await s.client.post(f"{V3}/register", json={"username": "x", "password": PASSWORD})
        assert (resp.status_code, check(resp)["errcode"]) == (403, "M_FORBIDDEN")
        resp = await s.client.get(f"{V3}/register/available", params={"username": "x"})
        assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")


async def test_guest_registration(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with running_server(tmp_path_factory.mktemp("guests"), {"registration.allow_guests": True}) as s:
        resp = await s.client.post(f"{V3}/register", params={"kind": "guest"}, json={
            "username": "ignored", "device_id": "IGNORED", "initial_device_display_name": "Guest tab"})
        assert resp.status_code == 200, resp.text
        body = check(resp)
        assert body["device_id"] != "IGNORED" and "ignored" not in body["user_id"]
        token = body["access_token"]
        me = await s.client.get(f"{V3}/account/whoami", headers=auth_header(token))
        assert me.json()["is_guest"] is True
        # Guests may list their devices (guest_access.md) but not, say, create rooms.
        devices = await s.client.get(f"{V3}/devices", headers=auth_header(token))
        assert devices.status_code == 200, devices.text
        create = await s.client.post(f"{V3}/createRoom", json={}, headers=auth_header(token))
        assert (create.status_code, create.json()["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


async def test_token_registration(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with running_server(tmp_path_factory.mktemp("tokens"), {"registration.mode": "token"}) as s:
        await create_token(server_storage(s), now=now_ms(), token="invite-1", uses_allowed=1)
        validity = "/_matrix/client/v1/register/m.login.registration_token/validity"
        for token, valid in (("invite-1", True), ("nope", False)):
            resp = await s.client.get(validity, params={"token": token})
            assert resp.status_code == 200 and resp.json() == {"valid": valid}
            assert_matches_operation("client-server/registration_tokens.yaml",
                                     "/register/m.login.registration_token/validity", "get", 200, resp.json())
        first = await s.client.post(f"{V3}/register", json={"username": "liz", "password": PASSWORD})
        body = check(first)
        assert body["flows"] == [{"stages": ["m.login.registration_token", "m.login.dummy"]}]
        stage = {"type": "m.login.registration_token", "session": body["session"]}
        bad = await s.client.post(f"{V3}/register", json={"auth": {**stage, "token": "nope"}})
        assert (bad.status_code, bad.json()["errcode"]) == (401, "M_UNAUTHORIZED")
        assert bad.json()["session"] == body["session"]
        half = await s.client.post(f"{V3}/register", json={"auth": {**stage, "token": "invite-1"}})
        assert half.status_code == 401 and half.json()["completed"] == ["m.login.registration_token"]
        dummy = {"type": "m.login.dummy", "session": body["session"]}
        ok = await s.client.post(f"{V3}/register", json={"auth": dummy})
        assert ok.status_code == 200 and ok.json()["user_id"] == f"@liz:{SERVER_NAME}"
        # One use only.
        resp = await s.client.get(validity, params={"token": "invite-1"})
        assert resp.json() == {"valid": False}
        again = await s.client.post(f"{V3}/register", json={
            "username": "max", "password": PASSWORD,
            "auth": {"type": "m.login.registration_token", "token": "invite-1"}})
        assert (again.status_code, again.json()["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_register_rate_limit(tmp_path_factory: pytest.TempPathFactory) -> None:
    limits = dataclasses.replace(RatelimitConfig(), register_per_second=0.001, register_burst=1)
    async with running_server(tmp_path_factory.mktemp("reg_rl"), {"ratelimit": limits}) as s:
        await register(s.client, "ned")
        first = await s.client.post(f"{V3}/register", json={"username": "olga", "password": PASSWORD})
        resp = await s.client.post(f"{V3}/register", json={
            "auth": {"type": "m.login.dummy", "session": first.json()["session"]}})
        assert (resp.status_code, resp.json()["errcode"]) == (429, "M_LIMIT_EXCEEDED")
        assert "Retry-After" in resp.headers
        check(resp)
        # Another client address has its own bucket.
        other = await s.client.post(f"{V3}/register", headers={"X-Forwarded-For": "198.51.100.7"},
                                    json={"auth": {"type": "m.login.dummy", "session": first.json()["session"]}})
        assert other.status_code == 200, other.text


def _mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    msg = b"\x00".join([nonce.encode(), user.encode(), password.encode(), b"admin" if admin else b"notadmin"])
    return hmac.new(secret.encode(), msg, hashlib.sha1).hexdigest()


async def test_shared_secret_registration(tmp_path_factory: pytest.TempPathFactory) -> None:
    overrides = {"registration.mode": "closed", "registration.shared_secret": "s3cr3t"}
    async with running_server(tmp_path_factory.mktemp("shared"), overrides) as s:
        url = "/_synapse/admin/v1/register"
        nonce = (await s.client.get(url)).json()["nonce"]
        body = {"nonce": nonce, "username": "root", "password": PASSWORD, "admin": True,
                "mac": _mac("s3cr3t", nonce, "root", PASSWORD, True)}
        resp = await s.client.post(url, json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["user_id"] == f"@root:{SERVER_NAME}"
        # The localpart is the display name, as at every registration route (as Synapse).
        name = await s.client.get(f"/_matrix/client/v3/profile/@root:{SERVER_NAME}/displayname")
        assert name.json() == {"displayname": "root"}
        replay = await s.client.post(url, json=body)
        assert replay.status_code == 400
        nonce = (await s.client.get(url)).json()["nonce"]
        forged = await s.client.post(url, json={**body, "nonce": nonce,
                                                "mac": _mac("guess", nonce, "root2", PASSWORD, True)})
        assert (forged.status_code, forged.json()["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.skipif(not SYNAPSE_PYTHON.exists(), reason="needs Synapse's venv")
async def test_synapse_register_new_matrix_user_script(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Interop: Synapse's own admin script creates an admin account on our server."""
    overrides = {"registration.mode": "closed", "registration.shared_secret": "from-config"}
    async with running_server(tmp_path_factory.mktemp("script"), overrides) as s:
        proc = await asyncio.create_subprocess_exec(
            str(SYNAPSE_PYTHON), "-m", "synapse._scripts.register_new_matrix_user",
            "-u", "scripted", "-p", PASSWORD, "--admin", "-k", "from-config", s.listening.client_url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
        assert b"Success" in out, out.decode()
        resp = await login(s.client, "scripted")
        assert resp.status_code == 200
        account = await get_account(server_storage(s), f"@scripted:{SERVER_NAME}")
        assert account is not None and account.is_admin
