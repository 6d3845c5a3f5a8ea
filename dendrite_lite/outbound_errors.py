"""The errors of outbound HTTP (outbound_http.py), apart from it: services catch them without
importing httpx, which loads with the first outbound client (tests/unit/test_server_process.py).
"""

from __future__ import annotations

__all__ = ["HttpError", "ConnectFailed", "ResponseTooLarge"]


class HttpError(Exception):
    """No usable answer: the connection broke, timed out, or the peer spoke bad HTTP."""


class ConnectFailed(HttpError):
    """No connection: resolution, refusal, TLS handshake or connect timeout. Nothing was sent,
    so another address may be tried."""


class ResponseTooLarge(HttpError):
    pass
