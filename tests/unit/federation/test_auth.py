"""X-Matrix request authentication: header parsing, signing, and inbound verification."""

from __future__ import annotations

import pytest

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.crypto.signing import ServerVerifyKey
from dendrite_lite.errors import MatrixError
from dendrite_lite.federation.auth import (
    XMatrixAuth,
    authorization_header,
    parse_request_body,
    parse_x_matrix,
    verify_request,
)

ORIGIN = "origin.example.org"
US = "dest.example.org"
NOW = 1_700_000_000_000
KEY = new_server_key("k1")


class Keys:
    def __init__(self, *keys: ServerVerifyKey) -> None:
        self.keys = {(k.server_name, k.key_id): k for k in keys}
        self.asked: list[tuple[str, str, int]] = []

    async def get_key(self, server_name: str, key_id: str, minimum_valid_until_ts: int) -> ServerVerifyKey | None:
        self.asked.append((server_name, key_id, minimum_valid_until_ts))
        return self.keys.get((server_name, key_id))


def origin_keys(**kw: int | None) -> Keys:
    valid = kw.get("valid_until_ts", NOW + 3600_000)
    return Keys(ServerVerifyKey(ORIGIN, KEY.key_id, KEY.verify_key, valid, kw.get("expired_ts")))


def header(method: str = "PUT", uri: str = "/_matrix/federation/v1/send/1", content: object = None,
           destination: str = US) -> str:
    return authorization_header(ORIGIN, KEY, destination, method, uri, content)


async def verify(authz: str | None, *, keys: Keys | None = None, method: str = "PUT",
                 uri: str = "/_matrix/federation/v1/send/1", content: object = None) -> str:
    return await verify_request(keys or origin_keys(), US, method, uri, content, authz, NOW)


# --- Parsing -------------------------------------------------------------------------------------

def test_parse_our_own_header() -> None:
    h = header()
    assert h.startswith(f'X-Matrix origin="{ORIGIN}",destination="{US}",key="ed25519:k1",sig="')
    auth = parse_x_matrix(h)
    assert (auth.origin, auth.destination, auth.key) == (ORIGIN, US, "ed25519:k1")


@pytest.mark.parametrize(
    "text, expected",
    [
        # order, case of names and scheme, whitespace around commas, several spaces after scheme
        ('x-matrix   Key="ed25519:a" , SIG="c2ln",\tORIGIN="o.org", destination="d.org"',
         XMatrixAuth("o.org", "d.org", "ed25519:a", "c2ln")),
        # unquoted tokens, with the colons older servers send unquoted
        ("X-Matrix origin=o.org:8448,key=ed25519:a,sig=c2ln",
         XMatrixAuth("o.org:8448", None, "ed25519:a", "c2ln")),
        # backslash escapes in quoted values, unknown parameters ignored
        ('X-Matrix origin="o.org",key="ed25519:\\a",sig="c2\\"ln",future="x, y"',
         XMatrixAuth("o.org", None, "ed25519:a", 'c2"ln')),
    ],
)
def test_parse_variants(text: str, expected: XMatrixAuth) -> None:
    assert parse_x_matrix(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Bearer abc",
        "X-Matrix",
        "X-Matrixorigin=o.org,key=ed25519:a,sig=x",
        'X-Matrix origin="o.org",key="ed25519:a"',  # no sig
        'X-Matrix key="ed25519:a",sig="x"',  # no origin
        'X-Matrix origin="o.org" key="ed25519:a",sig="x"',  # missing comma
        'X-Matrix origin="o.org,key="ed25519:a",sig="x"',  # unterminated quote
        'X-Matrix origin="",key="ed25519:a",sig="x"',
    ],
)
def test_malformed_headers_are_401(text: str) -> None:
    with pytest.raises(MatrixError) as e:
        parse_x_matrix(text)
    assert (e.value.status, e.value.errcode) == (401, "M_UNAUTHORIZED")


@pytest.mark.parametrize("origin", ["not a server!", "localhost:http", "o.org:99999"])
def test_an_origin_that_is_no_server_name_is_400(origin: str) -> None:
    """SyTest "Non-numeric ports in server names are rejected" (400, as Synapse)."""
    with pytest.raises(MatrixError) as e:
        parse_x_matrix(f'X-Matrix origin="{origin}",key="ed25519:a",sig="x"')
    assert (e.value.status, e.value.errcode) == (400, "M_UNAUTHORIZED")


# --- Verification --------------------------------------------------------------------------------

async def test_valid_signature_returns_origin() -> None:
    content = {"pdus": [], "edus": [{"edu_type": "m.typing", "content": {"x": 1}}]}
    keys = origin_keys()
    assert await verify(header(content=content), keys=keys, content=content) == ORIGIN
    assert keys.asked == [(ORIGIN, "ed25519:k1", NOW)]


async def test_get_with_query_string() -> None:
    uri = "/_matrix/federation/v1/query/profile?user_id=%40a%3Ao.org&field=displayname"
    assert await verify(header("GET", uri), method="GET", uri=uri) == ORIGIN


async def assert_401(coro: object, fragment: str) -> None:
    with pytest.raises(MatrixError) as e:
        await coro  # type: ignore[misc]
    assert (e.value.status, e.value.errcode) == (401, "M_UNAUTHORIZED")
    assert fragment in e.value.error


async def test_missing_header() -> None:
    await assert_401(verify(None), "missing")
    await assert_401(verify(""), "missing")


async def test_wrong_destination() -> None:
    await assert_401(verify(header(destination="someone.else")), "not this server")


async def test_no_destination_param_is_accepted() -> None:
    h = header().replace(f',destination="{US}"', "")
    assert await verify(h) == ORIGIN


@pytest.mark.parametrize(
    "change",
    [
        {"method": "POST"},
        {"uri": "/_matrix/federation/v1/send/2"},
        {"content": {"pdus": []}},
    ],
)
async def test_signature_covers_method_uri_and_content(change: dict) -> None:
    await assert_401(verify(header(), **change), "invalid X-Matrix signature")


async def test_content_must_match_when_signed_with_content() -> None:
    await assert_401(verify(header(content={"a": 1}), content={"a": 2}), "invalid X-Matrix signature")
    await assert_401(verify(header(content={"a": 1}), content=None), "invalid X-Matrix signature")


async def test_signature_by_another_key() -> None:
    other = new_server_key("k1")
    forged = authorization_header(ORIGIN, other, US, "PUT", "/_matrix/federation/v1/send/1", None)
    await assert_401(verify(forged), "invalid X-Matrix signature")


async def test_garbage_signature() -> None:
    await assert_401(verify(header().rsplit('sig="', 1)[0] + 'sig="!!notbase64"'), "invalid")
    await assert_401(verify(header().rsplit('sig="', 1)[0] + 'sig="AAAA"'), "invalid")


async def test_unknown_key_id() -> None:
    await assert_401(verify(header(), keys=Keys()), "unknown key ed25519:k1")
    await assert_401(verify(header().replace("ed25519:k1", "curve25519:k1")), "unsupported key algorithm")


async def test_expired_and_old_keys_cannot_sign_requests() -> None:
    await assert_401(verify(header(), keys=origin_keys(valid_until_ts=NOW - 1)), "not valid now")
    await assert_401(verify(header(), keys=origin_keys(valid_until_ts=None, expired_ts=NOW + 10)), "not valid now")


def test_parse_request_body() -> None:
    assert parse_request_body(b"") is None
    assert parse_request_body(b'{"a": 1.0}') == {"a": 1}
    with pytest.raises(MatrixError) as e:
        parse_request_body(b"{nope")
    assert e.value.errcode == "M_NOT_JSON"
