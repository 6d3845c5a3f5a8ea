"""The outbound federation client over httpx.MockTransport: signing, Host/SNI, errors, limits."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from dendrite_lite.config import Config, FederationConfig, ServerConfig
from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.crypto.signing import ServerVerifyKey
from dendrite_lite.delegation.discovery import ServerDiscovery, SrvRecord
from dendrite_lite.federation.auth import verify_request
from dendrite_lite.outbound_http import new_client
from dendrite_lite.federation.client import (
    FederationClient,
    RemoteError,
    UnreachableError,
    make_ssl_context,
)

US = "us.example.org"
KEY = new_server_key("c1")


class Srv:
    def __init__(self, records: dict[str, list[SrvRecord]] | None = None) -> None:
        self.records = records or {}

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        return self.records.get(name, [])


def make_client(handler, srv: Srv | None = None, **kw) -> FederationClient:
    transport = httpx.MockTransport(handler)
    discovery = ServerDiscovery(new_client(transport), srv or Srv())
    return FederationClient(US, KEY, discovery, make_ssl_context(True), transport, **kw)


class OurKeys:
    async def get_key(self, server_name: str, key_id: str, minimum_valid_until_ts: int):
        return ServerVerifyKey(US, KEY.key_id, KEY.verify_key, minimum_valid_until_ts + 1)


async def test_signed_put_verifies_on_the_receiving_side() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"pdus": {}})

    client = make_client(handler)
    body = {"origin": US, "pdus": [], "edus": [{"edu_type": "m.typing", "content": {"é": 1}}]}
    answer = await client.put_json("them.example.org:8448", "/_matrix/federation/v1/send/t%201", body)
    assert answer == {"pdus": {}}
    (req,) = seen
    assert str(req.url) == "https://them.example.org:8448/_matrix/federation/v1/send/t%201"
    assert req.headers["host"] == "them.example.org:8448"
    assert req.headers["content-type"] == "application/json"
    assert json.loads(req.content) == body
    origin = await verify_request(
        OurKeys(), "them.example.org:8448", "PUT", req.url.raw_path.decode(), json.loads(req.content),
        req.headers["authorization"], 0,
    )
    assert origin == US
    await client.aclose()


async def test_query_string_is_part_of_the_signed_uri() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = make_client(handler)
    await client.get_json("1.2.3.4:99", "/_matrix/federation/v1/query/profile",
                          query={"user_id": "@a:b.org", "field": "displayname"})
    uri = seen[0].url.raw_path.decode()
    assert uri == "/_matrix/federation/v1/query/profile?user_id=%40a%3Ab.org&field=displayname"
    assert seen[0].headers["host"] == "1.2.3.4:99"
    assert "sni_hostname" not in seen[0].extensions
    assert await verify_request(OurKeys(), "1.2.3.4:99", "GET", uri, None, seen[0].headers["authorization"], 0) == US


async def test_unsigned_request_has_no_authorization() -> None:
    seen: list[httpx.Request] = []
    client = make_client(lambda r: seen.append(r) or httpx.Response(200, json={}))
    await client.get_json("a.org:1", "/_matrix/key/v2/server", sign=False)
    assert "authorization" not in seen[0].headers


async def test_srv_targets_tried_in_order_with_sni_of_the_server_name() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.startswith("/.well-known"):
            return httpx.Response(404)
        if request.url.host == "down.example.net":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"ok": True})

    srv = Srv({"_matrix-fed._tcp.them.org": [SrvRecord(1, 0, 8001, "down.example.net"),
                                             SrvRecord(2, 0, 8002, "up.example.net")]})
    client = make_client(handler, srv)
    assert await client.get_json("them.org", "/_matrix/federation/v1/version") == {"ok": True}
    fed = [r for r in seen if not r.url.path.startswith("/.well-known")]
    assert [str(r.url.netloc.decode()) for r in fed] == ["down.example.net:8001", "up.example.net:8002"]
    assert all(r.headers["host"] == "them.org" for r in fed)
    assert all(r.extensions["sni_hostname"] == "them.org" for r in fed)


async def test_all_targets_down_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = make_client(handler)
    with pytest.raises(UnreachableError) as e:
        await client.get_json("them.org:1", "/_matrix/federation/v1/version")
    assert e.value.destination == "them.org:1" and "ConnectError" in e.value.message


async def test_remote_error_keeps_status_and_errcode() -> None:
    client = make_client(lambda r: httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "no"}))
    with pytest.raises(RemoteError) as e:
        await client.get_json("them.org:1", "/x")
    assert (e.value.status, e.value.errcode, e.value.body["error"]) == (403, "M_FORBIDDEN", "no")
    client = make_client(lambda r: httpx.Response(502, content=b"<html>bad gateway"))
    with pytest.raises(RemoteError) as e:
        await client.get_json("them.org:1", "/x")
    assert (e.value.status, e.value.errcode, e.value.body) == (502, None, None)


async def test_non_json_success_is_unreachable() -> None:
    client = make_client(lambda r: httpx.Response(200, content=b"hello"))
    with pytest.raises(UnreachableError, match="non-JSON"):
        await client.get_json("them.org:1", "/x")


async def test_response_size_limit() -> None:
    big = {"x": "a" * 2000}
    client = make_client(lambda r: httpx.Response(200, json=big), max_response_bytes=1000)
    with pytest.raises(UnreachableError, match="larger than 1000"):
        await client.get_json("them.org:1", "/x")
    assert await client.get_json("them.org:1", "/x", max_response_bytes=5000) == big

    async def stream():
        for _ in range(10):
            yield b"a" * 200

    chunked = make_client(lambda r: httpx.Response(200, content=stream()), max_response_bytes=1000)
    with pytest.raises(UnreachableError, match="larger than"):
        await chunked.get_json("them.org:1", "/x")


async def test_timeout_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    client = make_client(handler)
    with pytest.raises(UnreachableError, match="ReadTimeout"):
        await client.get_json("them.org:1", "/x", timeout_s=0.5)


async def test_invalid_destination_is_unreachable() -> None:
    client = make_client(lambda r: httpx.Response(200, json={}))
    with pytest.raises(UnreachableError, match="not a valid server name"):
        await client.get_json("bad name", "/x")


async def test_given_transport_is_used_for_requests_and_well_known() -> None:
    seen: list[str] = []
    client = FederationClient(
        US, KEY, transport=httpx.MockTransport(lambda r: seen.append(str(r.url)) or httpx.Response(404)),
        srv=Srv(),
    )
    with pytest.raises(RemoteError):
        await client.get_json("a.org", "/x")
    assert seen == ["https://a.org/.well-known/matrix/server", "https://a.org:8448/x"]
    await client.aclose()
    assert client.http.is_closed and client.discovery.http.is_closed


def test_tls_verification_follows_config(tmp_path: Path) -> None:
    on = FederationClient.from_config(Config(server=ServerConfig(server_name=US)), KEY)
    assert on.ssl_context.verify_mode == ssl.CERT_REQUIRED and on.ssl_context.check_hostname
    off = FederationClient.from_config(
        Config(server=ServerConfig(server_name=US), federation=FederationConfig(verify_tls=False)), KEY
    )
    assert off.ssl_context.verify_mode == ssl.CERT_NONE and not off.ssl_context.check_hostname
    missing = tmp_path / "nope.pem"
    with pytest.raises(FileNotFoundError):
        FederationClient.from_config(
            Config(server=ServerConfig(server_name=US), federation=FederationConfig(ca_file=missing)), KEY
        )
