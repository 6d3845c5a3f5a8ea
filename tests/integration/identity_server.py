"""An identity server on loopback for the identity tests: the v2 Identity Service API as the
spec has it (identity-service-api.md), HTTPS with a self-signed certificate, a real ed25519 key.

One per session (`identity_server`, a session fixture registered as a plugin in
tests/conftest.py, like `dns_zone`). The homeservers under test trust its certificate and may
reach loopback for it: `identity_overrides(ids)` are their config overrides. Served (all under
/_matrix/identity/v2; Bearer `TOKEN` where the spec asks for authentication):
- hash_details / lookup (sha256 with the pepper, and none), store-invite (a token, the
  long-term key and a fresh ephemeral key per invite, a redacted display_name);
- 3pid/bind (a session the test validated with `validate`), which then notifies the user's
  homeserver of pending invites: PUT /_matrix/federation/v1/3pid/onbind, the body signed with
  the long-term key, each invite's `signed` {mxid, token} too;
- 3pid/unbind, authenticated as the spec allows: the homeserver's X-Matrix signature (with
  `destination_is`, checked against the key it publishes at /_matrix/key/v2/server), or the
  session's sid and client_secret;
- pubkey/{keyId}, pubkey/isvalid, pubkey/ephemeral/isvalid.
Homeservers are found through `homeservers` (server name -> base URL), which tests fill.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart, Response, jsonify, request
from signedjson.key import (
    decode_verify_key_bytes,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
)
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json

from dendrite_lite.api.listener import ListenerConfig, server_tls_context
from tests.interop.synapse_server import write_self_signed_cert

__all__ = ["TOKEN", "FakeIdentityServer", "identity_overrides", "identity_server"]

TOKEN = "swordfish"  # the one access token it accepts
_V2 = "/_matrix/identity/v2"
_tokens = itertools.count(1)


def _hash(address: str, medium: str, pepper: str) -> str:
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _error(status: int, errcode: str, error: str) -> Response:
    resp = jsonify({"errcode": errcode, "error": error})
    resp.status_code = status
    return resp


@dataclass
class _Invite:
    medium: str
    address: str
    room_id: str
    sender: str
    token: str
    ephemeral: Any  # the SigningKey handed out with it


@dataclass
class FakeIdentityServer:
    name: str = ""  # 127.0.0.1:<port>, once listening
    cert: Path | None = None
    pepper: str = "matrixrocks"
    homeservers: dict[str, str] = field(default_factory=dict)  # server name -> base URL
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)  # (medium, address) -> mxid
    sessions: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # sid -> (secret, medium, address)
    invites: list[_Invite] = field(default_factory=list)
    onbind_answers: list[int] = field(default_factory=list)  # the homeservers' statuses
    unbind_auth: list[str] = field(default_factory=list)  # "signature" | "session", per unbind
    revoked: set[str] = field(default_factory=set)  # ephemeral public keys no longer valid

    def __post_init__(self) -> None:
        self.key = generate_signing_key("0")
        self.old_keys: list[Any] = []

    # --- what tests do -----------------------------------------------------------------------
    @property
    def public_key(self) -> str:
        return encode_verify_key_base64(get_verify_key(self.key))

    def rotate_keys(self) -> None:
        """A new long-term key; the old one is no longer valid (pubkey/isvalid says so)."""
        self.old_keys.append(self.key)
        self.key = generate_signing_key("0")

    def validate(self, medium: str, address: str, client_secret: str) -> str:
        """A validation session the user completed (as if they clicked the emailed link)."""
        sid = f"session{len(self.sessions) + 1}"
        self.sessions[sid] = (client_secret, medium, address)
        return sid

    def bind_out_of_band(self, medium: str, address: str, mxid: str) -> None:
        self.bindings[(medium, address)] = mxid

    def lookup(self, medium: str, address: str) -> str | None:
        return self.bindings.get((medium, address))

    def sign_for_join(self, token: str, mxid: str, sender: str) -> dict[str, Any]:
        """/join's third_party_signed for the invite `token`, signed with its ephemeral key (as
        the spec's /sign-ed25519 would for a client that cannot sign)."""
        invite = next(i for i in self.invites if i.token == token)
        return sign_json({"mxid": mxid, "sender": sender, "token": token}, self.name, invite.ephemeral)

    # --- the API -------------------------------------------------------------------------------
    def app(self) -> Quart:
        app = Quart(__name__)

        @app.before_request
        async def authenticate() -> Response | None:
            path = request.path
            open_paths = ("/3pid/unbind", "/pubkey/")
            if not path.startswith(_V2) or any(path[len(_V2):].startswith(p) for p in open_paths):
                return None
            if path == _V2 or request.headers.get("Authorization") == f"Bearer {TOKEN}":
                return None
            return _error(401, "M_UNAUTHORIZED", "Unrecognised access token")

        @app.get(_V2)
        async def status() -> Response:
            return jsonify({})

        @app.get(f"{_V2}/hash_details")
        async def hash_details() -> Response:
            return jsonify({"lookup_pepper": self.pepper, "algorithms": ["none", "sha256"]})

        @app.post(f"{_V2}/lookup")
        async def lookup() -> Response:
            body = await request.get_json()
            if body.get("pepper") != self.pepper:
                return _error(400, "M_INVALID_PEPPER", "Unknown or invalid pepper - has it been rotated?")
            if body.get("algorithm") == "sha256":
                table = {_hash(a, m, self.pepper): mxid for (m, a), mxid in self.bindings.items()}
            elif body.get("algorithm") == "none":
                table = {f"{a} {m}": mxid for (m, a), mxid in self.bindings.items()}
            else:
                return _error(400, "M_INVALID_PARAM", "Unknown algorithm")
            return jsonify({"mappings": {k: table[k] for k in body.get("addresses", []) if k in table}})

        @app.post(f"{_V2}/store-invite")
        async def store_invite() -> Response:
            body = await request.get_json()
            if not all(isinstance(body.get(k), str) for k in ("medium", "address", "room_id", "sender")):
                return _error(400, "M_MISSING_PARAMS", "medium, address, room_id and sender are required")
            if body["medium"] != "email":
                return _error(400, "M_UNRECOGNIZED", "Only email invites")
            if (body["medium"], body["address"]) in self.bindings:
                return _error(400, "M_THREEPID_IN_USE", "Binding already known")
            ephemeral = generate_signing_key("ephemeral")
            invite = _Invite(
                body["medium"], body["address"], body["room_id"], body["sender"],
                f"tok{next(_tokens)}", ephemeral,
            )
            self.invites.append(invite)
            self.last_store_invite = body
            local, _, domain = body["address"].partition("@")
            base = f"https://{self.name}{_V2}/pubkey"
            return jsonify({
                "token": invite.token,
                "public_keys": [
                    {"public_key": self.public_key, "key_validity_url": f"{base}/isvalid"},
                    {
                        "public_key": encode_verify_key_base64(get_verify_key(ephemeral)),
                        "key_validity_url": f"{base}/ephemeral/isvalid",
                    },
                ],
                "display_name": f"{local[:1]}...@{domain[:1]}...",
            })

        @app.post(f"{_V2}/3pid/bind")
        async def bind() -> Response:
            body = await request.get_json()
            session = self.sessions.get(body.get("sid", ""))
            if session is None or session[0] != body.get("client_secret"):
                return _error(404, "M_NO_VALID_SESSION", "No session matches that sid and client secret")
            _, medium, address = session
            mxid = body["mxid"]
            self.bindings[(medium, address)] = mxid
            await self._notify(medium, address, mxid)
            return jsonify(sign_json({
                "medium": medium, "address": address, "mxid": mxid,
                "not_before": 0, "not_after": 4582425849161, "ts": 0,
            }, self.name, self.key))

        @app.post(f"{_V2}/3pid/unbind")
        async def unbind() -> Response:
            raw = await request.get_data()
            body = json.loads(raw)
            threepid = body.get("threepid") or {}
            medium, address, mxid = threepid.get("medium"), threepid.get("address"), body.get("mxid")
            sid = body.get("sid")
            if sid is not None:
                session = self.sessions.get(sid)
                if session is None or session != (body.get("client_secret"), medium, address):
                    return _error(403, "M_FORBIDDEN", "Invalid session")
                self.unbind_auth.append("session")
            else:
                problem = await self._check_homeserver(request.headers.get("Authorization", ""), body, mxid)
                if problem is not None:
                    return _error(403, "M_FORBIDDEN", problem)
                self.unbind_auth.append("signature")
            if self.bindings.get((medium, address)) == mxid:
                del self.bindings[(medium, address)]
            return jsonify({})

        @app.get(f"{_V2}/pubkey/isvalid")
        async def isvalid() -> Response:
            return jsonify({"valid": request.args.get("public_key") == self.public_key})

        @app.get(f"{_V2}/pubkey/ephemeral/isvalid")
        async def ephemeral_isvalid() -> Response:
            key = request.args.get("public_key")
            issued = {encode_verify_key_base64(get_verify_key(i.ephemeral)) for i in self.invites}
            return jsonify({"valid": key in issued and key not in self.revoked})

        @app.get(f"{_V2}/pubkey/<key_id>")
        async def pubkey(key_id: str) -> Response:
            if key_id != "ed25519:0":
                return _error(404, "M_NOT_FOUND", "The public key was not found")
            return jsonify({"public_key": self.public_key})

        return app

    async def _notify(self, medium: str, address: str, mxid: str) -> None:
        """The pending invites of the address, to the bound user's homeserver."""
        pending = [i for i in self.invites if (i.medium, i.address) == (medium, address)]
        if not pending:
            return
        invites = []
        for invite in pending:
            signed = sign_json({"mxid": mxid, "token": invite.token}, self.name, self.key)
            invites.append({
                "medium": medium, "address": address, "mxid": mxid, "room_id": invite.room_id,
                "sender": invite.sender, "signed": signed,
            })
        body = sign_json(
            {"medium": medium, "address": address, "mxid": mxid, "invites": invites},
            self.name, self.key,
        )
        base = self.homeservers[mxid.split(":", 1)[1]]
        async with httpx.AsyncClient(verify=False, timeout=30) as client:
            resp = await client.put(f"{base}/_matrix/federation/v1/3pid/onbind", json=body)
        self.onbind_answers.append(resp.status_code)
        self.invites = [i for i in self.invites if i not in pending]

    async def _check_homeserver(self, header: str, content: Any, mxid: Any) -> str | None:
        """An X-Matrix signature of mxid's homeserver over the request, `destination_is` us."""
        if not header.startswith("X-Matrix "):
            return "no X-Matrix signature"
        params = dict(
            (k.strip(), v.strip().strip('"')) for k, _, v in
            (p.partition("=") for p in header[len("X-Matrix "):].split(","))
        )
        origin, key_id, sig = params.get("origin"), params.get("key"), params.get("sig")
        if not isinstance(mxid, str) or mxid.split(":", 1)[-1] != origin:
            return f"{origin} is not the homeserver of {mxid}"
        base = self.homeservers.get(origin or "")
        if base is None or not key_id or not sig:
            return "unknown homeserver or incomplete header"
        async with httpx.AsyncClient(verify=False, timeout=10) as client:
            keys = (await client.get(f"{base}/_matrix/key/v2/server")).json()
        published = keys.get("verify_keys", {}).get(key_id, {}).get("key")
        if published is None:
            return f"{origin} publishes no key {key_id}"
        signed = {
            "method": "POST", "uri": request.full_path.rstrip("?"), "origin": origin,
            "destination_is": self.name, "content": content,
            "signatures": {origin: {key_id: sig}},
        }
        raw = base64.b64decode(published + "=" * (-len(published) % 4))
        try:
            verify_signed_json(signed, origin, decode_verify_key_bytes(key_id, raw))
        except SignatureVerifyException as e:
            return f"bad signature: {e}"
        return None


def identity_overrides(ids: FakeIdentityServer) -> dict[str, Any]:
    """Config overrides for a homeserver that uses `ids`: its certificate trusted, loopback
    allowed."""
    return {"identity_server.ca_file": ids.cert, "identity_server.ip_allowlist": ("127.0.0.1/32",)}


@pytest.fixture(scope="session")
async def identity_server() -> AsyncIterator[FakeIdentityServer]:
    from hypercorn.asyncio import serve

    directory = Path(tempfile.mkdtemp(prefix="idsrv-"))
    certs = write_self_signed_cert(directory)
    if certs is None:
        pytest.skip("no way to make a TLS certificate (openssl or cryptography)")
    ids = FakeIdentityServer(cert=certs[0])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    ids.name = f"127.0.0.1:{sock.getsockname()[1]}"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(  # type: ignore[arg-type]
        ids.app(), ListenerConfig(sock, server_tls_context(*certs)), shutdown_trigger=stop.wait,
        mode="asgi",
    ))
    yield ids
    stop.set()
    await task
