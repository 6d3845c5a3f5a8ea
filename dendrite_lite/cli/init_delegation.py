"""How other servers find this one (server-server-api.md §Resolving server names), as
`dendrite-lite init` offers it: the three choices in one line each, the listener layout each
implies, and the exact DNS records and files the user must publish.

- direct: peers connect to <server_name>:8448; its A/AAAA records point here.
- well-known: the web server of <server_name> serves /.well-known/matrix/server naming
  <host>:443, this machine; client and federation APIs share port 443 (no 8448 listener).
- srv: `_matrix-fed._tcp.<server_name>` names <host>:8448. Without a well-known file the spec
  has peers check the certificate against <server_name> itself (step 4 of the resolution), so
  this machine must serve a certificate for <server_name>: ACME can only get one here when
  <server_name> resolves here too. Otherwise .well-known is the choice (its certificate is for
  <host>), or a certificate for <server_name> made elsewhere (tls.mode = "files").
Nothing here prints or looks anything up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from dendrite_lite.config import split_host
from dendrite_lite.delegation.discovery import is_ip_literal

__all__ = [
    "DELEGATIONS",
    "Layout",
    "acme_names",
    "choice_lines",
    "layout",
    "records_to_publish",
    "srv_certificate_rule",
]

DELEGATIONS = ("direct", "well-known", "srv")
FEDERATION_PORT = 8448


def choice_lines(server_name: str, host: str | None) -> list[str]:
    """One line per choice, naming the user's own server and host."""
    name = split_host(server_name)
    host = host or f"matrix.{name}"
    return [
        f"direct      servers connect to {name}:{FEDERATION_PORT}; {name}'s A/AAAA records point here",
        f"well-known  {name}'s web server publishes a file naming {host}:443 (this machine)",
        f"srv         a DNS record _matrix-fed._tcp.{name} names {host}:{FEDERATION_PORT} (this machine)",
    ]


def srv_certificate_rule(server_name: str, host: str) -> str:
    name = split_host(server_name)
    return (
        f"With an SRV record (and no .well-known file) other servers connect to {host} but check"
        f" that its certificate is for {name} itself, not for {host}. Let's Encrypt issues that"
        f" here only when {name} also points to this machine. Otherwise use well-known (the"
        f" certificate is then for {host}), or a certificate for {name} made elsewhere"
        " (tls mode files)."
    )


@dataclass(frozen=True)
class Layout:
    client: str
    federation: str
    client_tls: bool | None  # None: not written, so it follows tls.mode
    federation_tls: bool | None


def layout(delegation: str, tls_mode: str, client_behind_proxy: bool) -> Layout:
    """The listeners for a delegation choice and TLS mode."""
    if delegation == "well-known":
        # One port, 443, for both APIs: m.server names <host>:443.
        if tls_mode == "proxy":
            return Layout("127.0.0.1:8008", "", None, None)
        return Layout("0.0.0.0:443", "", None, None)
    # Behind a proxy only the proxy talks to us; with our own TLS we face the internet directly.
    if tls_mode == "proxy":
        return Layout("127.0.0.1:8008", f"127.0.0.1:{FEDERATION_PORT}", None, None)
    if client_behind_proxy:
        # The appliance layout: the user's proxy serves the client API (plain HTTP to us, on
        # loopback only); other servers reach federation directly, with our certificate. Written
        # out, since it differs from what tls.mode alone implies.
        return Layout("127.0.0.1:8008", f"0.0.0.0:{FEDERATION_PORT}", False, True)
    return Layout("0.0.0.0:443", f"0.0.0.0:{FEDERATION_PORT}", None, None)


def acme_names(delegation: str, server_name: str, host: str | None) -> tuple[str, ...]:
    """The certificate's names: () means the server name (the config's default)."""
    if delegation == "well-known" and host:
        return (host,)
    if delegation == "srv" and host and host != split_host(server_name):
        # Federation needs the server name; clients reach the public URL on <host>.
        return (split_host(server_name), host)
    return ()


def records_to_publish(
    delegation: str, server_name: str, host: str | None, public_baseurl: str, public_ip: str
) -> list[str]:
    """The exact DNS records and files to publish, as lines to print."""
    name = split_host(server_name)
    ip = public_ip or "<this machine's public IP>"
    kind = "AAAA" if ":" in ip else "A"
    base_url = public_baseurl.rstrip("/")
    client_file = json.dumps({"m.homeserver": {"base_url": base_url}})
    # This machine's names: the one peers connect to, and the public URL's if it is another.
    machine = name if delegation == "direct" else host
    assert machine is not None  # asked, or required with the flag
    hosts = [machine]
    base_host = urlsplit(base_url).hostname
    if base_host and base_host not in hosts and not is_ip_literal(base_host):
        hosts.append(base_host)
    lines = [f"DNS: {h}. 3600 IN {kind} {ip}" for h in hosts]
    if delegation == "direct":
        # <server_name> is this machine, which serves /.well-known/matrix/client itself.
        return lines
    if delegation == "well-known":
        lines += [
            f"On the web server of {name}, https://{name}/.well-known/matrix/server containing:",
            f"  {json.dumps({'m.server': f'{host}:443'})}",
        ]
    if delegation == "srv":
        lines.append(
            f"DNS: _matrix-fed._tcp.{name}. 3600 IN SRV 10 5 {FEDERATION_PORT} {host}."
        )
    lines += [
        f"On the web server of {name}, https://{name}/.well-known/matrix/client containing:",
        f"  {client_file}",
        "  served with the header Access-Control-Allow-Origin: * (web clients need it)",
    ]
    return lines
