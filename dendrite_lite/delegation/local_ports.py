"""Can this machine listen on an address? For `dendrite-lite init`'s TLS default: ACME needs
port 443 (and port 80 for HTTP-01) free for our own listeners.

The probe binds the address and closes it at once. Three outcomes:
- FREE: the server will be able to listen there;
- IN_USE: something (a web server, usually) already listens; it should be the reverse proxy;
- NOT_HERE: the IP is not an address of this machine (a typo, or the public IP behind NAT);
- NEEDS_PRIVILEGE: a non-root user may not bind ports below 1024. That is no reason to give
  up on ACME: the server will run as a service that is granted the right
  (systemd `AmbientCapabilities=CAP_NET_BIND_SERVICE`), so init takes the port as usable and
  says how to grant it.
Nothing here prints.
"""

from __future__ import annotations

import enum
import errno
import socket
from collections.abc import Callable

from dendrite_lite.config import split_address

__all__ = ["PRIVILEGE_HINT", "PortState", "probe_port"]

PRIVILEGE_HINT = (
    "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: in a systemd unit,"
    " AmbientCapabilities=CAP_NET_BIND_SERVICE; without systemd,"
    " sysctl net.ipv4.ip_unprivileged_port_start=80"
)


class PortState(enum.Enum):
    FREE = "free"
    IN_USE = "in use"
    NOT_HERE = "not an address of this machine"
    NEEDS_PRIVILEGE = "needs privilege"

    @property
    def usable(self) -> bool:
        return self in (PortState.FREE, PortState.NEEDS_PRIVILEGE)


def probe_port(address: str, make_socket: Callable[..., socket.socket] = socket.socket) -> PortState:
    """Try to bind `address` ("host:port", as in [listen]) for TCP, and let go at once."""
    host, port = split_address(address, "address")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with make_socket(family, socket.SOCK_STREAM) as s:
        # The server sets SO_REUSEADDR too: a port in TIME_WAIT is free for it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except PermissionError:
            return PortState.NEEDS_PRIVILEGE
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return PortState.IN_USE
            if e.errno == errno.EADDRNOTAVAIL:
                return PortState.NOT_HERE
            raise
    return PortState.FREE
