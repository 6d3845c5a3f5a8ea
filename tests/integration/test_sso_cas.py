"""Single sign-on with CAS ([cas]; client-server-api §SSO client login/authentication): the
login flows, the redirect to the CAS server, a whole sign-in (ticket -> login token ->
m.login.token -> a working access token), the refusals (attributes, bad or reused tickets, a
CAS server that misbehaves) and the m.login.sso stage of user-interactive authentication,
against a real server and a small CAS server on loopback (cas_fake.py)."""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx
import pytest

from tests.conftest import SERVER_NAME, RunningServer, StartServer
from tests.integration.account_helpers import (
    PASSWORD,
    V3,
    auth_header,
    fast_hashing_for_tests,
)
from tests.integration.cas_fake import FakeCas, cas_server, success
from tests.integration.sso_helpers import (
    continue_link,
    delete_device,
    local_path,
    token_login,
    token_of,
)
from tests.integration.sync_helpers import new_user
from tests.spec_schema import assert_matches_operation

__all__ = ["cas_server"]  # the session fixture, used here

REDIRECT = "https://client.example/app?p=http%3A%2F%2Fserver"
TICKET_URL = f"https://{SERVER_NAME}/_matrix/client/r0/login/cas/ticket"
OPEN = {"registration.mode": "open", "ratelimit.enabled": False}


@pytest.fixture
async def cas(cas_server: FakeCas) -> FakeCas:
    cas_server.reset()
    return cas_server


async def _server(start_server: StartServer, cas: FakeCas, **cas_keys: Any) -> RunningServer:
    overrides = {**OPEN, "cas.server_url": cas.url}
    overrides.update({f"cas.{k}": v for k, v in cas_keys.items()})
    return await start_server(overrides)


async def _at_cas(location: str, user: str) -> str:
    """The browser at the CAS server's sign-in page: `user` signs in; where CAS sends it back."""
    async with httpx.AsyncClient() as browser:
        resp = await browser.get(location + "&user=" + urllib.parse.quote(user))
    assert resp.status_code == 302, resp.text
    return resp.headers["location"]


async def _ticket_page(srv: RunningServer, cas: FakeCas, user: str, redirect: str = REDIRECT,
                       start: str = "/login/sso/redirect") -> httpx.Response:
    """The browser's round trip from the client's redirect to our ticket page."""
    resp = await srv.client.get(f"{V3}{start}", params={"redirectUrl": redirect})
    assert resp.status_code == 302, resp.text
    back = await _at_cas(resp.headers["location"], user)
    return await srv.client.get(local_path(back))


async def _sso_login(srv: RunningServer, cas: FakeCas, user: str, **extra: Any) -> dict[str, Any]:
    link = continue_link(await _ticket_page(srv, cas, user))
    resp = await token_login(srv.client, token_of(link), **extra)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- login flows and redirects -------------------------------------------------------------


async def test_flows_and_redirect_locations(start_server: StartServer, cas: FakeCas) -> None:
    srv = await _server(start_server, cas, display_name="Example SSO")
    body = (await srv.client.get(f"{V3}/login")).json()
    assert body["flows"] == [
        {"type": "m.login.password"},
        {"type": "m.login.sso", "identity_providers": [{"id": "cas", "name": "Example SSO"}]},
        {"type": "m.login.cas"},
        {"type": "m.login.token"},
    ]
    assert_matches_operation("client-server/login.yaml", "/login", "get", 200, body)

    service = TICKET_URL + "?redirectUrl=" + urllib.parse.quote(REDIRECT, safe="")
    want = cas.url + "/login?service=" + urllib.parse.quote(service, safe="")
    for path in ("/_matrix/client/v3/login/sso/redirect", "/_matrix/client/r0/login/sso/redirect",
                 "/_matrix/client/v3/login/sso/redirect/cas",
                 "/_matrix/client/v3/login/cas/redirect", "/_matrix/client/r0/login/cas/redirect"):
        resp = await srv.client.get(path, params={"redirectUrl": REDIRECT})
        assert resp.status_code == 302, (path, resp.text)
        assert resp.headers["location"] == want, path

    async def refused(path: str, params: dict[str, str], status: int, errcode: str) -> None:
        resp = await srv.client.get(f"{V3}{path}", params=params)
        assert (resp.status_code, resp.json()["errcode"]) == (status, errcode), resp.text

    await refused("/login/sso/redirect/saml", {"redirectUrl": REDIRECT}, 404, "M_NOT_FOUND")
    await refused("/login/sso/redirect", {}, 400, "M_MISSING_PARAM")
    for bad in ("javascript:alert(1)", "data:text/html,x", "/relative", "https:///nohost",
                "https://a.example/\n"):
        await refused("/login/sso/redirect", {"redirectUrl": bad}, 400, "M_INVALID_PARAM")
    # A mobile app's own scheme is where its token must go.
    resp = await srv.client.get(f"{V3}/login/sso/redirect", params={"redirectUrl": "element://connect"})
    assert resp.status_code == 302


async def test_off_without_a_cas_server(client: httpx.AsyncClient) -> None:
    flows = (await client.get(f"{V3}/login")).json()["flows"]
    assert {f["type"] for f in flows}.isdisjoint({"m.login.sso", "m.login.cas"})
    for path in ("/login/sso/redirect", "/login/cas/redirect", "/login/cas/ticket"):
        resp = await client.get(f"{V3}{path}", params={"redirectUrl": REDIRECT, "ticket": "x"})
        assert (resp.status_code, resp.json()["errcode"]) == (404, "M_UNRECOGNIZED")
    resp = await client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": "x"})
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")


# -- signing in ------------------------------------------------------------------------------


async def test_new_user_signs_in_and_again_as_the_same_user(
    start_server: StartServer, cas: FakeCas
) -> None:
    srv = await _server(start_server, cas)
    cas.attributes["Cas_User!"] = {"displayName": ["Cas User"], "mail": ["c@example.org"]}
    page = await _ticket_page(srv, cas, "Cas_User!")
    user_id = f"@cas_user=21:{SERVER_NAME}"
    assert user_id in page.text and "client.example" in page.text
    link = continue_link(page)
    assert link.startswith("https://client.example/app?p=http%3A%2F%2Fserver&loginToken=")
    # What the CAS server was asked: the ticket, for the service it was issued to.
    assert cas.validations[0]["service"] == (
        TICKET_URL + "?redirectUrl=" + urllib.parse.quote(REDIRECT, safe="")
    )

    token = token_of(link)
    resp = await token_login(srv.client, token, device_id="PHONE", initial_device_display_name="Phone")
    assert resp.status_code == 200, resp.text
    login = resp.json()
    assert_matches_operation("client-server/login.yaml", "/login", "post", 200, login)
    assert (login["user_id"], login["device_id"]) == (user_id, "PHONE")
    whoami = await srv.client.get(f"{V3}/account/whoami", headers=auth_header(login["access_token"]))
    assert whoami.json()["user_id"] == user_id
    profile = await srv.client.get(f"{V3}/profile/{user_id}")
    assert profile.json()["displayname"] == "Cas User"
    # The token worked once; the account has no password to sign in with.
    resp = await token_login(srv.client, token)
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
    resp = await srv.client.post(f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id},
        "password": ""})
    assert resp.status_code == 403

    again = await _sso_login(srv, cas, "cas_user!")  # the same name, another case
    assert again["user_id"] == user_id and again["device_id"] != "PHONE"
    devices = await srv.client.get(f"{V3}/devices", headers=auth_header(again["access_token"]))
    assert len(devices.json()["devices"]) == 2


async def test_trusted_client_gets_the_token_straight_away(
    start_server: StartServer, cas: FakeCas
) -> None:
    srv = await _server(start_server, cas, trusted_client_urls=("https://client.example/",))
    page = await _ticket_page(srv, cas, "bob")
    assert page.status_code == 302
    location = page.headers["location"]
    assert location.startswith("https://client.example/app?p=http%3A%2F%2Fserver&loginToken=")
    assert (await token_login(srv.client, token_of(location))).status_code == 200
    # Only that prefix: another site still gets the page.
    page = await _ticket_page(srv, cas, "bob", redirect="https://client.example.evil/")
    assert page.status_code == 200 and "client.example.evil" in page.text


async def test_required_attributes(start_server: StartServer, cas: FakeCas) -> None:
    srv = await _server(start_server, cas, required_attributes={"memberOf": "matrix"})
    cas.attributes["outsider"] = {"memberOf": ["staff"]}
    cas.attributes["member"] = {"memberOf": ["staff", "matrix"]}
    for user in ("outsider", "nobody"):
        page = await _ticket_page(srv, cas, user)
        assert page.status_code == 403, page.text
        assert "not allowed to use this Matrix server" in page.text and "loginToken" not in page.text
    assert (await _sso_login(srv, cas, "member"))["user_id"] == f"@member:{SERVER_NAME}"


async def test_existing_account_and_auto_register_off(
    start_server: StartServer, cas: FakeCas
) -> None:
    srv = await _server(start_server, cas, auto_register=False)
    with fast_hashing_for_tests():
        alice = await new_user(srv.client, "alice")
    page = await _ticket_page(srv, cas, "stranger")
    assert page.status_code == 403 and "no account @stranger" in page.text
    # An account with the CAS user's name is that user's.
    assert (await _sso_login(srv, cas, "Alice"))["user_id"] == alice.user_id


async def test_bad_tickets_and_a_misbehaving_cas_server(
    start_server: StartServer, cas: FakeCas
) -> None:
    srv = await _server(start_server, cas)
    resp = await srv.client.get(f"{V3}/login/sso/redirect", params={"redirectUrl": REDIRECT})
    back = local_path(await _at_cas(resp.headers["location"], "carol"))
    assert (await srv.client.get(back)).status_code == 200
    reused = await srv.client.get(back)
    assert reused.status_code == 403 and "INVALID_TICKET" in reused.text
    assert reused.headers["content-type"].startswith("text/html")

    # A ticket issued for another redirectUrl does not fit this one's service.
    other = TICKET_URL + "?redirectUrl=" + urllib.parse.quote("https://other.example/", safe="")
    ticket = cas.issue_ticket(other, "carol")
    resp = await srv.client.get(
        "/_matrix/client/r0/login/cas/ticket", params={"redirectUrl": REDIRECT, "ticket": ticket}
    )
    assert resp.status_code == 403 and "INVALID_SERVICE" in resp.text

    async def ticket_page(**params: str) -> httpx.Response:
        return await srv.client.get("/_matrix/client/r0/login/cas/ticket", params=params)

    assert (await ticket_page(redirectUrl=REDIRECT)).status_code == 400  # no ticket
    assert (await ticket_page(ticket="x")).status_code == 400  # neither redirectUrl nor session
    assert (await ticket_page(ticket="x", redirectUrl="javascript:x")).status_code == 400

    entities = ('<!DOCTYPE r [<!ENTITY e "carol">]>'
                "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'><cas:authenticationSuccess>"
                "<cas:user>&e;</cas:user></cas:authenticationSuccess></cas:serviceResponse>")
    for status, body in [(500, "oops"), (200, "not xml <"), (200, entities),
                         (200, "<other/>"), (200, success("", {})),
                         (200, "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'/>")]:
        cas.canned.append((status, body))
        resp = await ticket_page(redirectUrl=REDIRECT, ticket="ST-canned")
        assert resp.status_code == 502, (body, resp.text)
        assert "loginToken" not in resp.text


async def test_unreachable_cas_server(start_server: StartServer, cas: FakeCas) -> None:
    srv = await start_server({**OPEN, "cas.server_url": "http://127.0.0.1:9/cas"})
    resp = await srv.client.get(
        "/_matrix/client/r0/login/cas/ticket", params={"redirectUrl": REDIRECT, "ticket": "ST-1"}
    )
    assert resp.status_code == 502 and "could not be reached" in resp.text


# -- user-interactive authentication ---------------------------------------------------------


async def _uia_sso(srv: RunningServer, session: str, user: str) -> httpx.Response:
    """The browser on the m.login.sso fallback page: its link to CAS, `user` signs in there, and
    back to our ticket page."""
    page = await srv.client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": session})
    link = continue_link(page)
    assert link.startswith(
        link.split("/login?", 1)[0] + "/login?service=" + urllib.parse.quote(f"{TICKET_URL}?session={session}", safe="")
    )
    return await srv.client.get(local_path(await _at_cas(link, user)))


async def test_sso_stage_completes_device_deletion(start_server: StartServer, cas: FakeCas) -> None:
    srv = await _server(start_server, cas)
    with fast_hashing_for_tests():
        alice = await new_user(srv.client, "alice")
    phone = await _sso_login(srv, cas, "alice", device_id="PHONE")

    first = await delete_device(srv, alice.token, "PHONE")
    assert first.status_code == 401
    assert first.json()["flows"] == [{"stages": ["m.login.password"]}, {"stages": ["m.login.sso"]}]
    session = first.json()["session"]
    page = await srv.client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": session})
    assert "remove the device PHONE" in page.text and alice.user_id in page.text

    # Resubmitting before the browser is done: still 401.
    early = await delete_device(srv, alice.token, "PHONE", {"session": session, "type": "m.login.sso"})
    assert early.status_code == 401 and early.json()["errcode"] == "M_UNAUTHORIZED"

    done = await _uia_sso(srv, session, "alice")
    assert done.status_code == 200
    assert "window.onAuthDone()" in done.text and 'postMessage("authDone", "*")' in done.text

    resp = await delete_device(srv, alice.token, "PHONE", {"session": session})
    assert resp.status_code == 200, resp.text
    gone = await srv.client.get(f"{V3}/devices/PHONE", headers=auth_header(alice.token))
    assert gone.status_code == 404
    whoami = await srv.client.get(f"{V3}/account/whoami", headers=auth_header(phone["access_token"]))
    assert whoami.status_code == 401
    # The session is finished: its id opens no page any more.
    page = await srv.client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": session})
    assert page.status_code == 400


async def test_another_cas_user_cannot_complete_the_session(
    start_server: StartServer, cas: FakeCas
) -> None:
    srv = await _server(start_server, cas)
    with fast_hashing_for_tests():
        alice = await new_user(srv.client, "alice")
    await _sso_login(srv, cas, "alice", device_id="PHONE")
    session = (await delete_device(srv, alice.token, "PHONE")).json()["session"]

    page = await _uia_sso(srv, session, "mallory")
    assert page.status_code == 200 and "will be refused" in page.text
    resp = await delete_device(srv, alice.token, "PHONE", {"session": session})
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN"), resp.text
    device = await srv.client.get(f"{V3}/devices/PHONE", headers=auth_header(alice.token))
    assert device.status_code == 200

    # Alice herself still can, in the same session; mallory's later sign-in changes nothing.
    await _uia_sso(srv, session, "alice")
    await _uia_sso(srv, session, "mallory")
    resp = await delete_device(srv, alice.token, "PHONE", {"session": session})
    assert resp.status_code == 200, resp.text


async def test_sso_only_account_and_fallback_errors(start_server: StartServer, cas: FakeCas) -> None:
    srv = await _server(start_server, cas)
    dave = await _sso_login(srv, cas, "dave")
    first = await srv.client.post(
        f"{V3}/account/deactivate", json={}, headers=auth_header(dave["access_token"])
    )
    assert first.status_code == 401
    assert first.json()["flows"] == [{"stages": ["m.login.sso"]}]
    session = first.json()["session"]
    page = await srv.client.get(f"{V3}/auth/m.login.sso/fallback/web", params={"session": session})
    assert "deactivate your account" in page.text

    async def fallback(**params: str) -> httpx.Response:
        return await srv.client.get(f"{V3}/auth/m.login.sso/fallback/web", params=params)

    assert (await fallback()).json()["errcode"] == "M_MISSING_PARAM"
    assert (await fallback(session="nope")).status_code == 400
    register = await srv.client.post(f"{V3}/register", json={"username": "x", "password": PASSWORD})
    other = await fallback(session=register.json()["session"])  # registration has no SSO stage
    assert (other.status_code, other.json()["errcode"]) == (403, "M_FORBIDDEN")
    # A ticket for a session that does not expect SSO: a page, never a 500.
    resp = await srv.client.get(
        "/_matrix/client/r0/login/cas/ticket", params={"session": "nope", "ticket": "ST-x"}
    )
    assert resp.status_code == 400 and resp.headers["content-type"].startswith("text/html")

    await _uia_sso(srv, session, "dave")
    resp = await srv.client.post(
        f"{V3}/account/deactivate", json={"auth": {"session": session}},
        headers=auth_header(dave["access_token"]),
    )
    assert resp.status_code == 200, resp.text
    # Deactivated: CAS signs nobody into that account any more.
    page = await _ticket_page(srv, cas, "dave")
    assert page.status_code == 403 and "deactivated" in page.text
