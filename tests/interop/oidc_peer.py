"""panva's oidc-provider (tests/interop/oidc_provider/, installed by scripts/test.sh) as the
OpenID Provider of the OIDC single sign-on tests: one per test session, over https on
127.0.0.1 with a self-signed certificate (`OidcPeer.ca_file`, the provider's ca_file), its
clients and accounts from a JSON file the test may rewrite (claims are read at each sign-in).

`sign_in_at_provider` is the browser at the provider: it follows redirects and submits the
provider's login and consent forms (devInteractions: any password) until the provider sends
the browser back to us.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import ssl
import subprocess
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SERVER_NAME
from tests.interop.synapse_server import free_port, write_self_signed_cert
from tests.peers import peer_missing

__all__ = ["CALLBACK", "OidcPeer", "oidc_peer", "sign_in_at_provider"]

PACKAGE = Path(__file__).parent / "oidc_provider"
CALLBACK = f"https://{SERVER_NAME}/_dendrite_lite/client/oidc/callback"
SECRET = "client-secret-for-tests"


@dataclass
class OidcPeer:
    issuer: str
    ca_file: Path
    setup_file: Path
    accounts: dict[str, dict[str, Any]]

    def set_claims(self, account: str, **claims: Any) -> None:
        self.accounts[account] = {**self.accounts.get(account, {}), **claims}
        self._write()

    def _write(self) -> None:
        self.setup_file.write_text(json.dumps({"clients": CLIENTS, "accounts": self.accounts}))


def _client(client_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": client_id, "client_secret": SECRET, "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code"], "response_types": ["code"], **extra,
    }


CLIENTS = [
    _client("dendrite"),
    _client("dendrite-public", token_endpoint_auth_method="none"),
    # Signs its ID tokens with the client secret (HS256), not a key of the JWKS: an ID token we
    # cannot verify.
    _client("dendrite-hs256", id_token_signed_response_alg="HS256"),
]

ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice-sub": {"preferred_username": "Alice", "name": "Alice Liddell",
                  "email": "Alice@Example.org", "email_verified": True, "groups": ["family"]},
    "bob-sub": {"preferred_username": "bob", "name": "Bob", "groups": ["family"]},
    "mallory-sub": {"preferred_username": "mallory", "name": "Mallory", "groups": ["strangers"]},
}


@pytest.fixture(scope="session")
async def oidc_peer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OidcPeer]:
    node = shutil.which("node")
    if node is None or not (PACKAGE / "node_modules" / "oidc-provider").is_dir():
        peer_missing("node or tests/interop/oidc_provider/node_modules (npm install) missing")
    workdir = tmp_path_factory.mktemp("oidc")
    cert = write_self_signed_cert(workdir)
    if cert is None:
        peer_missing("no way to make a certificate (openssl)")
    port = free_port()
    peer = OidcPeer(f"https://127.0.0.1:{port}", cert[0], workdir / "setup.json", dict(ACCOUNTS))
    peer._write()
    proc = await asyncio.create_subprocess_exec(
        node, str(PACKAGE / "server.mjs"), str(port), str(cert[0]), str(cert[1]),
        str(peer.setup_file), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        await asyncio.wait_for(_ready(proc.stdout), 20)
        yield peer
    finally:
        proc.terminate()
        await proc.wait()


async def _ready(out: asyncio.StreamReader) -> None:
    said = b""
    # Its warnings come first (Node 20 is "unsupported" by v9 but works; in-memory storage).
    while (line := await out.readline()).strip() != b"ready":
        said += line
        assert line, f"oidc-provider exited: {said.decode(errors='replace')}"


def browser(peer: OidcPeer) -> httpx.AsyncClient:
    """A browser for the provider's pages: it keeps the provider's cookies (its session)."""
    tls = ssl.create_default_context(cafile=str(peer.ca_file))
    return httpx.AsyncClient(verify=tls, follow_redirects=False)


async def sign_in_at_provider(client: httpx.AsyncClient, location: str, login: str | None) -> str:
    """From the provider's authorization URL to where it sends the browser back (our callback,
    any other site's URL): `login` signs in and consents; None aborts at the first form (the
    user's "no")."""
    resp = await client.get(location)
    for _ in range(12):
        if resp.is_redirect:
            target = urllib.parse.urljoin(str(resp.url), resp.headers["location"])
            if not target.startswith("https://127.0.0.1:"):
                return target
            resp = await client.get(target)
            continue
        assert resp.status_code == 200, resp.text
        form = re.search(r'<form[^>]*action="([^"]+)"', resp.text)
        prompt = re.search(r'name="prompt" value="(\w+)"', resp.text)
        assert form and prompt, resp.text
        if login is None:
            abort = re.search(r'href="([^"]*/abort)"', resp.text)
            assert abort, resp.text
            resp = await client.get(urllib.parse.urljoin(str(resp.url), abort[1]))
            continue
        data = {"prompt": prompt[1]}
        if prompt[1] == "login":
            data.update(login=login, password="anything")
        resp = await client.post(urllib.parse.urljoin(str(resp.url), form[1]), data=data)
    raise AssertionError("the provider never sent the browser back")
