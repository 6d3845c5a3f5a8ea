"""Whether the ports the internet needs accept TCP connections on server.public_ip, for the
configured server: where peers connect for federation (the resolved targets' ports), where
clients go (public_baseurl's port, 443 by default), and port 80 for ACME's HTTP-01 challenges
when tls.mode = "acme" and listen.acme_http is set.

The connections are made from this machine, which is not the internet. When public_ip is one
of this machine's own addresses, nothing stands between: a refused or unanswered connection is
the same for everyone, so it FAILs. When it is not (a router's address, the machine behind
NAT), a failure may only mean the router does not loop connections from inside back in
("hairpin NAT"), while the internet gets through: that WARNs, says so, and asks for a check
from outside. A success proves the port is open either way.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from dendrite_lite.config import Config
from dendrite_lite.delegation.discovery import Target
from dendrite_lite.delegation.doctor.findings import Finding, Status

__all__ = ["CONNECT_TIMEOUT_S", "address_is_local", "connect_error", "port_findings", "ports_to_check"]

CONNECT_TIMEOUT_S = 3.0


def address_is_local(ip: str) -> bool:
    """Whether `ip` is an address of this machine: only then can a socket bind to it."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


def ports_to_check(config: Config, targets: Iterable[Target]) -> dict[int, tuple[str, str]]:
    """port -> (what answers there, the config key of its listener)."""
    fed_key = "listen.federation" if config.listen.federation else "listen.client"
    ports = {t.port: ("federation, where peers connect", fed_key) for t in targets}
    base = urlsplit(config.public_baseurl)
    client_port = base.port or (443 if base.scheme == "https" else 80)
    ports.setdefault(client_port, ("the client API at public_baseurl", "listen.client, or the reverse proxy"))
    if config.tls.mode == "acme" and config.listen.acme_http:
        ports.setdefault(80, ("ACME HTTP-01 challenges", "listen.acme_http"))
    return ports


async def connect_error(ip: str, port: int, timeout_s: float) -> str | None:
    """None when the connection opens, else why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:.0f} s"
    except OSError as e:
        # asyncio's own message repeats the address; the errno's text says what happened.
        return os.strerror(e.errno) if e.errno else str(e) or type(e).__name__
    writer.transport.abort()
    return None


async def port_findings(
    config: Config, targets: Iterable[Target], *, timeout_s: float = CONNECT_TIMEOUT_S,
    is_local: Callable[[str], bool] = address_is_local,
) -> list[Finding]:
    ip = config.server.public_ip
    if not ip:
        return [Finding("ports", "ports", Status.OK,
                        "server.public_ip is not set, so reachability from the internet is not checked.")]
    local = is_local(ip)
    out = []
    for port, (what, key) in sorted(ports_to_check(config, targets).items()):
        where = f"{ip}:{port}" if ":" not in ip else f"[{ip}]:{port}"
        error = await connect_error(ip, port, timeout_s)
        if error is None:
            out.append(Finding("ports.open", "ports", Status.OK,
                               f"{where} ({what}) accepts connections (tested from this machine)."))
        elif local:
            out.append(Finding(
                "ports.open", "ports", Status.FAIL,
                f"{where} ({what}) does not accept connections: {error}. {ip} is this machine's"
                " own address, so the internet meets the same.",
                f"Make {key} listen on port {port}, and open it in the firewall: `ufw allow"
                f" {port}/tcp` (nftables: `nft add rule inet filter input tcp dport {port} accept`).",
            ))
        else:
            out.append(Finding(
                "ports.open", "ports", Status.WARN,
                f"{where} ({what}) did not accept a connection from this machine: {error}. {ip} is"
                " not this machine's address (it is behind NAT), and routers without hairpin NAT"
                " refuse such connections from inside even when the internet gets through.",
                f"On the router, forward TCP port {port} to this machine ({key} must listen on"
                f" {port}); then check from outside your network, e.g. https://federationtester.matrix.org.",
            ))
    return out
