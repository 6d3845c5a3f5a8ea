"""How Hypercorn serves one listener: its socket, TLS context and connection limits.

`ListenerConfig` is Hypercorn's `Config` with two of its extension points overridden:
- `create_sockets` hands Hypercorn the socket server.py already bound and listening (so port 0
  in the config is known before `ready`, and a client connecting early waits in the backlog);
- `create_ssl_context` returns the `ssl.SSLContext` we built (`server_tls_context`), not one of
  Hypercorn's: the certificate can then be replaced on the live context, and an `sni_callback`
  set on it, without restarting the listener (what ACME renewal and TLS-ALPN-01 need).

The limits are Hypercorn's own: header size, keep-alive (which also closes a connection whose
request head trickles in, since the idle clock only stops once a whole head arrived), requests
per connection, HTTP/2 streams, graceful shutdown.
"""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path

from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets

__all__ = [
    "ListenerConfig",
    "server_tls_context",
    "GRACEFUL_TIMEOUT_S",
    "KEEP_ALIVE_S",
    "MAX_HEAD_BYTES",
    "MAX_REQUESTS_PER_CONNECTION",
]

# In-flight requests get this long to finish after a shutdown is triggered.
GRACEFUL_TIMEOUT_S = 10.0
# An idle connection (or one whose request head is still arriving) is closed after this long.
KEEP_ALIVE_S = 5.0
# Request line and headers together (Matrix query strings carry filters and tokens).
MAX_HEAD_BYTES = 64 * 1024
# A connection is closed after this many requests: one client pipelining without reading its
# answers cannot keep one connection (and what it holds) forever.
MAX_REQUESTS_PER_CONNECTION = 1000
# The HTTP versions offered in the TLS handshake (HTTP/2 first, as browsers expect).
ALPN_PROTOCOLS = ["h2", "http/1.1"]


class ListenerConfig(HypercornConfig):
    def __init__(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self._socket = sock
        self._tls = tls
        self.graceful_timeout = GRACEFUL_TIMEOUT_S
        self.keep_alive_timeout = KEEP_ALIVE_S
        self.keep_alive_max_requests = MAX_REQUESTS_PER_CONNECTION
        self.h11_max_incomplete_size = MAX_HEAD_BYTES
        self.h2_max_header_list_size = MAX_HEAD_BYTES
        self.ssl_handshake_timeout = 10.0
        self.include_server_header = False
        # Our own access log (api/access_log.py) writes one line per request without the query
        # string (clients may still send ?access_token=); Hypercorn's would include it.
        self.accesslog = None
        self.errorlog = logging.getLogger("hypercorn.error")

    @property
    def ssl_enabled(self) -> bool:
        return self._tls is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._tls

    def create_sockets(self) -> Sockets:
        if self._tls is not None:
            return Sockets([self._socket], [], [])
        return Sockets([], [self._socket], [])


def server_tls_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """A server context with the certificate loaded, HTTP/2 and HTTP/1.1 offered by ALPN, and
    the settings RFC 9113 §9.2 asks of HTTP/2 over TLS (TLS 1.2 or newer, no compression)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    context.load_cert_chain(str(cert), str(key))
    return context
