"""m.login.recaptcha at open registration (client-server-api §Google ReCaptcha, §Fallback).

Answers are checked with the siteverify API, here a fake on loopback standing in for Google: it
accepts the response "solved" and refuses anything else, as Google does for an unsolved or
reused captcha. Registration by an application service, by shared secret or with a registration
token never asks for a captcha.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from dendrite_lite.users.registration import shared_secret_mac
from tests.conftest import SERVER_NAME, RunningServer
from tests.integration.account_helpers import PASSWORD, V3, auth_header, running_server
from tests.integration.appservice_fake import write_registration
from tests.spec_schema import assert_matches_operation

SITE_KEY = "site-key-<&>"  # markup characters: the fallback page must escape them
SECRET_KEY = "secret-key"
SOLVED = "solved"
SHARED_SECRET = "admin-shared-secret"
RECAPTCHA = "m.login.recaptcha"
FALLBACK = f"{V3}/auth/{RECAPTCHA}/fallback/web"


class FakeSiteverify:
    """Google's siteverify API: records each form it is sent."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.fail_next = 0  # answer this many requests with a 500 first
        self.url = ""

    async def _verify(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.forms.append({k: str(v) for k, v in form.items()})
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="oops")
        if form.get("secret") != SECRET_KEY:
            return web.json_response({"success": False, "error-codes": ["invalid-input-secret"]})
        if form.get("response") != SOLVED:
            return web.json_response({"success": False, "error-codes": ["invalid-input-response"]})
        return web.json_response({"success": True, "hostname": "client.example"})


@asynccontextmanager
async def fake_siteverify() -> AsyncIterator[FakeSiteverify]:
    fake = FakeSiteverify()
    app = web.Application()
    app.router.add_post("/recaptcha/api/siteverify", fake._verify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/recaptcha/api/siteverify"
    try:
        yield fake
    finally:
        await runner.cleanup()


def _captcha_config(url: str, **more: Any) -> dict[str, Any]:
    return {
        "registration.recaptcha_public_key": SITE_KEY,
        "registration.recaptcha_private_key": SECRET_KEY,
        "registration.recaptcha_siteverify_api": url,
        **more,
    }


@pytest.fixture(scope="module")
async def srv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    reg = write_registration(
        tmp_path_factory.mktemp("regs"), "bridge",
        namespaces={"users": [{"regex": rf"@br_.*:{SERVER_NAME}", "exclusive": True}]},
    )
    async with fake_siteverify() as fake:
        overrides = _captcha_config(
            fake.url, **{"registration.shared_secret": SHARED_SECRET,
                         "appservices.registration_files": (reg,)}
        )
        async with running_server(tmp_path_factory.mktemp("captcha"), overrides) as server:
            server.siteverify = fake  # type: ignore[attr-defined]
            server.as_token = yaml.safe_load(reg.read_text())["as_token"]  # type: ignore[attr-defined]
            yield server


def _fake(srv: RunningServer) -> FakeSiteverify:
    return srv.siteverify  # type: ignore[attr-defined,no-any-return]


async def _start(client: httpx.AsyncClient, username: str) -> str:
    first = await client.post(f"{V3}/register", json={"username": username, "password": PASSWORD})
    assert first.status_code == 401, first.text
    return str(first.json()["session"])


async def _stage(client: httpx.AsyncClient, session: str, **auth: Any) -> httpx.Response:
    return await client.post(f"{V3}/register", json={"auth": {"session": session, **auth}})


async def test_flows_require_the_captcha_and_params_carry_the_site_key(srv: RunningServer) -> None:
    resp = await srv.client.post(f"{V3}/register", json={"username": "flows", "password": PASSWORD})
    assert resp.status_code == 401
    body = resp.json()
    assert_matches_operation("client-server/registration.yaml", "/register", "post", 401, body)
    assert body["flows"] == [{"stages": [RECAPTCHA, "m.login.dummy"]}]
    assert body["params"] == {RECAPTCHA: {"public_key": SITE_KEY}}


async def test_solved_captcha_then_dummy_registers(srv: RunningServer) -> None:
    session = await _start(srv.client, "solver")
    before = len(_fake(srv).forms)
    captcha = await _stage(srv.client, session, type=RECAPTCHA, response=SOLVED)
    assert captcha.status_code == 401, captcha.text
    assert captcha.json()["completed"] == [RECAPTCHA]
    assert "errcode" not in captcha.json()
    # What Google is sent: our secret key, the user's answer and the user's address.
    assert _fake(srv).forms[before:] == [
        {"secret": SECRET_KEY, "response": SOLVED, "remoteip": "127.0.0.1"}
    ]
    done = await _stage(srv.client, session, type="m.login.dummy")
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == f"@solver:{SERVER_NAME}"


async def test_dummy_alone_does_not_register(srv: RunningServer) -> None:
    session = await _start(srv.client, "skipper")
    resp = await _stage(srv.client, session, type="m.login.dummy")
    assert resp.status_code == 401
    assert resp.json()["errcode"] == "M_FORBIDDEN" and resp.json()["completed"] == []
    available = await srv.client.get(f"{V3}/register/available", params={"username": "skipper"})
    assert available.status_code == 200  # nobody registered


async def test_wrong_answer_is_401_and_the_stage_stays_open(srv: RunningServer) -> None:
    session = await _start(srv.client, "robot")
    wrong = await _stage(srv.client, session, type=RECAPTCHA, response="guessed")
    assert wrong.status_code == 401
    body = wrong.json()
    assert (body["errcode"], body["completed"], body["session"]) == ("M_UNAUTHORIZED", [], session)
    assert body["flows"] == [{"stages": [RECAPTCHA, "m.login.dummy"]}]
    missing = await _stage(srv.client, session, type=RECAPTCHA)
    assert (missing.status_code, missing.json()["errcode"]) == (401, "M_CAPTCHA_NEEDED")
    # The same session may try again.
    right = await _stage(srv.client, session, type=RECAPTCHA, response=SOLVED)
    assert right.status_code == 401 and right.json()["completed"] == [RECAPTCHA]


async def test_siteverify_failing_is_a_502_and_the_session_survives(srv: RunningServer) -> None:
    session = await _start(srv.client, "unlucky")
    _fake(srv).fail_next = 1
    resp = await _stage(srv.client, session, type=RECAPTCHA, response=SOLVED)
    assert resp.status_code == 502
    assert resp.json() == {
        "errcode": "M_UNKNOWN", "error": "The captcha service could not be reached; try again later"
    }
    again = await _stage(srv.client, session, type=RECAPTCHA, response=SOLVED)
    assert again.status_code == 401 and again.json()["completed"] == [RECAPTCHA]


async def test_siteverify_unreachable_is_a_502(tmp_path_factory: pytest.TempPathFactory) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/recaptcha/api/siteverify"
    async with running_server(tmp_path_factory.mktemp("down"), _captcha_config(url)) as s:
        session = await _start(s.client, "nobody")
        resp = await _stage(s.client, session, type=RECAPTCHA, response=SOLVED)
        assert resp.status_code == 502
        assert resp.json()["errcode"] == "M_UNKNOWN"


async def test_fallback_page_completes_the_stage(srv: RunningServer) -> None:
    session = await _start(srv.client, "browser")
    page = await srv.client.get(FALLBACK, params={"session": session})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'data-sitekey="site-key-&lt;&amp;&gt;"' in page.text
    assert f'name="session" value="{session}"' in page.text
    assert "https://www.recaptcha.net/recaptcha/api.js" in page.text
    # The form posts what the widget fills in, g-recaptcha-response.
    refused = await srv.client.post(
        FALLBACK, params={"session": session}, data={"g-recaptcha-response": "guessed"}
    )
    assert refused.status_code == 200 and "Captcha authentication failed" in refused.text
    assert "authDone" not in refused.text
    still = await _stage(srv.client, session)
    assert still.status_code == 401 and still.json().get("completed", []) == []
    solved = await srv.client.post(
        FALLBACK, data={"session": session, "g-recaptcha-response": SOLVED}
    )
    assert solved.status_code == 200
    assert 'window.opener.postMessage("authDone", "*")' in solved.text
    assert "window.onAuthDone()" in solved.text
    # The client resubmits with just the session id (client-server-api §Fallback).
    after = await _stage(srv.client, session)
    assert after.status_code == 401 and after.json()["completed"] == [RECAPTCHA]
    done = await _stage(srv.client, session, type="m.login.dummy")
    assert done.status_code == 200 and done.json()["user_id"] == f"@browser:{SERVER_NAME}"


async def test_fallback_errors(srv: RunningServer) -> None:
    no_session = await srv.client.get(FALLBACK)
    assert (no_session.status_code, no_session.json()["errcode"]) == (400, "M_MISSING_PARAM")
    unknown = await srv.client.get(FALLBACK, params={"session": "nope"})
    assert (unknown.status_code, unknown.json()["errcode"]) == (400, "M_UNKNOWN")
    posted = await srv.client.post(FALLBACK, data={"session": "nope", "g-recaptcha-response": SOLVED})
    assert (posted.status_code, posted.json()["errcode"]) == (400, "M_UNKNOWN")
    other = await srv.client.get(f"{V3}/auth/m.login.dummy/fallback/web", params={"session": "x"})
    assert (other.status_code, other.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_appservice_and_shared_secret_registration_ask_no_captcha(srv: RunningServer) -> None:
    before = len(_fake(srv).forms)
    as_reg = await srv.client.post(
        f"{V3}/register", json={"type": "m.login.application_service", "username": "br_puppet"},
        headers=auth_header(srv.as_token),  # type: ignore[attr-defined]
    )
    assert as_reg.status_code == 200, as_reg.text
    assert as_reg.json()["user_id"] == f"@br_puppet:{SERVER_NAME}"
    nonce = (await srv.client.get("/_synapse/admin/v1/register")).json()["nonce"]
    mac = shared_secret_mac(SHARED_SECRET, nonce, "operator", PASSWORD, False, None)
    admin_reg = await srv.client.post(
        "/_synapse/admin/v1/register",
        json={"nonce": nonce, "username": "operator", "password": PASSWORD, "mac": mac},
    )
    assert admin_reg.status_code == 200, admin_reg.text
    assert len(_fake(srv).forms) == before  # Google was never asked


async def test_token_mode_asks_no_captcha(tmp_path_factory: pytest.TempPathFactory) -> None:
    overrides = _captcha_config("http://127.0.0.1:9/unused", **{"registration.mode": "token"})
    async with running_server(tmp_path_factory.mktemp("token"), overrides) as s:
        resp = await s.client.post(f"{V3}/register", json={"username": "inv", "password": PASSWORD})
        assert resp.status_code == 401
        assert resp.json()["flows"] == [{"stages": ["m.login.registration_token", "m.login.dummy"]}]
        assert resp.json()["params"] == {}
        page = await s.client.get(FALLBACK, params={"session": resp.json()["session"]})
        assert (page.status_code, page.json()["errcode"]) == (404, "M_NOT_FOUND")


async def test_optional_captcha_offers_both_flows(tmp_path_factory: pytest.TempPathFactory) -> None:
    """recaptcha_required = false (how SyTest runs): the plain flow still works, and the
    captcha stage, when a client does it, is checked and listed."""
    async with fake_siteverify() as fake:
        overrides = _captcha_config(fake.url, **{"registration.recaptcha_required": False})
        async with running_server(tmp_path_factory.mktemp("optional"), overrides) as s:
            first = await s.client.post(f"{V3}/register", json={"username": "p", "password": PASSWORD})
            assert first.json()["flows"] == [
                {"stages": ["m.login.dummy"]}, {"stages": [RECAPTCHA, "m.login.dummy"]}
            ]
            plain = await _stage(s.client, first.json()["session"], type="m.login.dummy")
            assert plain.status_code == 200, plain.text
            # SyTest's "Register with a recaptcha": the stage first, in the very first request.
            resp = await s.client.post(f"{V3}/register", json={
                "username": "q", "password": PASSWORD,
                "auth": {"type": RECAPTCHA, "response": SOLVED},
            })
            assert resp.status_code == 401 and resp.json()["completed"] == [RECAPTCHA]
            assert fake.forms[-1]["response"] == SOLVED
