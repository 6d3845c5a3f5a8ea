"""Our requests to identity servers (identity-service-api.md, v2), on behalf of our users.

Clients name the identity server (`id_server`, host[:port]) and hand us their
`id_access_token`, which goes to it as `Authorization: Bearer`. What we ask:
- POST /3pid/bind (client-server /account/3pid/bind): publish "address -> user";
- POST /3pid/unbind: signed by us as the user's homeserver (X-Matrix with `destination_is`, the
  form Sydent verifies and Synapse sends), so no token is needed;
- GET /hash_details + POST /lookup (third-party invites): the address hashed with the server's
  pepper (sha256, or plain text when the server offers only `none`), asked once more with a
  fresh pepper if the server rotated it meanwhile;
- POST /store-invite: a pending invite for an address nobody bound yet;
- GET <key_validity_url>?public_key=: whether a key that signed a third-party invite is still
  valid (the resident server's duty, client-server §Third-party invites).

Every request goes to https (the spec: "HTTPS is required") through `GuardedTransport`
(media/preview_guard.py): a client chooses the host, so, as for URL previews, only public
addresses are reached unless `identity_server.ip_allowlist` names others. TLS is checked
against the system CAs plus `identity_server.ca_file`, unless `identity_server.verify_tls` is
false (a test setup: SyTest's identity server has a self-signed certificate for "localhost").

Errors are Matrix errors, never a 500: the identity server's own JSON error is passed on with
its 4xx status ("Homeservers should simply proxy any errors received by the identity server");
anything else (unreachable, 5xx, not JSON) is 502 M_UNKNOWN naming the server; a host we may not
reach is 403 M_SERVER_NOT_TRUSTED.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from dendrite_lite.crypto.canonical import encode_canonical_json
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import sign_json
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.events.ids import is_valid_server_name, is_valid_user_id
from dendrite_lite.request_body import required_field
from dendrite_lite.users.threepids import canonical_address

if TYPE_CHECKING:
    import httpx

__all__ = [
    "IdentityServers",
    "MEDIUMS",
    "PublicKey",
    "StoredInvite",
    "ThreepidInvite",
    "lookup_hash",
    "parse_threepid_invite",
    "unbind_authorization",
]

log = logging.getLogger(__name__)

_V2 = "/_matrix/identity/v2"
TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024
# store-invite's token: "[0-9a-zA-Z.=_-]", at most 255 characters, not empty.
_TOKEN_RE = re.compile(r"[0-9A-Za-z.=_-]{1,255}")


MEDIUMS = ("email", "msisdn")  # appendices §3PID Types


@dataclass(frozen=True, slots=True)
class ThreepidInvite:
    """An invite3pid object (definitions/invite_3pid.yaml): whom to invite, and the identity
    server that knows them."""

    id_server: str
    id_access_token: str
    medium: str
    address: str


def parse_threepid_invite(body: Mapping[str, Any], name: str = "") -> ThreepidInvite:
    """400 M_MISSING_PARAM / M_BAD_JSON / M_INVALID_PARAM naming the field (`name` prefixes
    it for an entry of createRoom's invite_3pid)."""
    fields = {
        key: required_field(body, key, "string", name=f"{name}{key}")
        for key in ("id_server", "id_access_token", "medium", "address")
    }
    if fields["medium"] not in MEDIUMS:
        raise MatrixError(Errcode.INVALID_PARAM, f"{name}medium must be one of {', '.join(MEDIUMS)}")
    if not is_valid_server_name(fields["id_server"]):
        raise MatrixError(Errcode.INVALID_PARAM, f"{name}id_server must be a host name")
    fields["address"] = canonical_address(fields["medium"], fields["address"])
    return ThreepidInvite(**fields)


def lookup_hash(address: str, medium: str, pepper: str) -> str:
    """The sha256 lookup form: URL-safe unpadded base64 of SHA-256("<address> <medium> <pepper>")."""
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def unbind_authorization(
    origin: str, key: ServerKey, id_server: str, uri: str, content: Any
) -> str:
    """X-Matrix for a request to an identity server: the signed object names the identity
    server as `destination_is` (not `destination`), and the header carries no destination."""
    request = {
        "method": "POST", "uri": uri, "origin": origin, "destination_is": id_server,
        "content": content,
    }
    sig = sign_json(request, origin, key)["signatures"][origin][key.key_id]
    return f'X-Matrix origin="{origin}",key="{key.key_id}",sig="{sig}"'


@dataclass(frozen=True, slots=True)
class PublicKey:
    public_key: str
    key_validity_url: str

    def to_json(self) -> dict[str, str]:
        return {"public_key": self.public_key, "key_validity_url": self.key_validity_url}


@dataclass(frozen=True, slots=True)
class StoredInvite:
    """What /store-invite answered: the m.room.third_party_invite's state key and content."""

    token: str
    display_name: str
    public_keys: tuple[PublicKey, ...]

    def event_content(self) -> dict[str, Any]:
        """m.room.third_party_invite: `public_key`/`key_validity_url` are the first (the long
        term) key, for servers that read only those."""
        first = self.public_keys[0]
        return {
            "display_name": self.display_name,
            "key_validity_url": first.key_validity_url,
            "public_key": first.public_key,
            "public_keys": [k.to_json() for k in self.public_keys],
        }


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any  # parsed JSON, or None when the body is not JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def errcode(self) -> str | None:
        code = self.body.get("errcode") if isinstance(self.body, dict) else None
        return code if isinstance(code, str) else None


class IdentityServers:
    def __init__(
        self,
        *,
        server_name: str,
        key: ServerKey,
        verify_tls: bool = True,
        ca_file: Path | None = None,
        ip_allowlist: Sequence[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,  # tests: httpx.MockTransport
    ) -> None:
        if ca_file is not None and not ca_file.is_file():
            raise FileNotFoundError(f"identity_server.ca_file {ca_file} does not exist")
        self._server_name = server_name
        self._key = key
        self._verify_tls = verify_tls
        self._ca_file = ca_file
        self._allow = tuple(ip_allowlist)
        self._transport = transport
        # Made at the first request, as the push gateway's: httpx stays out of a server that
        # never talks to an identity server.
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            from dendrite_lite.federation.client import make_ssl_context
            from dendrite_lite.media.preview_guard import AddressPolicy, GuardedTransport
            from dendrite_lite.outbound_http import new_client

            context = make_ssl_context(self._verify_tls)
            if self._verify_tls and self._ca_file is not None:
                context.load_verify_locations(cafile=self._ca_file)
            transport = self._transport or GuardedTransport(AddressPolicy(self._allow), ssl_context=context)
            self._client = new_client(transport)
        return self._client

    # --- the calls ---------------------------------------------------------------------------
    async def bind(
        self, id_server: str, id_access_token: str, sid: str, client_secret: str, mxid: str
    ) -> tuple[str, str]:
        """POST /3pid/bind; the (medium, address) the identity server bound."""
        answer = await self._request(
            "POST", id_server, "/3pid/bind", token=id_access_token,
            body={"sid": sid, "client_secret": client_secret, "mxid": mxid},
        )
        body = self._ok(id_server, answer, "bind")
        medium, address = body.get("medium"), body.get("address")
        if not isinstance(medium, str) or not isinstance(address, str):
            raise _bad_answer(id_server, "its bind answer has no medium and address")
        return medium, address

    async def unbind(self, id_server: str, mxid: str, medium: str, address: str) -> bool:
        """POST /3pid/unbind, signed by us. True: unbound. False: the server does not support
        unbinding (400, 404 or 501 without a Matrix error: v2_associations.yaml). Its Matrix
        errors are raised as they came."""
        path = "/3pid/unbind"
        content = {"mxid": mxid, "threepid": {"medium": medium, "address": address}}
        auth = unbind_authorization(self._server_name, self._key, id_server, _V2 + path, content)
        answer = await self._request("POST", id_server, path, body=content, authorization=auth)
        if answer.ok:
            return True
        if answer.status in (400, 404, 501) and answer.errcode is None:
            return False
        self._ok(id_server, answer, "unbind")  # raises
        return False  # pragma: no cover

    async def lookup(
        self, id_server: str, id_access_token: str, medium: str, address: str
    ) -> str | None:
        """The user bound to the address at the identity server, if any."""
        for attempt in range(2):
            details = self._ok(
                id_server,
                await self._request("GET", id_server, "/hash_details", token=id_access_token),
                "hash_details",
            )
            pepper = details.get("lookup_pepper")
            algorithms = details.get("algorithms")
            if not isinstance(pepper, str) or not isinstance(algorithms, list):
                raise _bad_answer(id_server, "its /hash_details answer lacks lookup_pepper or algorithms")
            if "sha256" in algorithms:
                algorithm, key = "sha256", lookup_hash(address, medium, pepper)
            elif "none" in algorithms:
                algorithm, key = "none", f"{address} {medium}"
            else:
                raise _bad_answer(id_server, f"it offers no lookup algorithm we know ({algorithms!r})")
            answer = await self._request(
                "POST", id_server, "/lookup", token=id_access_token,
                body={"algorithm": algorithm, "pepper": pepper, "addresses": [key]},
            )
            if answer.errcode == "M_INVALID_PEPPER" and attempt == 0:
                continue  # rotated since /hash_details: ask for the new one, once
            mappings = self._ok(id_server, answer, "lookup").get("mappings")
            found = mappings.get(key) if isinstance(mappings, dict) else None
            return found if is_valid_user_id(found) else None
        return None  # pragma: no cover

    async def store_invite(
        self, id_server: str, id_access_token: str, details: Mapping[str, Any]
    ) -> StoredInvite:
        """POST /store-invite (`details`: medium, address, room_id, sender and the optional room
        and sender fields of v2_store_invite.yaml)."""
        answer = await self._request(
            "POST", id_server, "/store-invite", token=id_access_token, body=dict(details)
        )
        body = self._ok(id_server, answer, "store-invite")
        token, display_name = body.get("token"), body.get("display_name")
        if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
            raise _bad_answer(id_server, "its store-invite answer has no valid token")
        if not isinstance(display_name, str):
            raise _bad_answer(id_server, "its store-invite answer has no display_name")
        default_url = f"https://{id_server}{_V2}/pubkey/isvalid"
        keys: list[PublicKey] = []
        # The long-term key first: servers that read only `public_key` check that one.
        single = body.get("public_key")
        if isinstance(single, str):
            keys.append(PublicKey(single, default_url))
        listed = body.get("public_keys")
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("public_key"), str):
                url = entry.get("key_validity_url")
                key = PublicKey(entry["public_key"], url if isinstance(url, str) else default_url)
                if key not in keys:
                    keys.append(key)
        if not keys:
            raise _bad_answer(id_server, "its store-invite answer has no public key")
        return StoredInvite(token, display_name, tuple(keys))

    async def key_is_valid(self, key_validity_url: str, public_key: str) -> bool:
        """GET <key_validity_url>?public_key=...: {"valid": true}. Unreachable, an error or an
        https-less URL count as not valid (a key nobody vouches for signs nothing)."""
        parts = urlsplit(key_validity_url)
        if parts.scheme != "https" or not parts.netloc or parts.fragment:
            log.info("key_validity_url %r is not an https URL", key_validity_url)
            return False
        separator = "&" if parts.query else "?"
        url = key_validity_url + separator + urlencode({"public_key": public_key})
        try:
            answer = await self._send("GET", url, parts.netloc, headers={})
        except MatrixError as e:
            log.info("key validity of %s at %s: %s", public_key, key_validity_url, e.error)
            return False
        return answer.ok and isinstance(answer.body, dict) and answer.body.get("valid") is True

    # --- plumbing ------------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        id_server: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        authorization: str | None = None,
    ) -> _Answer:
        if not is_valid_server_name(id_server):
            raise MatrixError(Errcode.INVALID_PARAM, f"id_server {id_server!r} is not a host name")
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = encode_canonical_json(body)
        return await self._send(method, f"https://{id_server}{_V2}{path}", id_server, headers, content)

    async def _send(
        self, method: str, url: str, id_server: str, headers: dict[str, str],
        content: bytes | None = None,
    ) -> _Answer:
        from dendrite_lite.media.preview_guard import AddressRefused
        from dendrite_lite.outbound_http import HttpError, fetch

        try:
            raw = await fetch(
                self._http(), method, url, headers=headers, content=content,
                max_body_bytes=MAX_ANSWER_BYTES, timeout_s=TIMEOUT_S,
                connect_timeout_s=CONNECT_TIMEOUT_S,
            )
        except AddressRefused:
            raise MatrixError(
                Errcode.SERVER_NOT_TRUSTED,
                f"Identity server {id_server} is not on a public address this server may reach",
            ) from None
        except (HttpError, ssl.SSLError, OSError) as e:
            raise MatrixError(
                Errcode.UNKNOWN, f"Identity server {id_server} could not be reached: {e}", status=502
            ) from None
        try:
            parsed = json.loads(raw.body) if raw.body else None
        except ValueError:
            parsed = None
        return _Answer(raw.status, parsed)

    @staticmethod
    def _ok(id_server: str, answer: _Answer, what: str) -> dict[str, Any]:
        """The JSON object of a 2xx answer; otherwise its Matrix error, passed on."""
        if answer.ok:
            if not isinstance(answer.body, dict):
                raise _bad_answer(id_server, f"its {what} answer is not a JSON object")
            return answer.body
        body = answer.body if isinstance(answer.body, dict) else {}
        error = body.get("error")
        said = error if isinstance(error, str) else f"HTTP {answer.status}"
        message = f"Identity server {id_server}: {said}"
        if answer.errcode is not None and 400 <= answer.status < 500:
            extra = {k: v for k, v in body.items() if k not in ("errcode", "error")}
            raise MatrixError(answer.errcode, message, status=answer.status, **extra)
        raise MatrixError(Errcode.UNKNOWN, f"{message} ({what})", status=502)


def _bad_answer(id_server: str, why: str) -> MatrixError:
    return MatrixError(Errcode.UNKNOWN, f"Identity server {id_server}: {why}", status=502)
