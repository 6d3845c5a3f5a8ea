"""users/identity_server.py against httpx.MockTransport: the spec's lookup hash vectors, the
requests each call makes (paths, Bearer token, our X-Matrix with destination_is), and how every
kind of answer becomes a result or a Matrix error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from signedjson.sign import verify_signed_json

from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.errors import MatrixError
from dendrite_lite.federation.auth import parse_x_matrix
from dendrite_lite.users.identity_server import (
    IdentityServers,
    lookup_hash,
    parse_threepid_invite,
)

IS = "id.example.org"
KEY = new_server_key()
Handler = Callable[[httpx.Request], httpx.Response]


def _servers(handler: Handler) -> tuple[IdentityServers, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    ids = IdentityServers(server_name="hs.example", key=KEY, transport=httpx.MockTransport(record))
    return ids, seen


def _json(request: httpx.Request) -> Any:
    return json.loads(request.content)


@pytest.mark.parametrize(("query", "expected"), [
    ("alice@example.com email", "4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc"),
    ("bob@example.com email", "LJwSazmv46n0hlMlsb_iYxI0_HXEqy_yj6Jm636cdT8"),
    ("18005552067 msisdn", "nlo35_T5fzSGZzJApqu8lgIudJvmOQtDaHtr-I4rU7I"),
])
def test_lookup_hash_spec_vectors(query: str, expected: str) -> None:
    address, medium = query.split(" ")
    assert lookup_hash(address, medium, "matrixrocks") == expected


async def test_lookup_sha256_with_a_pepper_rotated_once() -> None:
    peppers = iter(["old", "new"])

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer tok"
        if request.url.path == "/_matrix/identity/v2/hash_details":
            return httpx.Response(200, json={"lookup_pepper": next(peppers), "algorithms": ["sha256", "none"]})
        body = _json(request)
        if body["pepper"] == "old":
            return httpx.Response(400, json={"errcode": "M_INVALID_PEPPER", "error": "rotated"})
        assert body == {"algorithm": "sha256", "pepper": "new", "addresses": [lookup_hash("a@b.c", "email", "new")]}
        return httpx.Response(200, json={"mappings": {body["addresses"][0]: "@a:b.c"}})

    ids, seen = _servers(handler)
    assert await ids.lookup(IS, "tok", "email", "a@b.c") == "@a:b.c"
    assert [r.url.path for r in seen] == [
        "/_matrix/identity/v2/hash_details", "/_matrix/identity/v2/lookup",
        "/_matrix/identity/v2/hash_details", "/_matrix/identity/v2/lookup",
    ]
    assert all(str(r.url).startswith(f"https://{IS}/") for r in seen)


async def test_lookup_none_algorithm_and_no_binding() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"lookup_pepper": "p", "algorithms": ["none"]})
        assert _json(request)["addresses"] == ["a@b.c email"]
        return httpx.Response(200, json={"mappings": {"a@b.c email": None}})  # as SyTest's does

    ids, _ = _servers(handler)
    assert await ids.lookup(IS, "tok", "email", "a@b.c") is None


async def test_lookup_with_no_algorithm_we_know_is_502() -> None:
    ids, _ = _servers(lambda r: httpx.Response(200, json={"lookup_pepper": "p", "algorithms": ["rot13"]}))
    with pytest.raises(MatrixError) as info:
        await ids.lookup(IS, "tok", "email", "a@b.c")
    assert (info.value.status, info.value.errcode) == (502, "M_UNKNOWN")


@pytest.mark.parametrize(("answer", "status", "errcode"), [
    (httpx.Response(400, json={"errcode": "M_SESSION_NOT_VALIDATED", "error": "not yet"}),
     400, "M_SESSION_NOT_VALIDATED"),
    (httpx.Response(401, json={"errcode": "M_UNAUTHORIZED", "error": "who?"}), 401, "M_UNAUTHORIZED"),
    (httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "oops"}), 502, "M_UNKNOWN"),
    (httpx.Response(404, text="<html>not found</html>"), 502, "M_UNKNOWN"),
    (httpx.Response(200, text="not json"), 502, "M_UNKNOWN"),
    (httpx.Response(200, json={"mxid": "@a:b.c"}), 502, "M_UNKNOWN"),  # no medium/address
])
async def test_bind_answers_become_matrix_errors(answer: httpx.Response, status: int, errcode: str) -> None:
    ids, _ = _servers(lambda r: answer)
    with pytest.raises(MatrixError) as info:
        await ids.bind(IS, "tok", "sid", "secret", "@a:hs.example")
    assert (info.value.status, info.value.errcode) == (status, errcode)


async def test_bind_sends_the_session_and_answers_what_was_bound() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert _json(request) == {"sid": "sid", "client_secret": "secret", "mxid": "@a:hs.example"}
        return httpx.Response(200, json={"medium": "email", "address": "a@b.c", "mxid": "@a:hs.example"})

    ids, _ = _servers(handler)
    assert await ids.bind(IS, "tok", "sid", "secret", "@a:hs.example") == ("email", "a@b.c")


async def test_unreachable_is_502_and_a_bad_host_400() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    ids, _ = _servers(handler)
    with pytest.raises(MatrixError) as info:
        await ids.bind(IS, "tok", "sid", "secret", "@a:hs.example")
    assert (info.value.status, info.value.errcode) == (502, "M_UNKNOWN")
    with pytest.raises(MatrixError) as info:
        await ids.bind("https://id.example.org/", "tok", "sid", "secret", "@a:hs.example")
    assert (info.value.status, info.value.errcode) == (400, "M_INVALID_PARAM")


async def test_unbind_is_signed_by_us_for_the_identity_server() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        auth = parse_x_matrix(request.headers["Authorization"])
        assert (auth.origin, auth.destination, auth.key) == ("hs.example", None, KEY.key_id)
        signed = {
            "method": "POST", "uri": "/_matrix/identity/v2/3pid/unbind", "origin": "hs.example",
            "destination_is": IS, "content": _json(request),
            "signatures": {"hs.example": {auth.key: auth.sig}},
        }
        verify_signed_json(signed, "hs.example", KEY.verify_key)
        assert _json(request) == {"mxid": "@a:hs.example", "threepid": {"medium": "email", "address": "a@b.c"}}
        return httpx.Response(200, json={})

    ids, _ = _servers(handler)
    assert await ids.unbind(IS, "@a:hs.example", "email", "a@b.c") is True


@pytest.mark.parametrize("status", [400, 404, 501])
async def test_unbind_unsupported_without_a_matrix_error(status: int) -> None:
    ids, _ = _servers(lambda r: httpx.Response(status, text=""))
    assert await ids.unbind(IS, "@a:hs.example", "email", "a@b.c") is False


async def test_unbind_passes_a_matrix_error_on() -> None:
    ids, _ = _servers(lambda r: httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "no"}))
    with pytest.raises(MatrixError) as info:
        await ids.unbind(IS, "@a:hs.example", "email", "a@b.c")
    assert (info.value.status, info.value.errcode) == (403, "M_FORBIDDEN")


async def test_store_invite_keys_and_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert _json(request)["room_name"] == "Lemurs"
        return httpx.Response(200, json={
            "token": "tok.1=_-", "display_name": "a...@b...", "public_key": "LONG",
            "public_keys": [
                {"public_key": "LONG", "key_validity_url": f"https://{IS}/_matrix/identity/v2/pubkey/isvalid"},
                {"public_key": "EPH", "key_validity_url": f"https://{IS}/_matrix/identity/v2/pubkey/ephemeral/isvalid"},
            ],
        })

    ids, _ = _servers(handler)
    stored = await ids.store_invite(IS, "tok", {"medium": "email", "address": "a@b.c", "room_name": "Lemurs"})
    assert stored.event_content() == {
        "display_name": "a...@b...",
        "public_key": "LONG",
        "key_validity_url": f"https://{IS}/_matrix/identity/v2/pubkey/isvalid",
        "public_keys": [
            {"public_key": "LONG", "key_validity_url": f"https://{IS}/_matrix/identity/v2/pubkey/isvalid"},
            {"public_key": "EPH", "key_validity_url": f"https://{IS}/_matrix/identity/v2/pubkey/ephemeral/isvalid"},
        ],
    }


@pytest.mark.parametrize("body", [
    {"token": "", "display_name": "x", "public_key": "K"},
    {"token": "has space", "display_name": "x", "public_key": "K"},
    {"token": "t", "public_key": "K"},
    {"token": "t", "display_name": "x", "public_keys": []},
])
async def test_store_invite_bad_answers(body: dict[str, Any]) -> None:
    ids, _ = _servers(lambda r: httpx.Response(200, json=body))
    with pytest.raises(MatrixError) as info:
        await ids.store_invite(IS, "tok", {"medium": "email", "address": "a@b.c"})
    assert info.value.status == 502


async def test_key_validity() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.example":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"valid": request.url.params["public_key"] == "GOOD"})

    ids, seen = _servers(handler)
    url = f"https://{IS}/_matrix/identity/v2/pubkey/isvalid"
    assert await ids.key_is_valid(url, "GOOD") is True
    assert seen[-1].url.params["public_key"] == "GOOD"
    assert await ids.key_is_valid(url, "BAD") is False
    assert await ids.key_is_valid("https://down.example/isvalid", "GOOD") is False
    asked = len(seen)
    assert await ids.key_is_valid("http://id.example.org/isvalid", "GOOD") is False  # not https
    assert len(seen) == asked


def test_parse_threepid_invite() -> None:
    invite = parse_threepid_invite(
        {"id_server": IS, "id_access_token": "t", "medium": "email", "address": " Alice@Example.ORG "}
    )
    assert (invite.id_server, invite.address) == (IS, "alice@example.org")
    for bad, errcode in (
        ({"id_server": IS, "id_access_token": "t", "medium": "email"}, "M_MISSING_PARAM"),
        ({"id_server": IS, "id_access_token": "t", "medium": "fax", "address": "1"}, "M_INVALID_PARAM"),
        ({"id_server": "a b", "id_access_token": "t", "medium": "email", "address": "a@b"}, "M_INVALID_PARAM"),
        ({"id_server": IS, "id_access_token": 5, "medium": "email", "address": "a@b"}, "M_BAD_JSON"),
    ):
        with pytest.raises(MatrixError) as info:
            parse_threepid_invite(bad)
        assert info.value.errcode == errcode
