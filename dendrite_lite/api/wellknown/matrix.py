"""Server discovery files: /.well-known/matrix/server (data/api/server-server/wellknown.yaml) and
/.well-known/matrix/client (data/api/client-server/wellknown.yaml).

Choice for m.server: federation is reached at the host of public_baseurl.
- the listener serving federation speaks plain HTTP (tls.mode = "proxy", or
  listen.federation_tls = false): the reverse proxy that serves public_baseurl also forwards
  federation, so the port is public_baseurl's port (443 for https unless the URL names another).
- it speaks TLS (tls.mode = "files"/"acme" unless turned off per listener): we terminate TLS
  ourselves, so the port is the federation listener's port (the client listener's when there is
  no separate federation listener). The appliance layout (client API plain behind a local
  proxy, federation with the certificate on 8448) is this case.
That covers the two common setups (everything behind one proxy on 443; direct 8448) without a
new config key. Self-hosters with another layout serve their own well-known file.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.config import Config
from dendrite_lite.rtc_transports import WELL_KNOWN_KEY, rtc_transports

__all__ = ["bp", "delegated_server", "client_base_url"]

bp = Blueprint("wellknown_matrix", __name__)


def _listen_port(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


def delegated_server(config: Config) -> str:
    """The `m.server` value: `host:port` where other servers reach our federation API."""
    url = urlsplit(config.public_baseurl)
    host = url.hostname or config.server.server_name
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if not config.federation_tls:
        port = url.port or (80 if url.scheme == "http" else 443)
    else:
        port = _listen_port(config.listen.federation or config.listen.client)
    return f"{host}:{port}"


def client_base_url(config: Config) -> str:
    # The spec's examples have no trailing slash, and clients append "/_matrix/...".
    return config.public_baseurl.rstrip("/")


@bp.get("/.well-known/matrix/server")
async def get_wellknown_server() -> Response:
    """GET /.well-known/matrix/server"""
    return jsonify({"m.server": delegated_server(services().config)})


@bp.get("/.well-known/matrix/client")
async def get_wellknown_client() -> Response:
    """GET /.well-known/matrix/client"""
    config = services().config
    body: dict[str, object] = {"m.homeserver": {"base_url": client_base_url(config)}}
    if transports := rtc_transports(config.calls):  # MSC4143: where Element Call finds the SFU
        body[WELL_KNOWN_KEY] = transports
    return jsonify(body)
