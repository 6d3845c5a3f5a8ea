"""The first endpoints over real HTTP: /versions, /health, well-known, keys, federation version."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from signedjson.key import decode_verify_key_base64, decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json

from dendrite_lite import __version__
from dendrite_lite.api.cors import CORS_HEADERS
from dendrite_lite.api.wellknown.matrix import delegated_server
from tests.conftest import SERVER_NAME, RunningServer, StartServer, make_config
from tests.spec_schema import assert_matches_operation, assert_matches_schema

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000


def assert_cors(resp: httpx.Response) -> None:
    for name, value in CORS_HEADERS.items():
        assert resp.headers.get(name) == value, name


async def test_versions(client: httpx.AsyncClient) -> None:
    resp = await client.get("/_matrix/client/versions")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert_cors(resp)
    body = resp.json()
    assert body["versions"][0] == "r0.6.1"
    assert body["versions"][1:] == [f"v1.{n}" for n in range(1, 13)]
    assert body["unstable_features"] == {
        "org.matrix.msc3814": True,
        "org.matrix.simplified_msc3575": True,
        "org.matrix.msc4306": True,
        "org.matrix.msc4140": True,  # delayed events, on by default (calls.max_event_delay_s)
    }
    assert_matches_operation("client-server/versions.yaml", "/versions", "get", 200, body)


async def test_health(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    assert resp.text == "OK"
    assert resp.headers["content-type"].startswith("text/plain")


async def test_wellknown_client(client: httpx.AsyncClient) -> None:
    resp = await client.get("/.well-known/matrix/client")
    assert resp.status_code == 200
    assert_cors(resp)
    body = resp.json()
    # public_baseurl defaults to https://<server_name>/; the trailing slash is dropped.
    assert body == {"m.homeserver": {"base_url": f"https://{SERVER_NAME}"}}
    assert_matches_operation("client-server/wellknown.yaml", "/matrix/client", "get", 200, body)
    assert_matches_schema("client-server/definitions/wellknown/full.yaml", body)


async def test_wellknown_server_default(client: httpx.AsyncClient) -> None:
    resp = await client.get("/.well-known/matrix/server")
    assert resp.status_code == 200
    assert_cors(resp)
    body = resp.json()
    assert body == {"m.server": f"{SERVER_NAME}:443"}
    assert_matches_operation("server-server/wellknown.yaml", "/matrix/server", "get", 200, body)


async def test_wellknown_follows_public_baseurl(start_server: StartServer) -> None:
    srv = await start_server({"server.public_baseurl": "https://matrix.example.org:8443/"})
    server_body = (await srv.client.get("/.well-known/matrix/server")).json()
    client_body = (await srv.client.get("/.well-known/matrix/client")).json()
    assert server_body == {"m.server": "matrix.example.org:8443"}
    assert client_body == {"m.homeserver": {"base_url": "https://matrix.example.org:8443"}}


async def test_server_keys(server: RunningServer) -> None:
    before = int(time.time() * 1000)
    resp = await server.federation.get("/_matrix/key/v2/server")
    after = int(time.time() * 1000)
    assert resp.status_code == 200
    body = resp.json()
    assert_matches_operation("server-server/keys_server.yaml", "/server", "get", 200, body)
    assert body["server_name"] == SERVER_NAME
    assert body["old_verify_keys"] == {}
    assert list(body["verify_keys"]) == [server.key.key_id]
    assert body["verify_keys"][server.key.key_id]["key"] == server.key.verify_key_base64
    assert before + SEVEN_DAYS_MS <= body["valid_until_ts"] <= after + SEVEN_DAYS_MS
    assert list(body["signatures"]) == [SERVER_NAME]
    assert list(body["signatures"][SERVER_NAME]) == [server.key.key_id]


async def test_server_keys_verify_with_published_key(client: httpx.AsyncClient) -> None:
    body = (await client.get("/_matrix/key/v2/server")).json()
    (key_id, published), = body["verify_keys"].items()
    algorithm, version = key_id.split(":")
    verify_key = decode_verify_key_base64(algorithm, version, published["key"])
    verify_signed_json(body, SERVER_NAME, verify_key)
    # And the signature covers the content: a changed field must not verify.
    tampered = dict(body, valid_until_ts=body["valid_until_ts"] + 1)
    with pytest.raises(SignatureVerifyException):
        verify_signed_json(tampered, SERVER_NAME, verify_key)
    other = decode_verify_key_bytes(key_id, bytes(32))
    with pytest.raises(SignatureVerifyException):
        verify_signed_json(body, SERVER_NAME, other)


async def test_federation_version(server: RunningServer) -> None:
    resp = await server.federation.get("/_matrix/federation/v1/version")
    assert resp.status_code == 200
    body = resp.json()
    assert body == {"server": {"name": "dendrite-lite", "version": __version__}}
    assert_matches_operation("server-server/version.yaml", "/version", "get", 200, body)


@pytest.mark.parametrize(
    "path",
    [
        "/_matrix/key/v2/server",
        "/_matrix/federation/v1/version",
        "/.well-known/matrix/server",
        "/.well-known/matrix/client",
        "/health",
    ],
)
async def test_shared_routes_on_both_listeners(server: RunningServer, path: str) -> None:
    assert (await server.client.get(path)).status_code == 200
    assert (await server.federation.get(path)).status_code == 200


async def test_federation_listener_hides_client_api(server: RunningServer) -> None:
    resp = await server.federation.get("/_matrix/client/versions")
    assert resp.status_code == 404
    assert resp.json()["errcode"] == "M_UNRECOGNIZED"
    assert_cors(resp)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, f"{SERVER_NAME}:443"),
        ({"server.public_baseurl": "https://matrix.example.org/"}, "matrix.example.org:443"),
        ({"server.public_baseurl": "https://[2001:db8::1]:8443/"}, "[2001:db8::1]:8443"),
        ({"tls.mode": "files", "listen.federation": "0.0.0.0:8448"}, f"{SERVER_NAME}:8448"),
        (
            {"tls.mode": "acme", "listen.federation": "", "listen.client": "[::]:443"},
            f"{SERVER_NAME}:443",
        ),
        # Per listener TLS: the appliance layout (client plain behind a local proxy, federation
        # with the certificate) is reached directly; plain federation goes through the proxy.
        (
            {"tls.mode": "files", "listen.client_tls": False, "listen.federation": "0.0.0.0:8448",
             "listen.federation_tls": True},
            f"{SERVER_NAME}:8448",
        ),
        (
            {"tls.mode": "files", "listen.federation": "0.0.0.0:8448",
             "listen.federation_tls": False},
            f"{SERVER_NAME}:443",
        ),
    ],
)
def test_delegated_server_choice(
    overrides: dict[str, object], expected: str, tmp_path: Path
) -> None:
    assert delegated_server(make_config(tmp_path, overrides)) == expected
