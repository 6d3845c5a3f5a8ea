"""X-Matrix request authentication (server-server-api.md §Request Authentication).

Outbound: `authorization_header(...)` signs {method, uri, origin, destination, content} with our
key and renders the header. Inbound: `verify_request(...)` parses the header, fetches the
origin's key through a `KeyFetcher` (the keyring) and checks the signature; every failure is a
401 M_UNAUTHORIZED MatrixError saying what was wrong. No HTTP framework here: the API layer
passes the method, raw URI, body and header in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dendrite_lite.config import is_valid_server_name
from dendrite_lite.crypto.canonical import CanonicalJSONError, parse_json
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.crypto.signing import (
    SUPPORTED_ALGORITHMS,
    ServerVerifyKey,
    SignatureError,
    sign_json,
    verify_json_signature,
)
from dendrite_lite.errors import Errcode, MatrixError

__all__ = [
    "XMatrixAuth",
    "KeyFetcher",
    "parse_x_matrix",
    "request_json",
    "authorization_header",
    "verify_request",
    "parse_request_body",
]


@dataclass(frozen=True, slots=True)
class XMatrixAuth:
    origin: str
    destination: str | None  # optional for compatibility with pre-1.3 senders
    key: str
    sig: str


class KeyFetcher(Protocol):
    async def get_key(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> ServerVerifyKey | None:
        """The key, fetched if needed; None when it cannot be found."""
        ...


def _unauthorized(msg: str) -> MatrixError:
    return MatrixError(Errcode.UNAUTHORIZED, msg)


# RFC 9110 §5.6.2 token characters, plus ':' which the spec asks recipients to accept unquoted
# (older servers send origin=example.org:8448 without quotes).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z:]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM_RE = re.compile(rf"[ \t]*({_TOKEN})[ \t]*=[ \t]*({_QUOTED}|{_TOKEN})[ \t]*(?:,|$)")
_SCHEME_RE = re.compile(r"X-Matrix +", re.I)


def parse_x_matrix(header: str) -> XMatrixAuth:
    """Parse `X-Matrix origin="..",destination="..",key="..",sig=".."`.

    Names are case-insensitive, order is free, quoted values may hold backslash escapes,
    unknown parameters are ignored. Raises 401 M_UNAUTHORIZED if malformed or incomplete.
    """
    m = _SCHEME_RE.match(header)
    if m is None:
        raise _unauthorized("Authorization header is not X-Matrix")
    params: dict[str, str] = {}
    pos = m.end()
    while pos < len(header):
        pm = _PARAM_RE.match(header, pos)
        if pm is None or pm.end() == pos:
            raise _unauthorized("malformed X-Matrix Authorization header")
        name, value = pm[1].lower(), pm[2]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(name, value)
        pos = pm.end()
    missing = [p for p in ("origin", "key", "sig") if not params.get(p)]
    if missing:
        raise _unauthorized(f"X-Matrix Authorization header lacks {', '.join(missing)}")
    if not is_valid_server_name(params["origin"]):
        # 400, as Synapse answers a malformed origin (SyTest "Non-numeric ports in server
        # names are rejected"); the spec asks 401 only for a destination that is not us.
        raise MatrixError(
            Errcode.UNAUTHORIZED, "X-Matrix origin is not a valid server name", status=400
        )
    return XMatrixAuth(params["origin"], params.get("destination"), params["key"], params["sig"])


def request_json(
    method: str, uri: str, origin: str, destination: str, content: Any | None
) -> dict[str, Any]:
    """The object whose signature authenticates a request (step 1 of the spec)."""
    obj: dict[str, Any] = {
        "method": method.upper(),
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def authorization_header(
    origin: str, key: ServerKey, destination: str, method: str, uri: str, content: Any | None
) -> str:
    """The `Authorization` value for an outbound request. `uri` is the path with its query
    string, exactly as sent."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, key)
    sig = signed["signatures"][origin][key.key_id]
    # The spec's compatibility advice: one space, lower-case names, no spaces around commas.
    return (
        f'X-Matrix origin="{origin}",destination="{destination}",'
        f'key="{key.key_id}",sig="{sig}"'
    )


def parse_request_body(body: bytes) -> Any | None:
    """The JSON content a signature covers: None for an empty body; 400 M_NOT_JSON if invalid."""
    if not body:
        return None
    try:
        return parse_json(body)
    except CanonicalJSONError:
        raise MatrixError(Errcode.NOT_JSON, "request body is not valid JSON") from None


async def verify_request(
    keys: KeyFetcher,
    our_server_name: str,
    method: str,
    uri: str,
    content: Any | None,
    authorization: str | None,
    now_ms: int,
) -> str:
    """Check an inbound request's X-Matrix signature; return the authenticated origin.

    The key must be one of the origin's current keys, valid now: `old_verify_keys` sign only
    events, never requests.
    """
    if not authorization:
        raise _unauthorized("missing X-Matrix Authorization header")
    auth = parse_x_matrix(authorization)
    if auth.destination is not None and auth.destination != our_server_name:
        raise _unauthorized(f"request is for {auth.destination}, not this server")
    if auth.key.split(":", 1)[0] not in SUPPORTED_ALGORITHMS:
        raise _unauthorized(f"unsupported key algorithm in {auth.key!r}")
    key = await keys.get_key(auth.origin, auth.key, now_ms)
    if key is None:
        raise _unauthorized(f"unknown key {auth.key} of {auth.origin}")
    if key.expired_ts is not None or (key.valid_until_ts is not None and key.valid_until_ts < now_ms):
        raise _unauthorized(f"key {auth.key} of {auth.origin} is not valid now")
    # Pre-1.3 senders signed without a destination field; then we verify against our name,
    # which is what they meant (the signature would not verify otherwise).
    signed: Mapping[str, Any] = {
        **request_json(method, uri, auth.origin, auth.destination or our_server_name, content),
        "signatures": {auth.origin: {auth.key: auth.sig}},
    }
    try:
        verify_json_signature(signed, auth.origin, auth.key, key.verify_key)
    except SignatureError as e:
        raise _unauthorized(f"invalid X-Matrix signature: {e}") from None
    return auth.origin
