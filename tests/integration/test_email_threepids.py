"""Email addresses validated by this server itself, through a real server and a real SMTP server
on loopback (tests/integration/smtp_sink.py): sign-up with an email address, adding one, signing
in with it, resetting a forgotten password by email, and every way a client can get it wrong
(client-server-api §Adding Account Administrative Contact Information, §Email-based, §Login).

The confirmation link is read from the mail as SyTest reads it (the first http... of the
text/plain part) and followed against the test server (its base is server.public_baseurl).
"""

from __future__ import annotations

import itertools
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, StartServer
from tests.integration.account_helpers import (
    PASSWORD,
    V3,
    auth_header,
    login,
    register,
    running_server,
    uia_password,
)
from tests.integration.smtp_sink import SmtpSink, first_link, smtp_tls, start_sink
from tests.spec_schema import assert_matches_operation

EMAIL = "m.login.email.identity"
BASE = "https://matrix.example.org/"
REGISTER_TOKEN = f"{V3}/register/email/requestToken"
ACCOUNT_TOKEN = f"{V3}/account/3pid/email/requestToken"
PASSWORD_TOKEN = f"{V3}/account/password/email/requestToken"
_n = itertools.count()


def _address(name: str) -> str:
    """A fresh address: the sink is shared by the whole session."""
    return f"{name}-{next(_n)}@example.org"


@pytest.fixture(scope="module")
async def srv(
    tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink
) -> AsyncIterator[RunningServer]:
    overrides = smtp_sink.config(**{"server.public_baseurl": BASE})
    async with running_server(tmp_path_factory.mktemp("email"), overrides) as server:
        yield server


async def _request(
    client: httpx.AsyncClient, path: str, address: str, *, secret: str = "s3cret",
    send_attempt: int = 1, **more: Any,
) -> httpx.Response:
    body = {"client_secret": secret, "email": address, "send_attempt": send_attempt, **more}
    return await client.post(path, json=body)


async def _follow(client: httpx.AsyncClient, link: str) -> httpx.Response:
    assert link.startswith(BASE + "_dendrite_lite/client/email/submit_token?"), link
    parts = urllib.parse.urlsplit(link)
    return await client.get(f"{parts.path}?{parts.query}")


async def _validated(
    srv: RunningServer, sink: SmtpSink, path: str, address: str, secret: str = "s3cret"
) -> str:
    """requestToken, then follow the mailed link: the validated session's sid."""
    seen = len(sink.to(address))
    resp = await _request(srv.client, path, address, secret=secret)
    assert resp.status_code == 200, resp.text
    mail = await sink.next_to(address, seen=seen)
    followed = await _follow(srv.client, first_link(mail))
    assert followed.status_code == 200, followed.text
    return str(resp.json()["sid"])


async def _add_email(srv: RunningServer, sink: SmtpSink, token: str, user: str, address: str) -> None:
    sid = await _validated(srv, sink, ACCOUNT_TOKEN, address)
    resp = await uia_password(
        srv.client, "POST", f"{V3}/account/3pid/add", token, user,
        {"sid": sid, "client_secret": "s3cret"},
    )
    assert resp.status_code == 200, resp.text


async def _threepids(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    resp = await client.get(f"{V3}/account/3pid", headers=auth_header(token))
    assert resp.status_code == 200, resp.text
    assert_matches_operation(
        "client-server/administrative_contact.yaml", "/account/3pid", "get", 200, resp.json()
    )
    return list(resp.json()["threepids"])


# -- registration ---------------------------------------------------------------------------


async def test_register_with_an_email_address(srv: RunningServer, smtp_sink: SmtpSink) -> None:
    address = _address("Newbie")
    first = await srv.client.post(
        f"{V3}/register", json={"username": "newbie", "password": PASSWORD, "device_id": "XY"}
    )
    assert first.status_code == 401
    flows = first.json()["flows"]
    assert flows == [{"stages": ["m.login.dummy"]}, {"stages": [EMAIL]}]

    resp = await _request(srv.client, REGISTER_TOKEN, address)
    assert resp.status_code == 200, resp.text
    assert_matches_operation(
        "client-server/registration.yaml", "/register/email/requestToken", "post", 200, resp.json()
    )
    mail = await smtp_sink.next_to(address.lower())
    assert mail.message["Subject"] == "Confirm your email address for test.localhost"
    assert mail.mail_from == "noreply@test.localhost"
    link = first_link(mail)
    # Before the link is followed the stage fails, keeping the session: 401 M_UNAUTHORIZED.
    auth = {"type": EMAIL, "session": first.json()["session"],
            "threepid_creds": {"sid": resp.json()["sid"], "client_secret": "s3cret"}}
    early = await srv.client.post(f"{V3}/register", json={"auth": auth})
    assert early.status_code == 401, early.text
    assert early.json()["errcode"] == "M_UNAUTHORIZED"
    assert early.json()["completed"] == []

    page = await _follow(srv.client, link)
    assert page.status_code == 200 and "Email address confirmed" in page.text
    assert page.headers["content-type"].startswith("text/html")
    done = await srv.client.post(f"{V3}/register", json={"auth": auth})
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == "@newbie:test.localhost"
    assert done.json()["device_id"] == "XY"
    (threepid,) = await _threepids(srv.client, done.json()["access_token"])
    assert threepid["medium"] == "email" and threepid["address"] == address.lower()
    assert threepid["validated_at"] <= threepid["added_at"]

    # The address is now taken, for sign-up and for adding alike; the used session is gone.
    for path in (REGISTER_TOKEN, ACCOUNT_TOKEN):
        again = await _request(srv.client, path, address, secret="other")
        assert (again.status_code, again.json()["errcode"]) == (400, "M_THREEPID_IN_USE")
    reuse = await srv.client.post(f"{V3}/register", json={
        "username": "newbie2", "password": PASSWORD,
        "auth": {**auth, "session": (await _start(srv.client, "newbie2"))},
    })
    assert reuse.status_code == 401 and reuse.json()["errcode"] == "M_UNAUTHORIZED"


async def _start(client: httpx.AsyncClient, username: str) -> str:
    first = await client.post(f"{V3}/register", json={"username": username, "password": PASSWORD})
    assert first.status_code == 401
    return str(first.json()["session"])


async def test_a_session_of_another_endpoint_does_not_register(
    srv: RunningServer, smtp_sink: SmtpSink
) -> None:
    # Confirmed for adding to an account, it cannot sign up (its email said something else).
    address = _address("other")
    sid = await _validated(srv, smtp_sink, ACCOUNT_TOKEN, address)
    session = await _start(srv.client, "crossed")
    resp = await srv.client.post(f"{V3}/register", json={"auth": {
        "type": EMAIL, "session": session, "threepid_creds": {"sid": sid, "client_secret": "s3cret"},
    }})
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED"
    bad = await srv.client.post(f"{V3}/register", json={"auth": {
        "type": EMAIL, "session": session, "threepid_creds": {"sid": sid, "client_secret": "b d"},
    }})
    assert (bad.status_code, bad.json()["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize(
    ("policy", "flows"),
    [
        ("required", [[EMAIL]]),
        ("off", [["m.login.dummy"]]),
    ],
)
async def test_registration_policy(
    start_server: StartServer, smtp_sink: SmtpSink, policy: str, flows: list[list[str]]
) -> None:
    srv = await start_server(smtp_sink.config(**{
        "registration.mode": "open", "registration.email": policy,
    }))
    first = await srv.client.post(f"{V3}/register", json={"username": "x", "password": "p"})
    assert [f["stages"] for f in first.json()["flows"]] == flows
    resp = await _request(srv.client, REGISTER_TOKEN, _address("policy"))
    if policy == "off":
        assert (resp.status_code, resp.json()["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
    else:
        assert resp.status_code == 200


async def test_closed_registration_mails_nothing(
    start_server: StartServer, smtp_sink: SmtpSink
) -> None:
    srv = await start_server(smtp_sink.config(**{"registration.mode": "closed"}))
    address = _address("closed")
    resp = await _request(srv.client, REGISTER_TOKEN, address)
    assert (resp.status_code, resp.json()["errcode"]) == (403, "M_FORBIDDEN")
    assert smtp_sink.to(address) == []
    # Adding an address to an existing account still works on a closed server.
    assert (await _request(srv.client, ACCOUNT_TOKEN, address)).status_code == 200


async def test_token_registration_with_email_required(
    start_server: StartServer, smtp_sink: SmtpSink
) -> None:
    srv = await start_server(smtp_sink.config(**{
        "registration.mode": "token", "registration.email": "required",
    }))
    first = await srv.client.post(f"{V3}/register", json={"username": "x", "password": "p"})
    assert first.json()["flows"] == [{"stages": ["m.login.registration_token", EMAIL]}]


# -- requestToken ----------------------------------------------------------------------------


async def test_the_same_send_attempt_mails_once(srv: RunningServer, smtp_sink: SmtpSink) -> None:
    address = _address("retry")
    one = await _request(srv.client, REGISTER_TOKEN, address)
    two = await _request(srv.client, REGISTER_TOKEN, address)
    assert one.json()["sid"] == two.json()["sid"]
    old_link = first_link(await smtp_sink.next_to(address))
    # A higher send_attempt mails a new link for the same session; the old one stops working.
    three = await _request(srv.client, REGISTER_TOKEN, address, send_attempt=2)
    assert three.json()["sid"] == one.json()["sid"]
    new_link = first_link(await smtp_sink.next_to(address, seen=1))
    assert len(smtp_sink.to(address)) == 2 and new_link != old_link
    stale = await _follow(srv.client, old_link)
    assert stale.status_code == 400 and "not valid" in stale.text
    assert (await _follow(srv.client, new_link)).status_code == 200
    # Another client_secret is another session.
    other = await _request(srv.client, REGISTER_TOKEN, address, secret="another")
    assert other.json()["sid"] != one.json()["sid"]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"client_secret": "has space", "email": "a@example.org", "send_attempt": 1}, "M_INVALID_PARAM"),
        ({"client_secret": "x" * 256, "email": "a@example.org", "send_attempt": 1}, "M_INVALID_PARAM"),
        ({"client_secret": "", "email": "a@example.org", "send_attempt": 1}, "M_INVALID_PARAM"),
        ({"client_secret": 5, "email": "a@example.org", "send_attempt": 1}, "M_MISSING_PARAM"),
        ({"client_secret": "ok", "email": "not-an-address", "send_attempt": 1}, "M_INVALID_PARAM"),
        ({"client_secret": "ok", "email": "a@b@example.org", "send_attempt": 1}, "M_INVALID_PARAM"),
        ({"client_secret": "ok", "email": "a@example.org\r\nBcc: x@y.org", "send_attempt": 1},
         "M_INVALID_PARAM"),
        ({"client_secret": "ok", "email": ["a@example.org"], "send_attempt": 1}, "M_INVALID_PARAM"),
        ({"client_secret": "ok", "email": "a@example.org", "send_attempt": "1"}, "M_INVALID_PARAM"),
        ({"client_secret": "ok", "email": "a@example.org"}, "M_MISSING_PARAM"),
        ({"client_secret": "ok", "send_attempt": 1}, "M_MISSING_PARAM"),
        ({"client_secret": "ok", "email": "a@example.org", "send_attempt": 1, "next_link": 5},
         "M_INVALID_PARAM"),
    ],
)
async def test_request_errors(srv: RunningServer, body: dict[str, Any], errcode: str) -> None:
    for path in (REGISTER_TOKEN, ACCOUNT_TOKEN, PASSWORD_TOKEN):
        resp = await srv.client.post(path, json=body)
        assert (resp.status_code, resp.json()["errcode"]) == (400, errcode), (path, resp.text)


async def test_password_reset_needs_a_known_address(srv: RunningServer) -> None:
    resp = await _request(srv.client, PASSWORD_TOKEN, _address("nobody"))
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_THREEPID_NOT_FOUND")


async def test_phone_numbers_are_not_supported(srv: RunningServer) -> None:
    body = {"client_secret": "s", "country": "GB", "phone_number": "07700900001", "send_attempt": 1}
    for what in ("register", "account/3pid", "account/password"):
        resp = await srv.client.post(f"{V3}/{what}/msisdn/requestToken", json=body)
        assert (resp.status_code, resp.json()["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")


async def test_links_that_do_not_work(srv: RunningServer, smtp_sink: SmtpSink) -> None:
    address = _address("links")
    resp = await _request(srv.client, ACCOUNT_TOKEN, address)
    link = first_link(await smtp_sink.next_to(address))
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
    path = "/_dendrite_lite/client/email/submit_token"
    for broken in (
        {**query, "token": "wrong"},
        {**query, "client_secret": "wrong"},
        {**query, "sid": "wrong"},
    ):
        page = await srv.client.get(path, params=broken)
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    for incomplete in ({"sid": query["sid"]}, {**query, "client_secret": "b d"}):
        assert (await srv.client.get(path, params=incomplete)).status_code == 400
    assert resp.json()["sid"] == query["sid"]
    assert (await srv.client.get(path, params=query)).status_code == 200
    assert (await srv.client.get(path, params=query)).status_code == 200  # again: still fine


async def test_next_link_redirects_only_to_http(srv: RunningServer, smtp_sink: SmtpSink) -> None:
    for next_link, redirected in (
        ("https://app.example.org/done?x=1", True),
        ("javascript:alert(1)", False),
    ):
        address = _address("next")
        await _request(srv.client, ACCOUNT_TOKEN, address, next_link=next_link)
        page = await _follow(srv.client, first_link(await smtp_sink.next_to(address)))
        if redirected:
            assert (page.status_code, page.headers["location"]) == (302, next_link)
        else:
            assert page.status_code == 200 and "javascript" not in page.text


# -- adding and listing ------------------------------------------------------------------------


async def test_add_list_and_deprecated_add(srv: RunningServer, smtp_sink: SmtpSink) -> None:
    alice = await register(srv.client, "addalice")
    token = alice["access_token"]
    assert await _threepids(srv.client, token) == []
    first, second = _address("alice"), _address("Alice.Second")
    await _add_email(srv, smtp_sink, token, alice["user_id"], first)
    # The deprecated POST /account/3pid with three_pid_creds (SyTest's add_email_for_user).
    sid = await _validated(srv, smtp_sink, ACCOUNT_TOKEN, second, secret="sec2")
    resp = await srv.client.post(f"{V3}/account/3pid", headers=auth_header(token), json={
        "three_pid_creds": {"sid": sid, "client_secret": "sec2", "id_server": "id.example.org",
                            "id_access_token": "x"},
    })
    assert resp.status_code == 200, resp.text
    listed = await _threepids(srv.client, token)
    assert [t["address"] for t in listed] == [first, second.lower()]

    # Used sessions and unvalidated ones add nothing.
    again = await srv.client.post(f"{V3}/account/3pid", headers=auth_header(token), json={
        "three_pid_creds": {"sid": sid, "client_secret": "sec2"},
    })
    assert (again.status_code, again.json()["errcode"]) == (403, "M_THREEPID_AUTH_FAILED")
    pending = await _request(srv.client, ACCOUNT_TOKEN, _address("pending"))
    resp = await uia_password(
        srv.client, "POST", f"{V3}/account/3pid/add", token, alice["user_id"],
        {"sid": pending.json()["sid"], "client_secret": "s3cret"},
    )
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_THREEPID_AUTH_FAILED")
    unauth = await srv.client.get(f"{V3}/account/3pid")
    assert unauth.status_code == 401


async def test_an_address_belongs_to_one_account(srv: RunningServer, smtp_sink: SmtpSink) -> None:
    one = await register(srv.client, "ownerone")
    two = await register(srv.client, "ownertwo")
    address = _address("shared")
    # Both validate before either adds: the second to add is refused.
    sid_one = await _validated(srv, smtp_sink, ACCOUNT_TOKEN, address, secret="one")
    sid_two = await _validated(srv, smtp_sink, ACCOUNT_TOKEN, address, secret="two")
    for user, sid, secret, status in ((one, sid_one, "one", 200), (two, sid_two, "two", 400)):
        resp = await srv.client.post(f"{V3}/account/3pid", headers=auth_header(user["access_token"]),
                                     json={"three_pid_creds": {"sid": sid, "client_secret": secret}})
        assert resp.status_code == status, resp.text
    assert resp.json()["errcode"] == "M_THREEPID_IN_USE"


# -- login -------------------------------------------------------------------------------------


async def test_login_with_an_email_address(srv: RunningServer, smtp_sink: SmtpSink) -> None:
    bob = await register(srv.client, "loginbob")
    address = _address("Bob")
    await _add_email(srv, smtp_sink, bob["access_token"], bob["user_id"], address)
    for body in (
        {"identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address}},
        {"medium": "email", "address": address.upper()},  # deprecated, and any case
    ):
        resp = await srv.client.post(
            f"{V3}/login", json={"type": "m.login.password", "password": PASSWORD, **body}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["user_id"] == bob["user_id"]
    # A wrong password and an unknown address get the same answer.
    answers = []
    for addr, password in ((address, "wrong"), (_address("unknown"), PASSWORD)):
        resp = await srv.client.post(f"{V3}/login", json={
            "type": "m.login.password", "password": password,
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": addr},
        })
        answers.append((resp.status_code, resp.json()))
    assert answers[0] == answers[1] == (
        403, {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}
    )
    # The m.login.password UIA stage takes the address too.
    first = await srv.client.post(
        f"{V3}/account/deactivate", json={}, headers=auth_header(bob["access_token"])
    )
    auth = {"type": "m.login.password", "session": first.json()["session"], "password": PASSWORD,
            "identifier": {"type": "m.id.thirdparty", "medium": "email", "address": address}}
    resp = await srv.client.post(
        f"{V3}/account/deactivate", json={"auth": auth}, headers=auth_header(bob["access_token"])
    )
    assert resp.status_code == 200, resp.text
    # A deactivated account does not log in by its address either, nor reset its password.
    resp = await srv.client.post(f"{V3}/login", json={
        "type": "m.login.password", "password": PASSWORD, "medium": "email", "address": address,
    })
    assert resp.status_code == 403
    resp = await _request(srv.client, PASSWORD_TOKEN, address)
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_THREEPID_NOT_FOUND")


# -- password reset ----------------------------------------------------------------------------


@pytest.mark.parametrize("logout_devices", [True, False])
async def test_reset_a_forgotten_password(
    srv: RunningServer, smtp_sink: SmtpSink, logout_devices: bool
) -> None:
    name = f"forgetful{int(logout_devices)}"
    carol = await register(srv.client, name)
    address = _address(name)
    await _add_email(srv, smtp_sink, carol["access_token"], carol["user_id"], address)
    other = (await login(srv.client, name)).json()["access_token"]

    seen = len(smtp_sink.to(address))
    resp = await _request(srv.client, PASSWORD_TOKEN, address.upper(), secret="reset")
    assert resp.status_code == 200, resp.text
    mail = await smtp_sink.next_to(address, seen=seen)
    assert mail.message["Subject"] == "Reset your password on test.localhost"
    sid = resp.json()["sid"]

    first = await srv.client.post(f"{V3}/account/password", json={"new_password": "new pw"})
    assert first.status_code == 401, first.text
    assert first.json()["flows"] == [{"stages": [EMAIL]}]
    auth = {"type": EMAIL, "session": first.json()["session"],
            "threepid_creds": {"sid": sid, "client_secret": "reset"}}
    body = {"new_password": "new pw", "logout_devices": logout_devices, "auth": auth}
    early = await srv.client.post(f"{V3}/account/password", json=body)
    assert (early.status_code, early.json()["errcode"]) == (401, "M_UNAUTHORIZED")
    assert (await _follow(srv.client, first_link(mail))).status_code == 200
    done = await srv.client.post(f"{V3}/account/password", json=body)
    assert done.status_code == 200, done.text

    assert (await login(srv.client, name)).status_code == 403
    assert (await login(srv.client, name, "new pw")).status_code == 200
    for token in (carol["access_token"], other):
        whoami = await srv.client.get(f"{V3}/account/whoami", headers=auth_header(token))
        assert whoami.status_code == (401 if logout_devices else 200), whoami.text
    # The session was used up.
    again = await srv.client.post(f"{V3}/account/password", json={
        "new_password": "third", "auth": {**auth, "session": (await srv.client.post(
            f"{V3}/account/password", json={"new_password": "third"})).json()["session"]},
    })
    assert (again.status_code, again.json()["errcode"]) == (401, "M_UNAUTHORIZED")


async def test_a_registration_session_does_not_reset_a_password(
    srv: RunningServer, smtp_sink: SmtpSink
) -> None:
    address = _address("crossreset")
    sid = await _validated(srv, smtp_sink, REGISTER_TOKEN, address)
    first = await srv.client.post(f"{V3}/account/password", json={"new_password": "x"})
    resp = await srv.client.post(f"{V3}/account/password", json={"new_password": "x", "auth": {
        "type": EMAIL, "session": first.json()["session"],
        "threepid_creds": {"sid": sid, "client_secret": "s3cret"},
    }})
    assert (resp.status_code, resp.json()["errcode"]) == (401, "M_UNAUTHORIZED")


# -- the mail server -----------------------------------------------------------------------------


async def test_mail_server_down_or_refusing(
    start_server: StartServer, smtp_sink: SmtpSink, unused_tcp_port: int
) -> None:
    down = await start_server({
        "registration.mode": "open", "email.smtp_host": "127.0.0.1",
        "email.smtp_port": unused_tcp_port, "email.smtp_tls": "none",
    })
    resp = await _request(down.client, REGISTER_TOKEN, _address("down"))
    assert resp.status_code == 502, resp.text
    assert resp.json()["errcode"] == "M_UNKNOWN" and "mail server" in resp.json()["error"]

    resp = await _request(down.client, REGISTER_TOKEN, _address("down"))  # tried again
    assert resp.status_code == 502, resp.text

    up = await start_server(smtp_sink.config(**{"registration.mode": "open"}))
    refused = _address("refused")
    smtp_sink.refuse.add(refused)
    for _ in range(2):  # nothing was kept: the same request again asks the mail server again
        resp = await _request(up.client, REGISTER_TOKEN, refused)
        assert (resp.status_code, resp.json()["errcode"]) == (400, "M_INVALID_PARAM")


async def test_without_email_nothing_is_offered(client: httpx.AsyncClient) -> None:
    resp = await _request(client, ACCOUNT_TOKEN, _address("off"))
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
    reset = await client.post(f"{V3}/account/password", json={"new_password": "x"})
    assert (reset.status_code, reset.json()["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_capabilities_offer_3pid_changes(srv: RunningServer) -> None:
    user = await register(srv.client, "capsuser")
    resp = await srv.client.get(f"{V3}/capabilities", headers=auth_header(user["access_token"]))
    assert resp.json()["capabilities"]["m.3pid_changes"] == {"enabled": True}


async def test_starttls_with_a_login(
    start_server: StartServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The usual provider setup: STARTTLS on the submission port, then a login; the mail
    server's certificate is trusted through email.ca_file."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ca_file, context = smtp_tls(tmp_path_factory.mktemp("smtp-tls"))
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"app-password")

    sink = SmtpSink()
    server = await start_sink(
        sink, tls_context=context, require_starttls=True, auth_required=True,
        authenticator=authenticator,
    )
    try:
        srv = await start_server({
            "registration.mode": "open", "email.smtp_host": "localhost",
            "email.smtp_port": sink.port, "email.smtp_tls": "starttls",
            "email.smtp_user": "matrix", "email.smtp_password": "app-password",
            "email.from_address": "Family Matrix <matrix@example.org>",
            "email.ca_file": ca_file,
        })
        address = _address("tls")
        resp = await _request(srv.client, REGISTER_TOKEN, address)
        assert resp.status_code == 200, resp.text
        mail = await sink.next_to(address)
        assert mail.mail_from == "matrix@example.org"
        assert mail.message["From"] == "Family Matrix <matrix@example.org>"
        assert logins == [(b"matrix", b"app-password")]
    finally:
        server.close()
        await server.wait_closed()
