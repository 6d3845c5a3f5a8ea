"""Media across dendrite-lite and a real Synapse (TLS on loopback): Synapse's users download our
users' media (Synapse fetching it from our /_matrix/federation/v1/media/download), our users
download and thumbnail Synapse's (we fetch it once, however many ask at the same moment, and
serve the cached copy after)."""

from __future__ import annotations

import asyncio
import io
import itertools
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.integration.account_helpers import auth_header, register
from tests.interop.synapse_server import SynapseServer
from tests.interop.test_synapse_joins import clients, dendrite_peer  # noqa: F401  (fixtures)

pytestmark = pytest.mark.interop

_names = itertools.count(1)
V1 = "/_matrix/client/v1/media"


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (250, 180, 20)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def _upload(client: httpx.AsyncClient, token: str, data: bytes, content_type: str, name: str) -> str:
    resp = await client.post(
        "/_matrix/media/v3/upload", params={"filename": name}, content=data,
        headers={**auth_header(token), "Content-Type": content_type},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["content_uri"])


async def test_synapse_downloads_our_media(synapse: SynapseServer, clients: Any) -> None:
    ours, theirs = clients
    alice = (await register(ours, f"mediaowner{next(_names)}"))["access_token"]
    bob = (await asyncio.to_thread(synapse.register, f"mediareader{next(_names)}"))["access_token"]
    data = _jpeg(64, 48)
    mxc = await _upload(ours, alice, data, "image/jpeg", "photo.jpg")
    resp = await theirs.get(f"{V1}/download/{mxc[6:]}", headers=auth_header(bob))
    assert resp.status_code == 200, resp.text
    assert resp.content == data
    assert resp.headers["content-type"] == "image/jpeg"
    assert "photo.jpg" in resp.headers["content-disposition"]
    # Synapse's thumbnail of our media is made from the copy it fetched.
    thumb = await theirs.get(f"{V1}/thumbnail/{mxc[6:]}", params={"width": 32, "height": 32, "method": "crop"}, headers=auth_header(bob))
    assert thumb.status_code == 200, thumb.text
    assert Image.open(io.BytesIO(thumb.content)).size == (32, 32)


async def test_we_fetch_synapse_media_once_for_concurrent_askers(synapse: SynapseServer, clients: Any) -> None:
    ours, theirs = clients
    bob = (await asyncio.to_thread(synapse.register, f"mediaowner{next(_names)}"))["access_token"]
    alice = (await register(ours, f"mediareader{next(_names)}"))["access_token"]
    data = _jpeg(900, 700)
    mxc = await _upload(theirs, bob, data, "image/jpeg", "big.jpg")
    media_id = mxc.rsplit("/", 1)[1]

    answers = await asyncio.gather(*(
        ours.get(f"{V1}/download/{mxc[6:]}", headers=auth_header(alice)) for _ in range(8)
    ))
    for resp in answers:
        assert resp.status_code == 200, resp.text
        assert resp.content == data
        assert resp.headers["content-type"] == "image/jpeg"
    thumb = await ours.get(f"{V1}/thumbnail/{mxc[6:]}", params={"width": 96, "height": 96, "method": "crop"}, headers=auth_header(alice))
    assert thumb.status_code == 200, thumb.text
    assert Image.open(io.BytesIO(thumb.content)).size == (96, 96)
    # One federation request reached Synapse for all of it.
    log = synapse.log_path.read_text(errors="replace")
    asked = [line for line in log.splitlines()
             if "Processed request" in line and f"/_matrix/federation/v1/media/download/{media_id}" in line]
    assert len(asked) == 1, asked


async def test_unknown_synapse_media_is_404(synapse: SynapseServer, clients: Any) -> None:
    ours, _ = clients
    alice = (await register(ours, f"mediareader{next(_names)}"))["access_token"]
    resp = await ours.get(f"{V1}/download/{synapse.server_name}/NoSuchMediaHere", headers=auth_header(alice))
    assert (resp.status_code, resp.json()["errcode"]) == (404, "M_NOT_FOUND")
