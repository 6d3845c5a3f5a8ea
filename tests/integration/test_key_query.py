"""Notary key queries (/_matrix/key/v2/query) and inbound X-Matrix authentication, against real
servers on loopback: the server under test fetches another dendrite-lite's key over TLS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart

from dendrite_lite.api.federation.auth import authenticated_origin
from dendrite_lite.crypto.keys import new_server_key
from dendrite_lite.crypto.signing import verify_json_signature
from dendrite_lite.federation.auth import authorization_header
from tests.conftest import RunningServer, StartServer
from tests.interop.synapse_server import tls_overrides

WHOAMI = "/_matrix/federation/v1/_test/whoami"


def add_whoami(app: Quart, listener: str) -> None:
    async def whoami() -> dict[str, Any]:
        return {"origin": await authenticated_origin()}

    app.add_url_rule(WHOAMI, "test_whoami", whoami, methods=["GET", "PUT"])


# A server holding a keep-alive TLS connection to the peer must stop first: Hypercorn's TLS
# shutdown otherwise waits 30 s (asyncio's ssl_shutdown_timeout) for the idle client's
# close_notify. Tests that make the peer serve a request stop the other server explicitly.
async def tls_peer(start_server: StartServer, tmp_path: Path, **kw: Any) -> RunningServer:
    overrides = tls_overrides(tmp_path / "peer-tls")
    if overrides is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    return await start_server(overrides, **kw)


def https(srv: RunningServer) -> httpx.AsyncClient:
    assert srv.listening.federation_url is not None
    return httpx.AsyncClient(base_url=srv.listening.federation_url, verify=False, timeout=20)


def verify_signed_by(body: dict[str, Any], srv: RunningServer) -> None:
    verify_json_signature(body, srv.config.server.server_name, srv.key.key_id, srv.key.verify_key)


# --- The notary --------------------------------------------------------------------------------

async def test_notary_answers_for_itself(server: RunningServer) -> None:
    name = server.config.server.server_name
    resp = await server.federation.get(f"/_matrix/key/v2/query/{name}")
    assert resp.status_code == 200
    (keys,) = resp.json()["server_keys"]
    assert keys["server_name"] == name
    assert keys["verify_keys"] == {server.key.key_id: {"key": server.key.verify_key_base64}}
    verify_signed_by(keys, server)
    resp = await server.federation.post("/_matrix/key/v2/query", json={"server_keys": {name: {}}})
    assert [k["server_name"] for k in resp.json()["server_keys"]] == [name]
    # The legacy /{keyId} form (removed in v1.6, still used by SyTest and old servers).
    resp = await server.federation.get(f"/_matrix/key/v2/query/{name}/{server.key.key_id}")
    assert resp.status_code == 200
    assert [k["server_name"] for k in resp.json()["server_keys"]] == [name]


async def test_notary_fetches_another_server_over_tls(start_server: StartServer, tmp_path: Path) -> None:
    peer = await tls_peer(start_server, tmp_path)
    notary = await start_server({"federation.verify_tls": False, "federation.trusted_key_servers": ()})
    peer_name = peer.config.server.server_name
    resp = await notary.federation.get(
        f"/_matrix/key/v2/query/{peer_name}",
        params={"minimum_valid_until_ts": int(time.time() * 1000)},
    )
    assert resp.status_code == 200
    (keys,) = resp.json()["server_keys"]
    assert keys["server_name"] == peer_name
    assert keys["verify_keys"] == {peer.key.key_id: {"key": peer.key.verify_key_base64}}
    verify_signed_by(keys, peer)  # the peer's own signature, kept
    verify_signed_by(keys, notary)  # and the notary's
    # POST with a key id, answered from the cache.
    resp = await notary.federation.post("/_matrix/key/v2/query", json={
        "server_keys": {peer_name: {peer.key.key_id: {"minimum_valid_until_ts": 0}}, "bad name!": {}}
    })
    assert [k["verify_keys"] for k in resp.json()["server_keys"]] == [keys["verify_keys"]]
    await notary.stop()  # closes its connection to the peer first (see tls_peer)


async def test_tls_verification_is_on_by_default(start_server: StartServer, tmp_path: Path) -> None:
    peer = await tls_peer(start_server, tmp_path)
    strict = await start_server({"federation.trusted_key_servers": ()})
    resp = await strict.federation.get(f"/_matrix/key/v2/query/{peer.config.server.server_name}")
    # The self-signed certificate is refused, so nothing is known about the peer.
    assert resp.status_code == 200 and resp.json() == {"server_keys": []}


async def test_unreachable_server_gives_no_keys(start_server: StartServer) -> None:
    srv = await start_server({"federation.trusted_key_servers": ()})
    resp = await srv.federation.get("/_matrix/key/v2/query/127.0.0.1:1")
    assert resp.status_code == 200 and resp.json() == {"server_keys": []}
    resp = await srv.federation.post("/_matrix/key/v2/query", json={"server_keys": {}})
    assert resp.json() == {"server_keys": []}


@pytest.mark.parametrize(
    "body, errcode",
    [
        ({}, "M_BAD_JSON"),
        ({"server_keys": []}, "M_BAD_JSON"),
        ({"server_keys": {"a.org": []}}, "M_BAD_JSON"),
        ({"server_keys": {"a.org": {"ed25519:x": {"minimum_valid_until_ts": "soon"}}}}, "M_INVALID_PARAM"),
        ({"server_keys": {f"s{i}.org": {} for i in range(101)}}, "M_LIMIT_EXCEEDED"),
    ],
)
async def test_bad_notary_queries(server: RunningServer, body: dict[str, Any], errcode: str) -> None:
    resp = await server.federation.post("/_matrix/key/v2/query", json=body)
    assert (resp.status_code, resp.json()["errcode"]) == (400, errcode)


async def test_bad_minimum_valid_until_ts(server: RunningServer) -> None:
    resp = await server.federation.get("/_matrix/key/v2/query/a.org?minimum_valid_until_ts=tomorrow")
    assert (resp.status_code, resp.json()["errcode"]) == (400, "M_INVALID_PARAM")


# --- Inbound X-Matrix authentication ----------------------------------------------------------

async def test_signed_request_from_a_real_peer_is_accepted(start_server: StartServer, tmp_path: Path) -> None:
    peer = await tls_peer(start_server, tmp_path)
    srv = await start_server(
        {"federation.verify_tls": False, "federation.trusted_key_servers": ()}, configure_app=add_whoami
    )
    us, them = srv.config.server.server_name, peer.config.server.server_name
    content = {"hello": "world"}
    auth = authorization_header(them, peer.key, us, "PUT", WHOAMI + "?a=b%20c", content)
    resp = await srv.federation.put(WHOAMI + "?a=b%20c", json=content, headers={"Authorization": auth})
    assert (resp.status_code, resp.json()) == (200, {"origin": them})
    auth = authorization_header(them, peer.key, us, "GET", WHOAMI, None)
    resp = await srv.federation.get(WHOAMI, headers={"Authorization": auth})
    assert resp.json() == {"origin": them}
    await srv.stop()


@pytest.fixture
async def guarded(start_server: StartServer) -> RunningServer:
    return await start_server({"federation.trusted_key_servers": ()}, configure_app=add_whoami)


def _bad_headers(us: str) -> dict[str, str | None]:
    stranger = new_server_key("k")
    good = authorization_header("127.0.0.1:1", stranger, us, "GET", WHOAMI, None)
    return {
        "unsigned": None,
        "not x-matrix": "Bearer abc",
        "malformed": 'X-Matrix origin="127.0.0.1:1" key=',
        "no sig": 'X-Matrix origin="127.0.0.1:1",key="ed25519:k"',
        "wrong destination": authorization_header("127.0.0.1:1", stranger, "other.org", "GET", WHOAMI, None),
        "unknown key id": good,  # nobody serves 127.0.0.1:1's keys
    }


@pytest.mark.parametrize(
    "case", ["unsigned", "not x-matrix", "malformed", "no sig", "wrong destination", "unknown key id"]
)
async def test_bad_authorization_is_401(guarded: RunningServer, case: str) -> None:
    header = _bad_headers(guarded.config.server.server_name)[case]
    headers = {"Authorization": header} if header is not None else {}
    resp = await guarded.federation.get(WHOAMI, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["errcode"] == "M_UNAUTHORIZED"


async def test_wrong_signature_is_401(start_server: StartServer, tmp_path: Path) -> None:
    peer = await tls_peer(start_server, tmp_path)
    srv = await start_server(
        {"federation.verify_tls": False, "federation.trusted_key_servers": ()}, configure_app=add_whoami
    )
    us, them = srv.config.server.server_name, peer.config.server.server_name
    impostor = new_server_key(peer.key.key_id.split(":", 1)[1])  # same key id, other key
    cases = [
        authorization_header(them, impostor, us, "GET", WHOAMI, None),
        authorization_header(them, peer.key, us, "GET", WHOAMI + "?x=1", None),  # other uri
        authorization_header(them, peer.key, us, "PUT", WHOAMI, None),  # other method
    ]
    for auth in cases:
        resp = await srv.federation.get(WHOAMI, headers={"Authorization": auth})
        assert (resp.status_code, resp.json()["errcode"]) == (401, "M_UNAUTHORIZED"), auth
    # Content tampering on a PUT.
    auth = authorization_header(them, peer.key, us, "PUT", WHOAMI, {"a": 1})
    resp = await srv.federation.put(WHOAMI, json={"a": 2}, headers={"Authorization": auth})
    assert resp.status_code == 401
    await srv.stop()
