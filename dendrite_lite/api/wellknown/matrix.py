"""Server discovery files: /.well-known/matrix/server (data/api/server-server/wellknown.yaml) and
/.well-known/matrix/client (data/api/client-server/wellknown.yaml).

Choice for m.server: federation is reached at the host of public_baseurl.
- tls.mode = "proxy": the reverse proxy that serves public_baseurl also forwards federation, so
  the port is public_baseurl's port (443 for https unless the URL names another).
- tls.mode = "files"/"acme": we terminate TLS ourselves, so the port is the federation listener's
  port (the client listener's when there is no separate federation listener).
That covers the two common setups (everything behind one proxy on 443; direct 8448) without a
new config key. Self-hosters with another layout serve their own well-known file.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import Blueprint, Response, jsonify

from dendrite_lite.api.app import services
from dendrite_lite.config import Config

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
    if config.tls.mode == "proxy":
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
    return jsonify({"m.homeserver": {"base_url": client_base_url(services().config)}})
