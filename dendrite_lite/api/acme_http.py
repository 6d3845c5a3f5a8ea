"""The plain-HTTP listener of tls.mode = "acme" (listen.acme_http, port 80 by default).

It answers three things and nothing else:
- `GET /.well-known/acme-challenge/<token>`: the HTTP-01 key authorization the issuer put in
  Http01Answers (RFC 8555 §8.3), as text/plain; 404 for a token we have no challenge for, or one
  that is not base64url (the only alphabet ACME tokens use);
- `/.well-known/matrix/server` and `/client`: the same blueprint the TLS listeners serve, so a
  delegation file is found whichever scheme a client or a tester tries first;
- any other request: a redirect to the same path and query on https, port 443 implied. 301 for
  GET/HEAD; 308 for other methods, because on a 301 clients resend a POST as a GET, body dropped.

The redirect host comes from the request's Host header only when it is a valid host[:port]
(the server-name grammar): anything else, e.g. `evil.example/`, `user@evil.example`, or no Host at
all, falls back to public_baseurl's host, so a crafted Host cannot make us redirect elsewhere.

It is built on create_app, so errors are Matrix JSON and the CORS headers are the same as on
every listener. As there, OPTIONS is answered 204 before routing (a CORS preflight, never a
redirect: browsers do not follow redirects on a preflight).
"""

from __future__ import annotations

import re
from typing import cast
from urllib.parse import urlsplit

from quart import Blueprint, Quart, Response, current_app, request

from dendrite_lite.api.app import Services, create_app
from dendrite_lite.api.wellknown import matrix as wellknown_matrix
from dendrite_lite.config import Config, is_valid_server_name, split_host
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.tls.http01 import Http01Answers

__all__ = ["build_acme_http_app"]

_ANSWERS_KEY = "dendrite_lite.http01"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_KEEPS_METHOD = frozenset({"GET", "HEAD"})

bp = Blueprint("acme_http", __name__)


def build_acme_http_app(
    config: Config, answers: Http01Answers, services: Services | None = None
) -> Quart:
    """The port-80 app. `services` is the running server's; without it (`tls renew` renewing
    outside a server, with no database open) the app gets a record holding only the config,
    which is all the handlers here read."""
    # The fields left None are never read by this app's handlers (well-known reads config only).
    svc = services or Services(config=config, server_key=None, storage=None)  # type: ignore[arg-type]
    app = create_app(svc, [bp, wellknown_matrix.bp], name="dendrite_lite.acme_http")
    app.extensions[_ANSWERS_KEY] = answers
    # A rule with no method list matches every method (PROPFIND included); Flask's add_url_rule
    # always sets one, so the rule goes into the map directly. Static rules win over it.
    for path in ("/", "/<path:rest>"):
        app.url_map.add(app.url_rule_class(path, endpoint="acme_http.redirect", methods=None))
    app.view_functions["acme_http.redirect"] = _redirect_to_https
    return app


@bp.get("/.well-known/acme-challenge/<token>")
async def get_challenge(token: str) -> Response:
    """GET /.well-known/acme-challenge/{token} (RFC 8555 §8.3)"""
    answers = cast(Http01Answers, current_app.extensions[_ANSWERS_KEY])
    answer = answers.get(token) if _TOKEN_RE.fullmatch(token) else None
    if answer is None:
        raise MatrixError(Errcode.NOT_FOUND, "No ACME challenge is pending for this token")
    return Response(answer.encode(), content_type="text/plain")


async def _redirect_to_https(rest: str = "") -> Response:
    config = cast(Services, current_app.extensions["dendrite_lite"]).config
    raw_path = request.scope.get("raw_path") or request.path.encode()
    target = f"https://{_redirect_host(request.headers.get('Host', ''), config)}"
    target += raw_path.decode("latin-1")
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    status = 301 if request.method in _KEEPS_METHOD else 308
    return Response(b"", status=status, headers={"Location": target})


def _redirect_host(host_header: str, config: Config) -> str:
    if is_valid_server_name(host_header):
        return split_host(host_header)
    host = urlsplit(config.public_baseurl).hostname or split_host(config.server.server_name)
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
