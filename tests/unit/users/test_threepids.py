"""The pure rules of email validation (users/threepids.py), the registration flows email adds
(users/registration.py), third-party login identifiers (users/sessions.py) and the sender's
default From address (users/email_sender.py)."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.config import parse_config
from dendrite_lite.errors import MatrixError
from dendrite_lite.users.email_sender import default_from_address
from dendrite_lite.users.registration import registration_flows
from dendrite_lite.users.sessions import ThirdPartyId, login_rate_key, parse_identifier
from dendrite_lite.users.threepids import (
    EmailRequest,
    normalise_email,
    parse_email_request,
    redirect_target,
    validate_client_secret,
)

DUMMY, EMAIL = "m.login.dummy", "m.login.email.identity"
TOKEN, CAPTCHA = "m.login.registration_token", "m.login.recaptcha"


@pytest.mark.parametrize("secret", ["a", "monkeys_are_GREAT", "0.9=_-AZ", "x" * 255])
def test_client_secrets_of_the_spec_grammar(secret: str) -> None:
    assert validate_client_secret(secret) == secret


@pytest.mark.parametrize(
    ("secret", "errcode"),
    [("", "M_INVALID_PARAM"), ("x" * 256, "M_INVALID_PARAM"), ("a b", "M_INVALID_PARAM"),
     ("ä", "M_INVALID_PARAM"), ("a/b", "M_INVALID_PARAM"), (None, "M_MISSING_PARAM"),
     (5, "M_MISSING_PARAM")],
)
def test_other_client_secrets_are_refused(secret: object, errcode: str) -> None:
    with pytest.raises(MatrixError) as e:
        validate_client_secret(secret)
    assert (e.value.errcode, e.value.status) == (errcode, 400)


@pytest.mark.parametrize(
    ("given", "stored"),
    [("Alice@Example.ORG", "alice@example.org"), ("  bob@example.org\t", "bob@example.org"),
     ("a.b+tag@sub.example.org", "a.b+tag@sub.example.org"), ("x@localhost", "x@localhost"),
     ("jörg@bücher.example", "jörg@bücher.example")],
)
def test_addresses_are_trimmed_and_lower_cased(given: str, stored: str) -> None:
    assert normalise_email(given) == stored


@pytest.mark.parametrize(
    "bad",
    ["", "alice", "@example.org", "alice@", "a@b@c.org", "a b@example.org", "a@exa mple.org",
     "a@example.org\r\nBcc: x@y", "<a@example.org>", "a@.example.org", "a@example.org.",
     "a@" + "x" * 260 + ".org", 5, None],
)
def test_non_addresses_are_refused(bad: object) -> None:
    with pytest.raises(MatrixError) as e:
        normalise_email(bad)
    assert (e.value.errcode, e.value.status) == ("M_INVALID_PARAM", 400)


def test_request_body() -> None:
    body: dict[str, Any] = {
        "client_secret": "s", "email": "A@Example.org", "send_attempt": 3,
        "next_link": "https://x.org/", "id_server": "ignored.org", "id_access_token": "t",
    }
    assert parse_email_request(body) == EmailRequest("s", "a@example.org", 3, "https://x.org/")
    assert parse_email_request({**body, "next_link": ""}).next_link is None
    for key in ("client_secret", "email", "send_attempt"):
        with pytest.raises(MatrixError) as e:
            parse_email_request({k: v for k, v in body.items() if k != key})
        assert e.value.errcode == "M_MISSING_PARAM" and key in e.value.error
    for bad in ({"send_attempt": True}, {"send_attempt": 1.5}, {"next_link": ["x"]},
                {"next_link": "https://x.org/" + "a" * 3000}):
        with pytest.raises(MatrixError) as e:
            parse_email_request({**body, **bad})
        assert e.value.errcode == "M_INVALID_PARAM"


@pytest.mark.parametrize(
    ("next_link", "target"),
    [(None, None), ("", None), ("https://app.example.org/ok", "https://app.example.org/ok"),
     ("http://localhost:8080/x?y=1", "http://localhost:8080/x?y=1"), ("javascript:alert(1)", None),
     ("data:text/html,hi", None), ("element://done", None), ("https:///nohost", None),
     ("//evil.example/x", None)],
)
def test_only_http_next_links_are_followed(next_link: str | None, target: str | None) -> None:
    assert redirect_target(next_link) == target


def _config(email: str | None, **registration: Any) -> Any:
    data: dict[str, Any] = {"registration": {"mode": "open", **registration}}
    if email is not None:
        data["registration"]["email"] = email
        data["email"] = {"smtp_host": "smtp.example.org"}
    return parse_config(data)


@pytest.mark.parametrize(
    ("email", "registration", "flows"),
    [
        (None, {}, [(DUMMY,)]),
        ("off", {}, [(DUMMY,)]),
        ("optional", {}, [(DUMMY,), (EMAIL,)]),
        ("required", {}, [(EMAIL,)]),
        ("optional", {"mode": "token"}, [(TOKEN, DUMMY), (TOKEN, EMAIL)]),
        ("required", {"mode": "token"}, [(TOKEN, EMAIL)]),
        ("optional", {"recaptcha_public_key": "p", "recaptcha_private_key": "s"},
         [(CAPTCHA, DUMMY), (CAPTCHA, EMAIL)]),
        ("optional", {"recaptcha_public_key": "p", "recaptcha_private_key": "s",
                      "recaptcha_required": False},
         [(DUMMY,), (CAPTCHA, DUMMY), (EMAIL,), (CAPTCHA, EMAIL)]),
        ("required", {"recaptcha_public_key": "p", "recaptcha_private_key": "s",
                      "recaptcha_required": False},
         [(EMAIL,), (CAPTCHA, EMAIL)]),
    ],
)
def test_registration_flows_with_email(
    email: str | None, registration: dict[str, Any], flows: list[tuple[str, ...]]
) -> None:
    assert registration_flows(_config(email, **registration)) == flows


def test_an_email_policy_without_a_mail_server_changes_nothing() -> None:
    config = parse_config({"registration": {"mode": "open", "email": "optional"}})
    assert registration_flows(config) == [(DUMMY,)]


def test_third_party_identifiers() -> None:
    server = "example.org"
    tp = {"identifier": {"type": "m.id.thirdparty", "medium": "email", "address": "A@x.org"}}
    assert parse_identifier(tp, server) == ThirdPartyId("email", "A@x.org")
    legacy = {"medium": "email", "address": "A@x.org"}
    assert parse_identifier(legacy, server) == ThirdPartyId("email", "A@x.org")
    assert login_rate_key(tp, server) == login_rate_key(legacy, server) == "email:a@x.org"
    assert login_rate_key({"user": "Alice"}, server) == "@alice:example.org"
    with pytest.raises(MatrixError) as e:
        parse_identifier({"identifier": {"type": "m.id.thirdparty", "medium": "email"}}, server)
    assert e.value.errcode == "M_MISSING_PARAM"
    with pytest.raises(MatrixError) as e:
        parse_identifier({"identifier": {"type": "m.id.phone", "country": "GB", "phone": "1"}}, server)
    assert (e.value.errcode, e.value.status) == ("M_FORBIDDEN", 403)


@pytest.mark.parametrize(
    ("server_name", "address"),
    [("example.org", "noreply@example.org"), ("Example.org:8448", "noreply@example.org"),
     ("127.0.0.1:8008", "noreply@127.0.0.1"), ("[::1]:8448", "noreply@[::1]")],
)
def test_default_from_address(server_name: str, address: str) -> None:
    assert default_from_address(server_name) == address
