"""TLS per listener (issue 12 item 2) over real sockets: each listener speaks TLS or plain HTTP
as listen.client_tls / listen.federation_tls say, every TLS listener serving the one shared
context, and configs without the switches meaning what they meant before."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path

import httpx
import pytest

from dendrite_lite.server import StartupError
from tests.conftest import StartServer
from tests.integration.test_server_lifecycle import _peer_certificate, _self_signed, two_certificates

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

KEY_URL = "/_matrix/key/v2/server"


def _files(cert: Path, key: Path, **listen: bool) -> dict[str, object]:
    overrides: dict[str, object] = {"tls.mode": "files", "tls.cert_path": cert, "tls.key_path": key}
    overrides.update({f"listen.{name}": value for name, value in listen.items()})
    return overrides


async def _get(url: str, path: str, verify: ssl.SSLContext | bool = True) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, verify=verify, timeout=5) as c:
        return await c.get(path)


async def test_appliance_layout_client_plain_federation_tls(
    start_server: StartServer, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    srv = await start_server(_files(cert, key, client_tls=False, federation_tls=True))
    assert srv.listening.schemes == {"client": "http", "federation": "https"}
    assert srv.listening.client_url.startswith("http://")
    assert srv.listening.federation_url is not None
    assert srv.listening.federation_url.startswith("https://")
    trust = ssl.create_default_context(cafile=str(cert))

    # The client API over plain HTTP, as the local reverse proxy forwards it (conftest's client).
    resp = await srv.client.get("/_matrix/client/versions")
    assert resp.status_code == 200 and "versions" in resp.json()
    # Federation over HTTPS with the certificate...
    resp = await _get(srv.listening.federation_url, KEY_URL, trust)
    assert resp.status_code == 200 and resp.json()["server_name"] == srv.config.server.server_name
    # ...and not over plain HTTP.
    plain_federation = srv.listening.federation_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        await _get(plain_federation, "/health")
    # Nor HTTPS on the plain client listener.
    with pytest.raises(httpx.HTTPError):
        await _get(srv.listening.client_url.replace("http://", "https://"), "/health", trust)


async def test_reverse_layout_client_tls_federation_plain(
    start_server: StartServer, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    srv = await start_server(_files(cert, key, client_tls=True, federation_tls=False))
    assert srv.listening.schemes == {"client": "https", "federation": "http"}
    assert srv.listening.federation_url is not None
    trust = ssl.create_default_context(cafile=str(cert))

    resp = await _get(srv.listening.client_url, "/_matrix/client/versions", trust)
    assert resp.status_code == 200
    resp = await srv.federation.get(KEY_URL)  # conftest's client: plain http:// base_url
    assert resp.status_code == 200
    with pytest.raises(httpx.HTTPError):
        await _get(srv.listening.client_url.replace("https://", "http://"), "/health")
    with pytest.raises(httpx.HTTPError):
        await _get(srv.listening.federation_url.replace("http://", "https://"), "/health", trust)


async def test_files_mode_without_the_switches_is_tls_on_both_as_before(
    start_server: StartServer, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    srv = await start_server(_files(cert, key))
    assert (srv.config.listen.client_tls, srv.config.listen.federation_tls) == (None, None)
    assert srv.listening.schemes == {"client": "https", "federation": "https"}
    trust = ssl.create_default_context(cafile=str(cert))
    for url in (srv.listening.client_url, srv.listening.federation_url):
        assert url is not None
        assert (await _get(url, KEY_URL, trust)).status_code == 200


async def test_proxy_mode_without_the_switches_is_plain_on_both(start_server: StartServer) -> None:
    srv = await start_server()
    assert srv.listening.schemes == {"client": "http", "federation": "http"}
    assert srv.listening.tls is None
    assert (await srv.client.get("/health")).status_code == 200
    assert (await srv.federation.get("/health")).status_code == 200


async def test_tls_listener_with_proxy_mode_is_a_startup_error(start_server: StartServer) -> None:
    # parse_config refuses it; a Config built in code is refused at start, naming the key.
    with pytest.raises(StartupError) as info:
        await start_server({"listen.federation_tls": True})
    assert str(info.value) == (
        'listen.federation_tls: true needs a certificate, but tls.mode = "proxy" has none'
    )


async def test_certificate_swap_reaches_the_tls_listener_of_a_mixed_layout(
    start_server: StartServer, tmp_path: Path
) -> None:
    first, second, both = two_certificates(tmp_path)
    srv = await start_server(_files(first[0], first[1], client_tls=False, federation_tls=True))
    assert srv.listening.tls is not None and srv.listening.federation_url is not None
    url = srv.listening.federation_url
    old = await asyncio.to_thread(_peer_certificate, url, both)
    assert old == ssl.PEM_cert_to_DER_cert(first[0].read_text())

    srv.listening.tls.load_cert_chain(second[0], second[1])  # what ACME renewal will do

    new = await asyncio.to_thread(_peer_certificate, url, both)
    assert new == ssl.PEM_cert_to_DER_cert(second[0].read_text())
    assert (await srv.client.get("/health")).status_code == 200  # the plain listener unchanged
