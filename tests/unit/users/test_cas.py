"""users/cas.py without a network: the CAS validation answer, redirect URLs, the localpart
mapping (spec appendices, "Mapping from other character sets") and the m.login.sso UIA stage."""

from __future__ import annotations

import pytest

from dendrite_lite.config import CasConfig
from dendrite_lite.errors import MatrixError
from dendrite_lite.users.accounts import localpart_from_external
from dendrite_lite.users.cas import CasService, CasUser, parse_validation
from dendrite_lite.users.sso import check_redirect_url, login_redirect
from dendrite_lite.users.uia import PASSWORD, SSO, UiaRequired, UiaSessions

NS = "xmlns:cas='http://www.yale.edu/tp/cas'"


def _answer(inner: str) -> bytes:
    return f"<cas:serviceResponse {NS}>{inner}</cas:serviceResponse>".encode()


def _status(body: bytes) -> tuple[int, str]:
    with pytest.raises(MatrixError) as info:
        parse_validation(body)
    return info.value.status, info.value.error


def test_success_with_cas3_attributes_and_the_name_value_form() -> None:
    body = _answer(
        "<cas:authenticationSuccess><cas:user> alice </cas:user><cas:attributes>"
        "<cas:displayName>Alice A.</cas:displayName><cas:memberOf>a</cas:memberOf>"
        "<cas:memberOf>b</cas:memberOf><cas:attribute name='mail' value='a@example.org'/>"
        "</cas:attributes><cas:proxyGrantingTicket>PGT</cas:proxyGrantingTicket>"
        "</cas:authenticationSuccess>"
    )
    assert parse_validation(body) == CasUser(
        "alice", {"displayName": ["Alice A."], "memberOf": ["a", "b"], "mail": ["a@example.org"]}
    )
    # CAS 2.0: no attributes at all (what SyTest's mock sends, with an empty element).
    plain = _answer("<cas:authenticationSuccess><cas:user>bob</cas:user></cas:authenticationSuccess>")
    assert parse_validation(plain) == CasUser("bob", {})


def test_failure_is_403_with_the_cas_code() -> None:
    body = _answer(
        "<cas:authenticationFailure code='INVALID_TICKET'>Ticket ST-1 not\n recognized"
        "</cas:authenticationFailure>"
    )
    status, error = _status(body)
    assert status == 403 and "INVALID_TICKET: Ticket ST-1 not recognized" in error


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<a",
        b"\xff\xfe<\x00a\x00/\x00>\x00",  # UTF-16: not a CAS answer
        b"<other/>",
        _answer(""),
        _answer("<cas:authenticationSuccess><cas:user> </cas:user></cas:authenticationSuccess>"),
        b'<!DOCTYPE x [<!ENTITY a "b">]>' + _answer(
            "<cas:authenticationSuccess><cas:user>&a;</cas:user></cas:authenticationSuccess>"
        ),
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.org/x.dtd"><x/>',
    ],
)
def test_anything_else_is_the_cas_servers_fault(body: bytes) -> None:
    assert _status(body)[0] == 502


@pytest.mark.parametrize(
    ("name", "localpart"),
    [("cas_user!", "cas_user=21"), ("Cas_User", "cas_user"), ("a=b", "a=3db"),
     ("jöe.x-y/z+1", "j=c3=b6e.x-y/z+1"), ("a b:c@d", "a=20b=3ac=40d")],
)
def test_localpart_mapping(name: str, localpart: str) -> None:
    assert localpart_from_external(name) == localpart


def test_redirect_urls() -> None:
    for good in ("https://app.example/?a=1#/login", "http://localhost:8080/", "element://connect",
                 "im.fluffychat://login"):
        assert check_redirect_url(good) == good
    for bad in ("", "javascript:alert(1)", "JavaScript:x", "data:text/html,x", "file:///etc",
                "/path", "//host/x", "https://", "https://a/ b", "https://exämple.org/", "https://a/" + "x" * 3000):
        with pytest.raises(MatrixError):
            check_redirect_url(bad)
    # Any loginToken the client put in is replaced; the rest and the fragment stay.
    assert login_redirect("https://a.example/x?loginToken=old&b=c%26d#frag", "T") == (
        "https://a.example/x?b=c%26d&loginToken=T#frag"
    )
    assert login_redirect("element://connect", "T") == "element://connect?loginToken=T"


def test_service_and_login_urls() -> None:
    cas = CasService(
        CasConfig(server_url="https://cas.example.org/cas"),
        public_baseurl="https://matrix.example.org/", server_name="example.org",
    )
    service = cas.service_url(redirect_url="https://client?p=http%3A%2F%2Fserver")
    assert service == (
        "https://matrix.example.org/_matrix/client/r0/login/cas/ticket"
        "?redirectUrl=https%3A%2F%2Fclient%3Fp%3Dhttp%253A%252F%252Fserver"
    )
    assert cas.service_url(session_id="abc") == (
        "https://matrix.example.org/_matrix/client/r0/login/cas/ticket?session=abc"
    )
    assert cas.login_url("https://m/x?a=b") == (
        "https://cas.example.org/cas/login?service=https%3A%2F%2Fm%2Fx%3Fa%3Db"
    )


async def test_sso_stage_is_for_the_sessions_user_only() -> None:
    uia = UiaSessions()
    session, _ = uia.start(None, "delete device X by @alice:hs", [(PASSWORD,), (SSO,)], {})
    with pytest.raises(MatrixError) as info:
        uia.sso_session(session.session_id)  # no user: not a sensitive operation's session
    assert info.value.status == 403
    session.user_id = "@alice:hs"
    assert uia.sso_session(session.session_id) is session
    with pytest.raises(MatrixError) as info:
        uia.sso_session("unknown")
    assert info.value.status == 400

    async def resubmit(user_id: str) -> None:
        await uia.complete(session, {"session": session.session_id}, storage=None,  # type: ignore[arg-type]
                           server_name="hs", user_id=user_id)

    with pytest.raises(UiaRequired):
        await resubmit("@alice:hs")
    uia.complete_sso(session.session_id, "@mallory:hs")
    with pytest.raises(MatrixError) as info:
        await resubmit("@alice:hs")
    assert info.value.status == 403 and not isinstance(info.value, UiaRequired)
    uia.complete_sso(session.session_id, "@alice:hs")
    uia.complete_sso(session.session_id, "@mallory:hs")  # too late to spoil it
    await resubmit("@alice:hs")
    assert session.completed == [SSO]
